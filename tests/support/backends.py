"""The databases the suite runs against: where their servers are, whether they answer, and a
Citus database of its own on every node of a cluster."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator

import pytest

PG_ADMIN_DSN = os.environ.get("PATRON_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REQUIRE_PG = os.environ.get("PATRON_TEST_REQUIRE_PG") == "1"
# A database of a Citus cluster whose nodes are registered (../shared/citus/cluster.sh makes one):
# each run makes a database of its own on the coordinator and every worker beside it.
CITUS_ADMIN_DSN = os.environ.get("PATRON_TEST_CITUS", "postgresql://postgres@127.0.0.1:54350/patron")
REQUIRE_CITUS = os.environ.get("PATRON_TEST_REQUIRE_CITUS") == "1"
# The backends beside SQLite: (what is left out without it, its admin DSN, whether it is required,
# the variable that names it).
BACKENDS = {
    "postgresql": ("PostgreSQL half", PG_ADMIN_DSN, REQUIRE_PG, "PATRON_TEST_PG"),
    "citus": ("Citus third", CITUS_ADMIN_DSN, REQUIRE_CITUS, "PATRON_TEST_CITUS"),
}


def pg_reachable(dsn: str = PG_ADMIN_DSN) -> str | None:
    """None when a server answers at `dsn`, else why not."""
    import asyncpg

    async def probe() -> None:
        conn = await asyncpg.connect(dsn, timeout=3)
        await conn.close()

    try:
        asyncio.run(probe())
    except (OSError, asyncpg.PostgresError, asyncio.TimeoutError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


async def admin(statement: str, dsn: str = PG_ADMIN_DSN) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def postgresql_database(migrate: bool = True) -> Iterator[str]:
    """A PostgreSQL database of its own, migrated unless told not to; skipped (failed when
    required) without a server."""
    problem = pg_reachable()
    if problem:
        if REQUIRE_PG:
            pytest.fail(f"PostgreSQL is required (PATRON_TEST_REQUIRE_PG=1) but unreachable: {problem}")
        pytest.skip(f"PostgreSQL half skipped: no server at {PG_ADMIN_DSN} ({problem})")
    name = f"patron_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_DSN.rsplit("/", 1)[0] + f"/{name}"
    try:
        if migrate:
            from patron.store.migrate import upgrade

            upgrade(url)
        yield url
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def citus_database(migrate: bool = True) -> Iterator[str]:
    """A database of its own on every node of the cluster, with the extension and the workers
    registered, migrated (which distributes it) unless told not to."""
    problem = pg_reachable(CITUS_ADMIN_DSN)
    if problem:
        if REQUIRE_CITUS:
            pytest.fail(f"Citus is required (PATRON_TEST_REQUIRE_CITUS=1) but unreachable: {problem}")
        pytest.skip(f"Citus third skipped: no cluster at {CITUS_ADMIN_DSN} ({problem})")
    name = f"patron_test_{uuid.uuid4().hex[:12]}"
    coordinator, workers = asyncio.run(_citus_nodes())
    nodes = [coordinator, *workers]
    url = CITUS_ADMIN_DSN.rsplit("/", 1)[0] + f"/{name}"
    try:
        for host, port in nodes:
            asyncio.run(admin(f'CREATE DATABASE "{name}"', f"postgresql://postgres@{host}:{port}/postgres"))
            asyncio.run(admin("CREATE EXTENSION citus", f"postgresql://postgres@{host}:{port}/{name}"))
        asyncio.run(admin(
            f"SELECT citus_set_coordinator_host('{coordinator[0]}', {coordinator[1]});"
            + "".join(f"SELECT citus_add_node('{host}', {port});" for host, port in workers),
            url,
        ))
        if migrate:
            from patron.store.migrate import upgrade

            upgrade(url)
        yield url
    finally:
        for host, port in nodes:
            asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f"postgresql://postgres@{host}:{port}/postgres"))


async def _citus_nodes() -> tuple[tuple[str, int], list[tuple[str, int]]]:
    import asyncpg

    conn = await asyncpg.connect(CITUS_ADMIN_DSN)
    try:
        rows = await conn.fetch("SELECT nodename, nodeport, groupid FROM pg_dist_node WHERE noderole = 'primary' ORDER BY groupid")
    finally:
        await conn.close()
    coordinator = next(((r["nodename"], r["nodeport"]) for r in rows if r["groupid"] == 0), None)
    if coordinator is None:
        host, port = CITUS_ADMIN_DSN.split("@", 1)[1].split("/", 1)[0].split(":")
        coordinator = (host, int(port))
    return coordinator, [(r["nodename"], r["nodeport"]) for r in rows if r["groupid"] != 0]
