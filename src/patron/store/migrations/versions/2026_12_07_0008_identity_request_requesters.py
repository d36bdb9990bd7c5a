"""Who stands behind an identity-change request, whatever road it came by (issue 29, items 7-8).

PLACEHOLDER: filled in by the work on that item.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
