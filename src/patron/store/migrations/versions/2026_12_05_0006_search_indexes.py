"""customer/search: indexes for name and identifier prefixes, and for the newest registrations.

On PostgreSQL the text indexes use text_pattern_ops, whose operators (~>=~, ~<~, =) compare by code
point whatever the database's collation: store/search.py writes a prefix as such a range. SQLite
ranges mobiles and emails on their unique indexes already. On Citus, CREATE INDEX on a distributed
table is made on each of its shards.

Building them reads the customers table once per index and blocks writes to it meanwhile: on a
large installation, run the upgrade in a quiet hour.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# (name, expression on SQLite, expression on PostgreSQL); None: not on that engine.
TEXT_INDEXES = (
    ("ix_customers_org_id_lower_firstname", "lower(firstname)", "lower(firstname) text_pattern_ops"),
    ("ix_customers_org_id_lower_lastname", "lower(lastname)", "lower(lastname) text_pattern_ops"),
    ("ix_customers_org_id_lower_external_id", "lower(external_id)", "lower(external_id) text_pattern_ops"),
    ("ix_customers_org_id_mobile", None, "mobile text_pattern_ops"),
    ("ix_customers_org_id_email", None, "email text_pattern_ops"),
)


def _on_postgresql() -> bool:
    return op.get_context().dialect.name == "postgresql"


def upgrade() -> None:
    postgresql = _on_postgresql()
    for name, on_sqlite, on_postgresql in TEXT_INDEXES:
        expression = on_postgresql if postgresql else on_sqlite
        if expression is not None:
            op.create_index(name, "customers", ["org_id", sa.text(expression)])
    op.create_index("ix_customers_org_id_registered_on_id", "customers", ["org_id", "registered_on", "id"])


def downgrade() -> None:
    op.drop_index("ix_customers_org_id_registered_on_id", "customers")
    postgresql = _on_postgresql()
    for name, on_sqlite, on_postgresql in reversed(TEXT_INDEXES):
        if (on_postgresql if postgresql else on_sqlite) is not None:
            op.drop_index(name, "customers")
