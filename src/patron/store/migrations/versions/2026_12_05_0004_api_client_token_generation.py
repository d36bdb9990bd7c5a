"""API clients count their revocations: a token names the generation it was issued in.

A client removed from the org file (or given a new secret) moves to the next generation, so the
tokens issued before no longer match it, even when the same file is applied again later. Tokens
issued before this revision carry no generation and are read as generation 0.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_clients") as table:
        table.add_column(sa.Column("token_generation", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("api_clients") as table:
        table.drop_column("token_generation")
