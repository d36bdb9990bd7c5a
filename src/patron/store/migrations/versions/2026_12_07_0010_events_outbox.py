"""The events outbox (events.md, issue 31): the events written with each change, each org's stream
of them, the sinks' progress and health, their retries and dead letters, every delivery attempt,
the replays operators asked for, and the relays running; and each customer's latest event sequence.

On Citus, `patron db upgrade` distributes the new tables by org_id beside the customers
(store.citus), so that a registration with its events stays on one shard.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

UNPOSITIONED = sa.text("position IS NULL")


def _id() -> sa.Column:
    return sa.Column("id", sa.BigInteger, sa.Identity(start=1), nullable=False)


def _sqlite_id_index(table: str) -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.create_index(f"ix_{table}_id", table, ["id"])


def upgrade() -> None:
    op.add_column("customers", sa.Column("event_sequence", sa.BigInteger, nullable=False, server_default="0"))
    op.create_table(
        "events",
        sa.Column("org_id", sa.BigInteger, nullable=False),
        _id(),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("customer_id", sa.BigInteger, nullable=False),
        sa.Column("sequence", sa.BigInteger, nullable=False),
        sa.Column("name", sa.String(40), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=False), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("origin", sa.String(8), nullable=False),
        sa.Column("console_user", sa.String(100)),
        sa.Column("data", sa.JSON, nullable=False),
        sa.Column("position", sa.BigInteger),
        sa.PrimaryKeyConstraint("org_id", "id", name="pk_events"),
    )
    op.create_index("ix_events_org_id_position", "events", ["org_id", "position"], unique=True)
    op.create_index(
        "ix_events_org_id_unpositioned", "events", ["org_id", "id"],
        postgresql_where=UNPOSITIONED, sqlite_where=UNPOSITIONED,
    )
    _sqlite_id_index("events")
    op.create_table(
        "event_streams",
        sa.Column("org_id", sa.BigInteger, nullable=False),
        sa.Column("last_position", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("removed_through", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("lease_owner", sa.String(100)),
        sa.Column("lease_until", sa.DateTime(timezone=False)),
        sa.PrimaryKeyConstraint("org_id", name="pk_event_streams"),
    )
    op.create_table(
        "event_sinks",
        sa.Column("org_id", sa.BigInteger, nullable=False),
        sa.Column("sink", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("position", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("lease_owner", sa.String(100)),
        sa.Column("lease_until", sa.DateTime(timezone=False)),
        sa.Column("failing_since", sa.DateTime(timezone=False)),
        sa.Column("consecutive_failures", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_success_at", sa.DateTime(timezone=False)),
        sa.Column("last_failure_at", sa.DateTime(timezone=False)),
        sa.Column("last_error", sa.String(1024)),
        sa.Column("disabled_at", sa.DateTime(timezone=False)),
        sa.Column("disabled_reason", sa.String(200)),
        sa.PrimaryKeyConstraint("org_id", "sink", name="pk_event_sinks"),
    )
    op.create_table(
        "event_retries",
        sa.Column("org_id", sa.BigInteger, nullable=False),
        sa.Column("sink", sa.String(100), nullable=False),
        sa.Column("position", sa.BigInteger, nullable=False),
        sa.Column("customer_id", sa.BigInteger, nullable=False),
        sa.Column("sequence", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.DateTime(timezone=False)),
        sa.Column("last_error", sa.String(1024)),
        sa.Column("created_at", sa.DateTime(timezone=False), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=False), nullable=False),
        sa.PrimaryKeyConstraint("org_id", "sink", "position", name="pk_event_retries"),
    )
    op.create_index(
        "ix_event_retries_org_id_sink_customer_id_sequence", "event_retries", ["org_id", "sink", "customer_id", "sequence"]
    )
    op.create_index(
        "ix_event_retries_org_id_sink_status_next_attempt_at", "event_retries", ["org_id", "sink", "status", "next_attempt_at"]
    )
    op.create_table(
        "event_attempts",
        sa.Column("org_id", sa.BigInteger, nullable=False),
        _id(),
        sa.Column("sink", sa.String(100), nullable=False),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("position", sa.BigInteger, nullable=False),
        sa.Column("attempted_at", sa.DateTime(timezone=False), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("result", sa.String(16), nullable=False),
        sa.Column("status_code", sa.Integer),
        sa.Column("error", sa.String(1024)),
        sa.Column("latency_ms", sa.Integer, nullable=False),
        sa.Column("answer", sa.String(1024)),
        sa.PrimaryKeyConstraint("org_id", "id", name="pk_event_attempts"),
    )
    op.create_index("ix_event_attempts_org_id_sink_attempted_at", "event_attempts", ["org_id", "sink", "attempted_at"])
    op.create_index("ix_event_attempts_org_id_event_id", "event_attempts", ["org_id", "event_id"])
    _sqlite_id_index("event_attempts")
    op.create_table(
        "event_replays",
        sa.Column("org_id", sa.BigInteger, nullable=False),
        _id(),
        sa.Column("sink", sa.String(100), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=False), nullable=False),
        sa.Column("requested_by", sa.String(110), nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("event_id", sa.String(36)),
        sa.Column("from_at", sa.DateTime(timezone=False)),
        sa.Column("to_at", sa.DateTime(timezone=False)),
        sa.Column("events", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("org_id", "id", name="pk_event_replays"),
    )
    _sqlite_id_index("event_replays")
    op.create_table(
        "event_relays",
        sa.Column("relay_id", sa.String(100), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=False), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=False), nullable=False),
        sa.PrimaryKeyConstraint("relay_id", name="pk_event_relays"),
    )


def downgrade() -> None:
    for table in ("event_relays", "event_replays", "event_attempts", "event_retries", "event_sinks", "event_streams", "events"):
        op.drop_table(table)
    op.drop_column("customers", "event_sequence")
