"""External ids matched without regard to case where the org asks (issue 29, item 9).

PLACEHOLDER: filled in by the work on that item.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
