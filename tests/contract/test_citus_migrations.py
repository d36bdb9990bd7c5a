"""`patron db upgrade` on a Citus coordinator: every migration applies to a distributed schema, and
each upgrade leaves every table distributed by org or a reference table, saying what it did."""

from __future__ import annotations

import asyncio

import asyncpg
from alembic.script import ScriptDirectory

from patron.store.citus import DISTRIBUTED_BY_ORG, REFERENCE
from patron.store.migrate import alembic_config, upgrade


def revisions(url: str) -> list[str]:
    script = ScriptDirectory.from_config(alembic_config(url))
    return [revision.revision for revision in reversed(list(script.walk_revisions()))]


async def distribution(url: str) -> dict[str, tuple[str, int]]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT logicalrelid::regclass::text AS name, partmethod, colocationid FROM pg_dist_partition")
        # partmethod is a "char": the driver hands it over as one byte.
        return {row["name"]: (bytes(row["partmethod"]).decode(), row["colocationid"]) for row in rows}
    finally:
        await conn.close()


async def tables(url: str) -> set[str]:
    conn = await asyncpg.connect(url)
    try:
        return {row["tablename"] for row in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    finally:
        await conn.close()


def test_every_migration_applies_to_a_distributed_schema(empty_citus_database):
    url = empty_citus_database
    steps = revisions(url)
    assert len(steps) >= 4
    for revision in steps:
        # Each step runs on the schema the step before left distributed.
        upgrade(url, revision)
        placed = asyncio.run(distribution(url))
        for table in asyncio.run(tables(url)) - {"alembic_version"}:
            expected = "h" if table in DISTRIBUTED_BY_ORG else "n"
            assert placed[table][0] == expected, (revision, table, placed.get(table))
        colocations = {placed[table][1] for table in DISTRIBUTED_BY_ORG if table in placed}
        assert len(colocations) == 1, (revision, colocations)
    assert set(placed) == set(DISTRIBUTED_BY_ORG) | set(REFERENCE)


def test_db_upgrade_says_what_it_distributed_and_then_nothing(empty_citus_database):
    first = upgrade(empty_citus_database)
    assert [line.split(":")[0] for line in first] == [*REFERENCE, *DISTRIBUTED_BY_ORG, first[-1].split(":")[0]]
    assert "patron_register_new" in first[-1]
    assert upgrade(empty_citus_database) == []
