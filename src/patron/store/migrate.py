"""Runs the Alembic migrations that create and evolve the schema."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

from patron.store import citus
from patron.store.db import async_url, create_engine

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("file_template", "%%(year)d_%%(month).2d_%%(day).2d_%%(rev)s_%%(slug)s")
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str, revision: str = "head") -> list[str]:
    """Bring the schema to `revision`; safe to run on every start. On a Citus coordinator, then
    distribute what is not yet distributed (store.citus); what that did, one line each."""
    command.upgrade(alembic_config(database_url), revision)
    if async_url(database_url).get_backend_name() != "postgresql":
        return []
    return asyncio.run(_distribute(database_url))


async def _distribute(database_url: str) -> list[str]:
    engine = create_engine(database_url)
    try:
        async with engine.begin() as conn:
            if not await citus.is_citus(conn):
                return []
            # One connection per worker for the whole transaction: the tables it distributes are
            # then written and read on it, whatever their number of shards.
            await conn.execute(text("SET LOCAL citus.multi_shard_modify_mode TO 'sequential'"))
            return await citus.distribute(conn)
    finally:
        await engine.dispose()


def head_revision() -> str:
    """The revision this Patron's migrations end at."""
    return ScriptDirectory.from_config(alembic_config("")).get_current_head() or ""


async def current_revision(engine: AsyncEngine) -> str | None:
    """The revision the database is at, or None when it was never migrated."""
    async with engine.connect() as conn:
        if not await conn.run_sync(lambda sync: inspect(sync).has_table("alembic_version")):
            return None
        return await conn.scalar(text("SELECT version_num FROM alembic_version"))

