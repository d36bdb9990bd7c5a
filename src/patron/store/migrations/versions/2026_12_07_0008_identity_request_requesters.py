"""Who stands behind an identity-change request, whatever road it came by (issue 29, items 7-8):
the caller as one key (`console:LOGIN`, `client:KEY` or `till:CODE`), the console users the org
file tied to that caller when it asked, and an API request's user-context headers; and an index
of each caller's pending requests, which CONF_IDENTITY_CHANGE_PENDING_PER_CALLER caps.

A request written before this revision gets its key from the till, API client or console user it
already names; it has no tied users and no user-context (the decision then compares the reviewer
with the org file as it is). On Citus, ALTER TABLE and CREATE INDEX reach every shard.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TABLE = "identity_change_requests"
INDEX = "ix_identity_change_requests_pending_requester"
PENDING = sa.text("status = 'PENDING'")
CONTEXT = ("context_entity_type", "context_entity_id", "context_entity_source", "context_entity_source_id")


def upgrade() -> None:
    op.add_column(TABLE, sa.Column("requester", sa.String(110), nullable=True))
    op.add_column(TABLE, sa.Column("requester_users", sa.String(4000), nullable=True))
    for name in CONTEXT:
        op.add_column(TABLE, sa.Column(name, sa.String(255), nullable=True))
    op.execute(
        f"UPDATE {TABLE} SET requester = CASE"
        " WHEN console_user IS NOT NULL THEN 'console:' || console_user"
        " WHEN api_client_key IS NOT NULL THEN 'client:' || api_client_key"
        " ELSE 'till:' || COALESCE(till_code, '') END"
    )
    op.create_index(INDEX, TABLE, ["org_id", "requester"], postgresql_where=PENDING, sqlite_where=PENDING)


def downgrade() -> None:
    op.drop_index(INDEX, TABLE)
    # Plain DROP COLUMN (SQLite 3.35 and later too): no index holds these columns any more, and
    # the table keeps its partial indexes, which a copy of it would have to rebuild.
    for name in reversed(("requester", "requester_users", *CONTEXT)):
        op.drop_column(TABLE, name)
