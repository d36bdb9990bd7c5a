"""Initial schema: orgs, tills, API clients, customers and their audit trail.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Document = sa.JSON().with_variant(JSONB(), "postgresql")


def _on_sqlite() -> bool:
    # SQLite draws ids as max(id) + 1 and needs an index on id; PostgreSQL uses sequences.
    return op.get_context().dialect.name == "sqlite"


def upgrade() -> None:
    op.create_table(
        "orgs",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("definition", Document, nullable=False),
        sa.Column("definition_sha256", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_orgs"),
    )
    op.create_table(
        "tills",
        sa.Column("code", sa.String(50), nullable=False),
        sa.Column("org_id", sa.BigInteger(), nullable=False),
        sa.Column("store_code", sa.String(100), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("password_hash", sa.String(200), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["orgs.id"], name="fk_tills_org_id_orgs"),
        sa.PrimaryKeyConstraint("code", name="pk_tills"),
    )
    op.create_index("ix_tills_org_id", "tills", ["org_id"])
    op.create_table(
        "api_clients",
        sa.Column("key", sa.String(100), nullable=False),
        sa.Column("org_id", sa.BigInteger(), nullable=False),
        sa.Column("secret_hash", sa.String(200), nullable=False),
        sa.Column("access_group", sa.String(100), nullable=False),
        sa.Column("default_till", sa.String(50), nullable=False),
        sa.Column("token_ttl_seconds", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["orgs.id"], name="fk_api_clients_org_id_orgs"),
        sa.PrimaryKeyConstraint("key", name="pk_api_clients"),
    )
    op.create_index("ix_api_clients_org_id", "api_clients", ["org_id"])
    op.create_table(
        "customers",
        sa.Column("org_id", sa.BigInteger(), nullable=False),
        sa.Column("id", sa.BigInteger(), sa.Identity(start=100001), nullable=False),
        sa.Column("mobile", sa.String(20)),
        sa.Column("email", sa.String(255)),
        sa.Column("external_id", sa.String(250)),
        sa.Column("firstname", sa.String(100), server_default="", nullable=False),
        sa.Column("lastname", sa.String(100), server_default="", nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("account_id", sa.String(255)),
        sa.Column("fraud_status", sa.String(16), nullable=False),
        sa.Column("registered_on", sa.DateTime(), nullable=False),
        sa.Column("updated_on", sa.DateTime(), nullable=False),
        sa.Column("registered_till", sa.String(50)),
        sa.Column("associated_with", sa.String(50)),
        sa.Column("referral_code", sa.String(32)),
        sa.Column("custom_fields", Document, nullable=False),
        sa.Column("extended_fields", Document, nullable=False),
        sa.Column("subscriptions", Document, nullable=False),
        sa.Column("comm_channels", Document, nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("modified_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("org_id", "id", name="pk_customers"),
        sa.UniqueConstraint("org_id", "mobile", name="uq_customers_org_id_mobile"),
        sa.UniqueConstraint("org_id", "email", name="uq_customers_org_id_email"),
        sa.UniqueConstraint("org_id", "external_id", name="uq_customers_org_id_external_id"),
        sa.UniqueConstraint("org_id", "referral_code", name="uq_customers_org_id_referral_code"),
    )
    if _on_sqlite():
        op.create_index("ix_customers_id", "customers", ["id"])
    op.create_table(
        "customer_audits",
        sa.Column("org_id", sa.BigInteger(), nullable=False),
        sa.Column("id", sa.BigInteger(), sa.Identity(start=1), nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("event_type", sa.String(16), nullable=False),
        sa.Column("till_code", sa.String(50)),
        sa.Column("api_client_key", sa.String(100)),
        sa.Column("context_entity_type", sa.String(255)),
        sa.Column("context_entity_id", sa.String(255)),
        sa.Column("context_entity_source", sa.String(255)),
        sa.Column("context_entity_source_id", sa.String(255)),
        sa.Column("changes", Document, nullable=False),
        sa.PrimaryKeyConstraint("org_id", "id", name="pk_customer_audits"),
    )
    op.create_index(
        "ix_customer_audits_org_id_customer_id_id", "customer_audits", ["org_id", "customer_id", "id"]
    )
    if _on_sqlite():
        op.create_index("ix_customer_audits_id", "customer_audits", ["id"])


def downgrade() -> None:
    op.drop_table("customer_audits")
    op.drop_table("customers")
    op.drop_table("api_clients")
    op.drop_table("tills")
    op.drop_table("orgs")
