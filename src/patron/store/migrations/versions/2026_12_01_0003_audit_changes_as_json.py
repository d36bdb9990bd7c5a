"""Audit records keep their changes as json, not jsonb (PostgreSQL).

The audit log is written on every registration and read back whole, never queried inside: json
only checks the text, where jsonb parses it into its binary form, which cost PostgreSQL about
5 µs of its 30 µs per registered customer in a batch. SQLite keeps JSON text as before.

The change rewrites customer_audits under an exclusive lock: on a large installation, run
`patron db upgrade` in a quiet hour.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _on_postgresql() -> bool:
    return op.get_context().dialect.name == "postgresql"


def upgrade() -> None:
    if _on_postgresql():
        op.alter_column(
            "customer_audits", "changes", type_=sa.JSON(), existing_type=JSONB(), postgresql_using="changes::json"
        )


def downgrade() -> None:
    if _on_postgresql():
        op.alter_column(
            "customer_audits", "changes", type_=JSONB(), existing_type=sa.JSON(), postgresql_using="changes::jsonb"
        )
