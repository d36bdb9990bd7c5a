"""Citus: what `patron db upgrade` does on a coordinator, so that every org's data lives on one shard."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from patron.store.postgres import REGISTER_NEW_SIGNATURE, register_new_function
from patron.store.schema import CUSTOMER_SCALE_TABLES, metadata

# The customer-scale tables, distributed by org_id in one colocation group: an org's customers,
# audits, memberships, ledger and referrals share a shard, so that every statement about one org
# runs on one worker, joins included. The first is the group's anchor.
DISTRIBUTED_BY_ORG = CUSTOMER_SCALE_TABLES
# The other tables but Alembic's bookkeeping (left on the coordinator): the small configuration
# tables, copied to every node, in the order they refer to each other.
REFERENCE = tuple(table.name for table in metadata.sorted_tables if table.name not in CUSTOMER_SCALE_TABLES)
DISTRIBUTION_COLUMN = "org_id"


async def is_citus(conn: AsyncConnection) -> bool:
    return bool(await conn.scalar(text("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus')")))


async def distribute(conn: AsyncConnection) -> list[str]:
    """Make the schema Citus's, idempotently: the reference tables, the customer tables by org,
    and the registration function delegated by org. What it did, one line each (nothing when
    the schema already was)."""
    done = []
    kinds: dict[str, str] = dict(
        (await conn.execute(text("SELECT logicalrelid::regclass::text, partmethod FROM pg_dist_partition"))).all()
    )
    # An earlier revision has fewer tables: those it has are distributed now, the rest when they come.
    existing: set[str] = set((await conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"))).scalars())
    for table in REFERENCE:
        if table in existing and table not in kinds:
            await conn.execute(text("SELECT create_reference_table(:table)"), {"table": table})
            done.append(f"{table}: reference table (a copy on every node)")
    for table in DISTRIBUTED_BY_ORG:
        if table in existing and table not in kinds:
            anchor = "none" if table == DISTRIBUTED_BY_ORG[0] else DISTRIBUTED_BY_ORG[0]
            await conn.execute(
                text("SELECT create_distributed_table(:table, :column, colocate_with => :anchor)"),
                {"table": table, "column": DISTRIBUTION_COLUMN, "anchor": anchor},
            )
            done.append(f"{table}: distributed by {DISTRIBUTION_COLUMN}, colocated with {DISTRIBUTED_BY_ORG[0]}")
    if existing >= set(DISTRIBUTED_BY_ORG) and await _function_changed(conn):
        await conn.execute(text(register_new_function()))
        await conn.execute(
            text("SELECT create_distributed_function(:function, '$1', colocate_with => :anchor)"),
            {"function": REGISTER_NEW_SIGNATURE, "anchor": DISTRIBUTED_BY_ORG[0]},
        )
        done.append(f"{REGISTER_NEW_SIGNATURE}: installed, delegated to the worker of its org (argument 1)")
    return done


async def _function_changed(conn: AsyncConnection) -> bool:
    """Whether the registration function is missing, not distributed, or not the code's."""
    source = await conn.scalar(
        text(
            "SELECT p.prosrc FROM pg_proc p JOIN pg_dist_object d ON d.objid = p.oid"
            " WHERE p.oid = to_regprocedure(:function)"
        ),
        {"function": REGISTER_NEW_SIGNATURE},
    )
    if source is None:
        return True
    body = register_new_function()
    return source.strip() != body[body.index("$function$") + len("$function$") : body.rindex("$function$")].strip()
