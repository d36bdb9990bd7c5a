"""Member care: console users and their sessions, identity change requests, who acted and why,
and the warnings each audited item was answered with.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

PENDING = sa.text("status = 'PENDING'")


def _on_sqlite() -> bool:
    # SQLite draws ids as max(id) + 1 and needs an index on id; PostgreSQL uses sequences.
    return op.get_context().dialect.name == "sqlite"


def upgrade() -> None:
    op.create_table(
        "console_users",
        sa.Column("login", sa.String(100), nullable=False),
        sa.Column("org_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("password_hash", sa.String(200), nullable=False),
        sa.Column("access_group", sa.String(100), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("session_generation", sa.Integer(), nullable=False, server_default="0"),
        sa.ForeignKeyConstraint(["org_id"], ["orgs.id"], name="fk_console_users_org_id_orgs"),
        sa.PrimaryKeyConstraint("login", name="pk_console_users"),
    )
    op.create_index("ix_console_users_org_id", "console_users", ["org_id"])
    op.create_table(
        "console_sessions",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("login", sa.String(100), nullable=False),
        sa.Column("org_id", sa.BigInteger(), nullable=False),
        sa.Column("session_generation", sa.Integer(), nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["login"], ["console_users.login"], name="fk_console_sessions_login_console_users"),
        sa.PrimaryKeyConstraint("id", name="pk_console_sessions"),
    )
    op.create_index("ix_console_sessions_login", "console_sessions", ["login"])
    with op.batch_alter_table("customer_audits") as table:
        table.add_column(sa.Column("console_user", sa.String(100), nullable=True))
        table.add_column(sa.Column("reason", sa.String(500), nullable=True))
        table.add_column(sa.Column("warnings", sa.JSON(), nullable=True))
    op.create_index(
        "ix_customer_audits_org_id_created_at_warned",
        "customer_audits",
        ["org_id", "created_at"],
        postgresql_where=sa.text("warnings IS NOT NULL"),
        sqlite_where=sa.text("warnings IS NOT NULL"),
    )
    op.create_table(
        "identity_change_requests",
        sa.Column("org_id", sa.BigInteger(), nullable=False),
        sa.Column("id", sa.BigInteger(), sa.Identity(start=1), nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("identifier", sa.String(16), nullable=False),
        sa.Column("old_value", sa.String(255), nullable=True),
        sa.Column("new_value", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("requested_at", sa.DateTime(), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("till_code", sa.String(50), nullable=True),
        sa.Column("api_client_key", sa.String(100), nullable=True),
        sa.Column("console_user", sa.String(100), nullable=True),
        sa.Column("reason", sa.String(500), nullable=True),
        sa.Column("decided_at", sa.DateTime(), nullable=True),
        sa.Column("decided_by", sa.String(100), nullable=True),
        sa.Column("decision_reason", sa.String(500), nullable=True),
        sa.PrimaryKeyConstraint("org_id", "id", name="pk_identity_change_requests"),
    )
    op.create_index(
        "ix_identity_change_requests_org_id_customer_id_identifier",
        "identity_change_requests",
        ["org_id", "customer_id", "identifier"],
        unique=True,
        postgresql_where=PENDING,
        sqlite_where=PENDING,
    )
    op.create_index(
        "ix_identity_change_requests_org_id_status_id", "identity_change_requests", ["org_id", "status", "id"]
    )
    if _on_sqlite():
        op.create_index("ix_identity_change_requests_id", "identity_change_requests", ["id"])


def downgrade() -> None:
    op.drop_table("identity_change_requests")
    op.drop_index("ix_customer_audits_org_id_created_at_warned", "customer_audits")
    with op.batch_alter_table("customer_audits") as table:
        table.drop_column("warnings")
        table.drop_column("reason")
        table.drop_column("console_user")
    op.drop_table("console_sessions")
    op.drop_table("console_users")
