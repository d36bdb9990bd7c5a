"""Trust in a verified till or API client that survives a restart (issue 29, item 2).

PLACEHOLDER: filled in by the work on that item.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
