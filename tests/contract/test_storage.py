"""Storage: the schema's shape, SQLite's settings, races on one identifier, an unreachable database."""

from __future__ import annotations

import asyncio

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import inspect, text

from support.api import item, new_mobile
from patron.api.app import create_app
from patron.settings import Settings
from patron.store.db import DatabaseUnavailable, create_driver_pool
from patron.store.schema import CUSTOMER_SCALE_TABLES


async def test_customer_tables_key_on_org_id_for_distribution(app):
    engine = app.state.services.engine

    def shape(sync_conn):
        inspector = inspect(sync_conn)
        result = {}
        for table in CUSTOMER_SCALE_TABLES:
            unique = [c["column_names"] for c in inspector.get_unique_constraints(table)]
            unique += [i["column_names"] for i in inspector.get_indexes(table) if i["unique"]]
            result[table] = (inspector.get_pk_constraint(table)["constrained_columns"], unique)
        return result

    async with engine.connect() as conn:
        tables = await conn.run_sync(shape)
    for table, (primary_key, unique_indexes) in tables.items():
        assert primary_key[0] == "org_id", table
        for columns in unique_indexes:
            assert columns[0] == "org_id", (table, columns)


async def test_audit_changes_are_kept_as_written_json_on_postgresql(app):
    """Written with every registration and read back whole: json (checked text), not jsonb."""
    engine = app.state.services.engine
    if engine.dialect.name != "postgresql":
        return
    async with engine.connect() as conn:
        kind = await conn.scalar(
            text("SELECT data_type FROM information_schema.columns WHERE table_name = 'customer_audits' AND column_name = 'changes'")
        )
    assert kind == "json"


async def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(app):
    engine = app.state.services.engine
    if engine.dialect.name != "sqlite":
        return
    async with engine.connect() as conn:
        assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
        assert (await conn.execute(text("PRAGMA busy_timeout"))).scalar() >= 1000


async def test_concurrent_registrations_of_one_new_mobile_make_one_customer(org):
    mobile = new_mobile()
    responses = await asyncio.gather(*(org.add({"mobile": mobile, "firstname": f"Racer{n}"}) for n in range(32)))
    assert all(response.status_code == 200 for response in responses)
    items = [item(response) for response in responses]
    assert all(i["item_status"]["code"] == "1000" for i in items)
    assert len({i["user_id"] for i in items}) == 1
    messages = [i["item_status"]["message"] for i in items]
    assert messages.count("Customer registration successful") == 1
    assert messages.count("Customer successfully updated") == 31


async def test_concurrent_updates_of_one_customer_lose_no_field(org):
    """Two requests that change different fields of one customer at once both count: each
    update reads the customer it changes under a lock, never a copy another request is replacing."""
    mobiles = [new_mobile() for _ in range(30)]
    for mobile in mobiles:
        assert (await org.add({"mobile": mobile, "firstname": "Old", "lastname": "Old"})).status_code == 200
    renames = [org.add({"mobile": mobile, "firstname": "First"}) for mobile in mobiles]
    relabels = [org.add({"mobile": mobile, "lastname": "Last"}) for mobile in mobiles]
    answers = await asyncio.gather(*(call for pair in zip(renames, relabels) for call in pair))
    assert {item(answer)["item_status"]["code"] for answer in answers} == {"1000"}
    kept = [item(await org.get(mobile=mobile)) for mobile in mobiles]
    assert [(k["firstname"], k["lastname"]) for k in kept] == [("First", "Last")] * len(mobiles)


async def test_concurrent_writers_on_many_customers_all_succeed(org):
    responses = await asyncio.gather(*(org.add({"mobile": new_mobile()}) for _ in range(40)))
    assert [response.status_code for response in responses] == [200] * 40


async def test_an_unreachable_database_is_503_in_the_envelope():
    settings = Settings(
        database_url="postgresql://postgres@127.0.0.1:9/nowhere", secret_key="x" * 32, db_timeout_seconds=1
    )
    application = create_app(settings)
    async with LifespanManager(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://patron.test") as client:
            response = await client.post(
                "/v1.1/customer/add",
                json={"root": {"customer": [{"mobile": new_mobile()}]}},
                headers={"Authorization": "Basic dGlsbDphYmM="},
            )
            ready = await client.get("/ready")
    assert response.status_code == 503
    assert response.json()["response"]["status"] == {
        "success": "false", "code": 503, "message": "Service temporarily unavailable",
    }
    assert ready.status_code == 503


async def test_a_new_password_in_the_org_file_retires_the_cached_old_one(make_org, app):
    from patron.orgs.apply import apply_org
    from patron.orgs.file import parse_org_document

    org = await make_org()
    assert (await org.get(mobile=new_mobile())).status_code == 500  # authenticated, not found
    document = org.file.model_dump(mode="json")
    document["stores"][0]["tills"][0]["password"] = "Changed99"
    await apply_org(app.state.services.engine, parse_org_document(document))
    assert (await org.get(mobile=new_mobile())).status_code == 401
    org.passwords[org.till()] = "Changed99"
    assert (await org.get(mobile=new_mobile())).status_code == 500


async def test_a_driver_connection_lost_mid_statement_is_503_and_replaced(org, database_url):
    """New registrations run on the driver's own pool (PostgreSQL): a connection the server drops
    while its statement waits is answered 503, and the next request gets a working connection."""
    if not database_url.startswith("postgresql"):
        pytest.skip("the driver pool is PostgreSQL's")
    application = create_app(Settings(database_url=database_url, secret_key="x" * 32, db_pool_size=1))
    async with LifespanManager(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://patron.test") as client:

            async def add() -> int:
                body = {"root": {"customer": [{"mobile": new_mobile()}]}}
                return (await client.post("/v1.1/customer/add", json=body, headers=org.basic())).status_code

            assert await add() == 200
            async with application.state.services.storage.driver.pool.acquire() as conn:
                backend = conn.get_server_pid()
            locker = await asyncpg.connect(database_url)
            try:
                async with locker.transaction():
                    await locker.execute("LOCK TABLE customers IN ACCESS EXCLUSIVE MODE")
                    waiting = asyncio.create_task(add())
                    await asyncio.sleep(0.3)
                    assert await locker.fetchval("SELECT pg_terminate_backend(CAST($1 AS integer))", backend)
                    lost = await waiting
            finally:
                await locker.close()
            after = await add()
    assert (lost, after) == (503, 200)


async def test_units_beyond_the_driver_pool_wait_for_a_connection_then_503_after_the_timeout(database_url):
    """Every connection taken: a unit waits for one to come back, and gives up with 503 once the
    database timeout has passed, leaving the pool whole."""
    if not database_url.startswith("postgresql"):
        pytest.skip("the driver pool is PostgreSQL's")
    driver = await create_driver_pool(database_url, size=1, timeout=0.3)
    try:
        held = asyncio.Event()

        async def hold(seconds: float) -> None:
            async with driver.connection() as conn:
                await conn.fetchval("SELECT 1")
                held.set()
                await asyncio.sleep(seconds)

        async def unit() -> int:
            async with driver.connection() as conn:
                return await conn.fetchval("SELECT 2")

        holder = asyncio.create_task(hold(0.1))
        await held.wait()
        assert await unit() == 2, "a short wait ends with the released connection"
        await holder

        held.clear()
        holder = asyncio.create_task(hold(1.0))
        await held.wait()
        with pytest.raises(DatabaseUnavailable):
            await unit()
        await holder
        assert await unit() == 2, "the unit that gave up took nothing with it"
    finally:
        await driver.close()


async def test_a_driver_connection_left_in_a_transaction_is_never_lent_again(database_url):
    """Updates run in transactions on driver connections, which are returned without a reset: one
    returned with its transaction still open is dropped, so no later unit runs inside it."""
    if not database_url.startswith("postgresql"):
        pytest.skip("the driver pool is PostgreSQL's")
    driver = await create_driver_pool(database_url, size=1, timeout=1.0)
    try:
        async with driver.connection() as conn:
            left_open = conn.get_server_pid()
            await conn.execute("BEGIN")
        async with driver.connection() as conn:
            assert not conn.is_in_transaction()
            assert conn.get_server_pid() != left_open
    finally:
        await driver.close()


async def test_a_unit_cancelled_mid_statement_leaves_the_driver_pool_usable_at_once(database_url):
    """A request cancelled while its statement runs (its caller hung up, the server shut down)
    does not leave its connection busy: the next unit, on a pool of one, runs at once."""
    if not database_url.startswith("postgresql"):
        pytest.skip("the driver pool is PostgreSQL's")
    driver = await create_driver_pool(database_url, size=1, timeout=1.0)
    try:
        started = asyncio.Event()

        async def slow() -> None:
            async with driver.connection() as conn:
                started.set()
                await conn.execute("SELECT pg_sleep(5)")

        task = asyncio.create_task(slow())
        await started.wait()
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        async with asyncio.timeout(1.0), driver.connection() as conn:
            assert await conn.fetchval("SELECT 4") == 4
            assert not conn.is_in_transaction()
    finally:
        await driver.close()


@pytest.mark.parametrize("count", [3, 12], ids=["row-by-row", "set-at-once"])
async def test_new_customers_written_together_are_each_written_whole_unless_an_earlier_one_took_their_identifier(
    app, make_org, count
):
    """The store's contract for new customers written together (on Citus, a function that writes
    a few row by row and many with one statement a table): in the order given, each with its audit
    record, membership and ledger entry, except a later one that shares an identifier with an
    earlier one, of which nothing is written."""
    from datetime import datetime, timezone

    from patron.checks import check_org
    from patron.customers.model import Caller, CustomerInput
    from patron.customers.registration import _plan_new

    org = await make_org("rewards")
    settings = await app.state.services.orgs.get(org.id)
    caller = Caller(org=settings, till_code=org.till(), api_client_key=None, request_id="store-contract")
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    mobiles = [new_mobile() for _ in range(count)]
    taken = count // 2
    mobiles[taken] = mobiles[0]
    welcomes: dict = {}
    new = [_plan_new(CustomerInput(mobile=mobile, firstname=f"N{n}"), caller, now, welcomes) for n, mobile in enumerate(mobiles)]

    ids = await app.state.services.storage.insert_new(new, caller, now)

    assert [customer_id is None for customer_id in ids] == [n == taken for n in range(count)]
    first = item(await org.get(mobile=mobiles[0]))
    assert (first["user_id"], first["firstname"]) == (ids[0], "N0")
    for n, mobile in enumerate(mobiles):
        if n != taken:
            found = item(await org.get(mobile=mobile))
            assert (found["user_id"], found["loyalty_points"]) == (ids[n], 100), found
    assert await check_org(org.engine, org.id) == []


async def test_only_a_unique_violation_is_a_race_for_an_identifier(app, org):
    """A unique index's refusal is a race, resolved again (IdentifierTaken); any other refusal of
    the database (here NOT NULL) is a fault of the write, never retried as a race."""
    import dataclasses
    from datetime import datetime

    from patron.customers.model import IdentifierTaken

    mobile = new_mobile()
    item(await org.add({"mobile": mobile}))
    storage = app.state.services.storage
    async with storage.unit_of_work(readonly=True) as unit:
        existing = await unit.customers.find(org.id, "mobile", mobile)
    assert existing is not None
    taken = dataclasses.replace(existing, referral_code=None)
    with pytest.raises(IdentifierTaken):
        async with storage.unit_of_work() as unit:
            await unit.customers.insert(taken, datetime(2026, 12, 5))
    broken = dataclasses.replace(existing, mobile=new_mobile(), referral_code=None, type=None)
    with pytest.raises(Exception) as raised:
        async with storage.unit_of_work() as unit:
            await unit.customers.insert(broken, datetime(2026, 12, 5))
    assert not isinstance(raised.value, IdentifierTaken), raised.value
