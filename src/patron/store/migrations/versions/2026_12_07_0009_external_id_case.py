"""External ids matched by a key, without regard to case where the org asks, and their look-alikes indexed (issue 29, item 9).

customers gains `external_id_key`, the external id as the org compares it (the external id itself,
or its case-folded NFKC form under CONF_EXTERNAL_ID_CASE_INSENSITIVE), and the org's unique index on
external ids moves onto it; and `external_id_skeleton`, what the external id looks like
(customers.external_ids.skeleton), with a partial index, so that a new external id's look-alikes
across scripts are found without a scan. Both are computed here, in Python, for every customer
that has an external id, a thousand rows at a time.

SQLite cannot drop a unique constraint without copying the table, which would also lose its
expression indexes: there the unique index on the external id as stored stays beside the key's,
which implies it.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

import json

import sqlalchemy as sa
from alembic import op

from patron.customers import external_ids

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_BATCH = 1000
_SETTING = "CONF_EXTERNAL_ID_CASE_INSENSITIVE"
_NOT_NULL = sa.text("external_id_skeleton IS NOT NULL")


def _on_sqlite() -> bool:
    return op.get_context().dialect.name == "sqlite"


def _ignoring_case(bind: sa.engine.Connection) -> set[int]:
    """The orgs whose stored definition matches external ids ignoring case."""
    ignoring: set[int] = set()
    for org_id, definition in bind.execute(sa.text("SELECT id, definition FROM orgs")).tuples():
        configs = (json.loads(definition) if isinstance(definition, str) else definition or {}).get("configs") or {}
        if configs.get(_SETTING) is True:
            ignoring.add(org_id)
    return ignoring


def _backfill(bind: sa.engine.Connection) -> None:
    ignoring = _ignoring_case(bind)
    after = (-1, -1)
    read = sa.text(
        "SELECT org_id, id, external_id FROM customers WHERE external_id IS NOT NULL AND (org_id, id) > (:org_id, :id)"
        " ORDER BY org_id, id LIMIT :size"
    )
    write = sa.text(
        "UPDATE customers SET external_id_key = :key, external_id_skeleton = :skeleton WHERE org_id = :org_id AND id = :id"
    )
    while True:
        rows = bind.execute(read, {"org_id": after[0], "id": after[1], "size": _BATCH}).all()
        if not rows:
            return
        values = []
        for org_id, customer_id, external_id in (row.tuple() for row in rows):
            key = external_ids.key(external_id, org_id in ignoring)
            values.append({"org_id": org_id, "id": customer_id, "key": key, "skeleton": external_ids.skeleton(key)})
        bind.execute(write, values)
        after = (rows[-1][0], rows[-1][1])


def upgrade() -> None:
    op.add_column("customers", sa.Column("external_id_key", sa.String()))
    op.add_column("customers", sa.Column("external_id_skeleton", sa.String()))
    _backfill(op.get_bind())
    op.create_index("uq_customers_org_id_external_id_key", "customers", ["org_id", "external_id_key"], unique=True)
    op.create_index(
        "ix_customers_org_id_external_id_skeleton", "customers", ["org_id", "external_id_skeleton"],
        postgresql_where=_NOT_NULL, sqlite_where=_NOT_NULL,
    )
    if not _on_sqlite():
        op.drop_constraint("uq_customers_org_id_external_id", "customers", type_="unique")


def downgrade() -> None:
    if not _on_sqlite():
        op.create_unique_constraint("uq_customers_org_id_external_id", "customers", ["org_id", "external_id"])
    op.drop_index("ix_customers_org_id_external_id_skeleton", "customers")
    op.drop_index("uq_customers_org_id_external_id_key", "customers")
    # Plain statements: SQLite drops a column in place, without the copy a batch would make.
    op.execute("ALTER TABLE customers DROP COLUMN external_id_skeleton")
    op.execute("ALTER TABLE customers DROP COLUMN external_id_key")
