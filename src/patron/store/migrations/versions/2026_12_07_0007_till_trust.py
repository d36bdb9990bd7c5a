"""Trust in a verified till or API client that survives a restart (issue 29, item 2): a keyed
digest of its verified secret, bound to the stored hash, per credential; on Citus distributed by the
credential's org, colocated with its customers, so that keeping it is a write on one shard.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "credential_trust",
        sa.Column("org_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("verified_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("org_id", "kind", "name", name="pk_credential_trust"),
    )


def downgrade() -> None:
    op.drop_table("credential_trust")
