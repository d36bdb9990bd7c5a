"""Loyalty: memberships with their balances, the points ledger, referrals.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _on_sqlite() -> bool:
    # SQLite draws ids as max(id) + 1 and needs an index on id; PostgreSQL uses sequences.
    return op.get_context().dialect.name == "sqlite"


def upgrade() -> None:
    op.create_table(
        "memberships",
        sa.Column("org_id", sa.BigInteger(), nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("program_id", sa.BigInteger(), nullable=False),
        sa.Column("slab_serial", sa.Integer(), nullable=False),
        sa.Column("tier_expires_on", sa.Date(), nullable=False),
        sa.Column("lifetime_points", sa.BigInteger(), nullable=False),
        sa.Column("loyalty_points", sa.BigInteger(), nullable=False),
        sa.Column("enrolled_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("org_id", "customer_id", "program_id", name="pk_memberships"),
    )
    op.create_table(
        "points_ledger",
        sa.Column("org_id", sa.BigInteger(), nullable=False),
        sa.Column("id", sa.BigInteger(), sa.Identity(start=1), nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("program_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("currency", sa.String(64), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("org_id", "id", name="pk_points_ledger"),
    )
    op.create_index(
        "ix_points_ledger_org_id_customer_id_program_id", "points_ledger", ["org_id", "customer_id", "program_id"]
    )
    if _on_sqlite():
        op.create_index("ix_points_ledger_id", "points_ledger", ["id"])
    op.create_table(
        "referrals",
        sa.Column("org_id", sa.BigInteger(), nullable=False),
        sa.Column("referee_id", sa.BigInteger(), nullable=False),
        sa.Column("referrer_id", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("org_id", "referee_id", name="pk_referrals"),
    )


def downgrade() -> None:
    op.drop_table("referrals")
    op.drop_table("points_ledger")
    op.drop_table("memberships")
