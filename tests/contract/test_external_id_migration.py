"""Migration 0009 on a database that holds customers: every external id gets its key and skeleton
(the org's rule: as stored, or case-folded for an org whose definition ignores case), the unique
index moves onto the key, and a downgrade gives the schema back. On SQLite, PostgreSQL and Citus."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command

from support.backends import citus_database, postgresql_database
from patron.customers import external_ids
from patron.store.db import create_engine
from patron.store.migrate import alembic_config, upgrade

NOW = datetime(2026, 12, 7, 12, 0, 0)


@pytest.fixture(params=["sqlite", "postgresql", "citus"])
def unmigrated(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of each kind, not yet migrated."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'patron.db'}"
        return
    if request.param == "citus":
        yield from citus_database(migrate=False)
        return
    yield from postgresql_database(migrate=False)


def _run(url: str, *statements: tuple[str, dict]) -> list[tuple]:
    """Run the statements in one transaction; the rows of the last."""

    async def run() -> list[tuple]:
        engine = create_engine(url)
        try:
            async with engine.begin() as conn:
                for sql, values in statements:
                    result = await conn.execute(sa.text(sql), values)
                return [tuple(row) for row in result.all()] if result.returns_rows else []
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _org(org_id: int, ignore_case: bool) -> tuple[str, dict]:
    definition = json.dumps({"configs": {"CONF_EXTERNAL_ID_CASE_INSENSITIVE": ignore_case}})
    return (
        "INSERT INTO orgs (id, name, definition, definition_sha256, created_at, updated_at)"
        " VALUES (:id, 'Org', :definition, '', :now, :now)",
        {"id": org_id, "definition": definition, "now": NOW},
    )


def _customer(org_id: int, customer_id: int, external_id: str | None) -> tuple[str, dict]:
    return (
        "INSERT INTO customers (org_id, id, external_id, firstname, lastname, type, source, fraud_status,"
        " registered_on, updated_on, custom_fields, extended_fields, subscriptions, comm_channels, created_at, modified_at)"
        " VALUES (:org_id, :id, :external_id, '', '', 'LOYALTY', 'INSTORE', 'NONE', :now, :now, '[]', '[]', '[]', '[]', :now, :now)",
        {"org_id": org_id, "id": customer_id, "external_id": external_id, "now": NOW},
    )


def test_the_migration_keys_every_external_id_by_its_orgs_rule_and_moves_the_unique_index(unmigrated):
    upgrade(unmigrated, "0008")
    as_stored, ignoring = 81001, 81002
    _run(
        unmigrated,
        _org(as_stored, False), _org(ignoring, True),
        _customer(as_stored, 1, "ABC-1"), _customer(as_stored, 2, "abc-1"), _customer(as_stored, 3, None),
        _customer(ignoring, 4, "\u0421ARD-9"), _customer(ignoring, 5, "Other"),
    )
    upgrade(unmigrated)
    rows = _run(unmigrated, ("SELECT id, external_id_key, external_id_skeleton FROM customers ORDER BY id", {}))
    assert rows == [
        (1, "ABC-1", external_ids.skeleton("ABC-1")),
        (2, "abc-1", external_ids.skeleton("abc-1")),
        (3, None, None),
        (4, "\u0441ard-9", external_ids.skeleton("\u0441ard-9")),
        (5, "other", external_ids.skeleton("other")),
    ]
    # The org's unique index is on the key now: another spelling of a key is refused.
    with pytest.raises(sa.exc.IntegrityError):
        _run(unmigrated, (
            "INSERT INTO customers (org_id, id, external_id, external_id_key, firstname, lastname, type, source,"
            " fraud_status, registered_on, updated_on, custom_fields, extended_fields, subscriptions, comm_channels,"
            " created_at, modified_at) VALUES (:org_id, 6, 'OTHER', 'other', '', '', 'LOYALTY', 'INSTORE', 'NONE',"
            " :now, :now, '[]', '[]', '[]', '[]', :now, :now)",
            {"org_id": ignoring, "now": NOW},
        ))


def test_the_migration_goes_down_and_up_again(unmigrated):
    upgrade(unmigrated)
    command.downgrade(alembic_config(unmigrated), "0008")
    with pytest.raises(sa.exc.DBAPIError):
        _run(unmigrated, ("SELECT external_id_key FROM customers", {}))
    upgrade(unmigrated)
    assert _run(unmigrated, ("SELECT count(external_id_skeleton) FROM customers", {})) == [(0,)]
