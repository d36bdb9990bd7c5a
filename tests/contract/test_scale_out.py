"""How `patron db upgrade` places each table on Citus, against the migrated schema and docs/scale-out.md."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import inspect

from support import ROOT
from patron.store.citus import DISTRIBUTED_BY_ORG, REFERENCE
from patron.store.schema import CUSTOMER_SCALE_TABLES

PAGE = ROOT / "docs" / "scale-out.md"
DISTRIBUTION_COLUMN = "org_id"
# What the page shows `patron db upgrade` printing on a Citus coordinator.
PLACED = re.compile(r"^\s*citus: (\w+): (reference table|distributed by org_id)", re.MULTILINE)
# Only Alembic's bookkeeping stays on the coordinator alone.
LOCAL_TABLES = {"alembic_version"}


def statements() -> tuple[list[str], list[str]]:
    """The tables `patron db upgrade` distributes by org and makes reference tables, in its order."""
    return list(DISTRIBUTED_BY_ORG), list(REFERENCE)


async def migrated_schema(app: Any) -> dict[str, dict[str, Any]]:
    def read(connection: Any) -> dict[str, dict[str, Any]]:
        inspector = inspect(connection)
        tables = {}
        for name in inspector.get_table_names():
            unique = [c["column_names"] for c in inspector.get_unique_constraints(name)]
            unique += [i["column_names"] for i in inspector.get_indexes(name) if i.get("unique")]
            tables[name] = {
                "columns": {column["name"] for column in inspector.get_columns(name)},
                "primary_key": inspector.get_pk_constraint(name)["constrained_columns"],
                "unique": unique,
                "references": {fk["referred_table"] for fk in inspector.get_foreign_keys(name)},
            }
        return tables

    async with app.state.services.engine.connect() as connection:
        return await connection.run_sync(read)


def test_the_page_shows_what_db_upgrade_does_on_citus_table_by_table():
    text = PAGE.read_text(encoding="utf-8")
    placed = PLACED.findall(text)
    distributed, reference = statements()
    assert placed == [(t, "reference table") for t in reference] + [(t, "distributed by org_id") for t in distributed]
    for table in LOCAL_TABLES:
        assert f"`{table}` is left a local table" in text


async def test_the_statements_name_exactly_the_tables_that_exist(app):
    tables = set(await migrated_schema(app))
    distributed, reference = statements()
    assert set(distributed) | set(reference) == tables - LOCAL_TABLES
    assert LOCAL_TABLES <= tables


def test_the_distributed_tables_are_the_schemas_customer_scale_tables():
    distributed, _ = statements()
    assert set(distributed) == set(CUSTOMER_SCALE_TABLES)


async def test_every_distributed_table_has_org_id_in_its_primary_key_and_every_unique_index(app):
    schema = await migrated_schema(app)
    distributed, _ = statements()
    # The identifiers' unique indexes are what makes this check bite; it must see them.
    assert any(schema[table]["unique"] for table in distributed)
    for table in distributed:
        shape = schema[table]
        assert DISTRIBUTION_COLUMN in shape["columns"], table
        assert DISTRIBUTION_COLUMN in shape["primary_key"], f"{table} primary key {shape['primary_key']}"
        for columns in shape["unique"]:
            assert DISTRIBUTION_COLUMN in columns, f"{table} unique on {columns}"


async def test_every_other_table_is_a_reference_table_created_after_those_it_references(app):
    schema = await migrated_schema(app)
    distributed, reference = statements()
    for table in set(schema) - set(distributed) - LOCAL_TABLES:
        assert table in reference, f"{table} is neither distributed nor a reference table"
    for position, table in enumerate(reference):
        for referred in schema[table]["references"]:
            assert referred in reference[:position], f"{table} references {referred}, which must come first"
    for table in distributed:
        # A distributed table may reference only reference tables (Citus refuses the rest).
        assert schema[table]["references"] <= set(reference), table
