"""On Citus every hot statement runs on the one worker that holds its org: each statement Patron
sends for a registration, an update, a referral, a look-up, an audit read or `patron check` is
planned by the coordinator as one task on that worker (or a call delegated to it), and nothing
of it commits in two phases. A change that makes any of them fan out fails here."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest
from sqlalchemy import event

from support.api import item, new_mobile
from patron.checks import check_org
from patron.store.db import PatronConnection, create_engine

Statement = tuple[str, tuple[Any, ...]]
# Statements that only read the reference tables (orgs, tills, API clients): every node has them.
_REFERENCE_ONLY = re.compile(r"\bFROM (orgs|tills|api_clients)\b(?!.*\b(customers|customer_audits|memberships|points_ledger|referrals)\b)", re.S)
_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SET ", "SELECT SET_CONFIG(", "SELECT EXISTS (SELECT 1 FROM PG_EXTENSION")


@pytest.fixture
async def citus(database_url: str) -> str:
    """The database's URL, on Citus; the test is skipped on the other backends."""
    if database_url.startswith("sqlite"):
        pytest.skip("routing is Citus's")
    conn = await asyncpg.connect(database_url)
    try:
        on_citus = await conn.fetchval("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus')")
    finally:
        await conn.close()
    if not on_citus:
        pytest.skip("routing is Citus's")
    return database_url


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Statement]]:
    """Every statement Patron's driver connections send, with its values."""
    statements: list[Statement] = []
    for name in ("fetch", "fetchrow", "fetchval", "execute"):
        original = getattr(asyncpg.Connection, name)

        def recording(self: Any, query: str, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            if isinstance(self, PatronConnection):
                statements.append((query, args))
            return _original(self, query, *args, **kwargs)

        monkeypatch.setattr(PatronConnection, name, recording)
    original_many = asyncpg.Connection.executemany

    def recording_many(self: Any, query: str, args: Any, **kwargs: Any) -> Any:
        rows = list(args)
        if rows:
            statements.append((query, tuple(rows[0])))
        return original_many(self, query, rows, **kwargs)

    monkeypatch.setattr(PatronConnection, "executemany", recording_many)
    yield statements


async def _worker_of(conn: asyncpg.Connection, org_id: int) -> str:
    return await conn.fetchval(
        "SELECT nodename || ':' || nodeport FROM citus_shards"
        " WHERE shardid = get_shard_id_for_distribution_column('customers', CAST($1 AS bigint)) LIMIT 1",
        org_id,
    )


async def _routes(citus_url: str, org_id: int, statements: list[Statement]) -> list[str]:
    """Each statement's problem, if it does not run as one task on the org's worker."""
    conn = await asyncpg.connect(citus_url, server_settings={"plan_cache_mode": "force_custom_plan"})
    problems = []
    try:
        worker = await _worker_of(conn, org_id)
        for query, args in statements:
            text = query.strip()
            if text.upper().startswith(_CONTROL) or _REFERENCE_ONLY.search(text):
                continue
            try:
                plan = "\n".join(row[0] for row in await conn.fetch(f"EXPLAIN {await _typed(conn, text)}", *args))
            except asyncpg.PostgresError as exc:
                raise AssertionError(f"{exc}: {text}") from exc
            nodes = set(re.findall(r"Node: host=(\S+) port=(\d+)", plan))
            if (
                "Custom Scan (Citus" not in plan
                or "Distributed Subplan" in plan
                or re.findall(r"Task Count: (\d+)", plan) != ["1"]
                or {f"{host}:{port}" for host, port in nodes} != {worker}
            ):
                problems.append(f"{text[:160]}\n{plan}")
    finally:
        await conn.close()
    return problems


async def _typed(conn: asyncpg.Connection, query: str) -> str:
    """The query with each parameter cast to the type PostgreSQL gives it: EXPLAIN of a query
    cannot infer them where the query alone can."""
    types = [await conn.fetchval("SELECT format_type($1, NULL)", t.oid) for t in (await conn.prepare(query)).get_parameters()]
    return re.sub(r"\$(\d+)", lambda m: f"CAST(${m.group(1)} AS {types[int(m.group(1)) - 1]})", query)


def _hot(statements: list[Statement]) -> list[Statement]:
    """The statements of the request itself, without those that open a connection or a transaction."""
    return [(query, args) for query, args in statements if not query.strip().upper().startswith(_CONTROL)]


async def _two_phase_commits(citus_url: str) -> int:
    conn = await asyncpg.connect(citus_url)
    try:
        return await conn.fetchval("SELECT count(*) FROM pg_dist_transaction")
    finally:
        await conn.close()


async def _assert_on_one_shard(citus_url: str, org: Any, statements: list[Statement], committed_before: int) -> None:
    assert statements, "no statement was seen"
    assert await _routes(citus_url, org.id, statements) == []
    assert await _two_phase_commits(citus_url) == committed_before


async def test_a_new_registration_is_one_call_delegated_to_the_orgs_worker(citus, org, sent):
    before = await _two_phase_commits(citus)
    response = await org.add({"mobile": new_mobile(), "email": f"{new_mobile()}@example.com"})
    assert item(response)["item_status"]["code"] == "1000"
    assert [query for query, _ in _hot(sent)] == [query for query, _ in sent if "patron_register_new" in query]
    assert len(_hot(sent)) == 1
    await _assert_on_one_shard(citus, org, sent, before)


@pytest.mark.parametrize("size", [5, 20])
async def test_a_batch_of_new_registrations_is_one_call_on_the_orgs_worker(citus, make_org, sent, size):
    org = await make_org(BATCH_LIMIT=size)
    sent.clear()
    before = await _two_phase_commits(citus)
    response = await org.add(*({"mobile": new_mobile()} for _ in range(size)))
    assert response.status_code == 200
    assert len(_hot(sent)) == 1
    await _assert_on_one_shard(citus, org, sent, before)


async def test_an_update_runs_on_the_orgs_worker_without_two_phase_commit(citus, org, sent):
    mobile = new_mobile()
    await org.add({"mobile": mobile, "firstname": "Asha"})
    sent.clear()
    before = await _two_phase_commits(citus)
    response = await org.add({"mobile": mobile, "firstname": "Ravi", "email": f"{mobile}@example.com"})
    assert item(response)["item_status"]["message"] == "Customer successfully updated"
    await _assert_on_one_shard(citus, org, sent, before)


async def test_a_referral_runs_on_the_orgs_worker_without_two_phase_commit(citus, make_org, sent):
    org = await make_org("rewards")
    referrer = item(await org.add({"mobile": new_mobile()}))
    code = item(await org.get(id=referrer["user_id"]))["referral_code"]
    sent.clear()
    before = await _two_phase_commits(citus)
    response = await org.add({"mobile": new_mobile(), "referral_code": code})
    assert any(effect.get("is_referrer") == "true" for effect in item(response)["side_effects"]["effect"])
    await _assert_on_one_shard(citus, org, sent, before)


@pytest.mark.parametrize("key", ["mobile", "email", "external_id", "id"])
async def test_look_ups_by_every_identifier_and_lists_run_on_the_orgs_worker(citus, org, sent, key):
    mobiles = [new_mobile() for _ in range(3)]
    added = [item(await org.add({"mobile": m, "email": f"{m}@example.com", "external_id": f"ext-{m}"})) for m in mobiles]
    sent.clear()
    before = await _two_phase_commits(citus)
    values = [str(customer["user_id"] if key == "id" else customer[key]) for customer in added]
    for asked in (values[0], ",".join(values)):
        response = await org.get(**{key: asked})
        assert response.status_code == 200, response.text
    await _assert_on_one_shard(citus, org, sent, before)


async def test_an_audit_read_runs_on_the_orgs_worker(citus, org, sent):
    customer = item(await org.add({"mobile": new_mobile()}))
    sent.clear()
    admin = org.till_named("till.admin." + str(org.id))
    response = await org.http.get(
        "/api_gateway/v2/audits", params={"entityType": "CUSTOMER", "entityId": customer["user_id"]},
        headers=org.basic(admin),
    )
    assert response.status_code == 200, response.text
    await _assert_on_one_shard(citus, org, sent, await _two_phase_commits(citus))


async def test_patron_check_of_an_org_runs_on_its_worker(citus, make_org):
    org = await make_org("rewards")
    referrer = item(await org.add({"mobile": new_mobile()}))
    code = item(await org.get(id=referrer["user_id"]))["referral_code"]
    await org.add({"mobile": new_mobile(), "referral_code": code, "email": f"{new_mobile()}@example.com"})
    engine = create_engine(citus)
    statements: list[Statement] = []

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def record(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        statements.append((statement, tuple(parameters or ())))

    try:
        assert await check_org(engine, org.id) == []
    finally:
        await engine.dispose()
    checked = [(query, args) for query, args in statements if not query.upper().startswith(_CONTROL)]
    assert len(checked) > 5
    await _assert_on_one_shard(citus, org, checked, await _two_phase_commits(citus))


async def test_customer_update_runs_on_the_orgs_worker_without_two_phase_commit(citus, org, sent):
    mobile = new_mobile()
    await org.add({"mobile": mobile})
    sent.clear()
    before = await _two_phase_commits(citus)
    response = await org.http.post(
        "/v1.1/customer/update", json={"root": {"customer": {"mobile": mobile, "lastname": "Rao"}}}, headers=org.basic()
    )
    assert response.status_code == 200, response.text
    await _assert_on_one_shard(citus, org, sent, before)


async def test_an_identity_change_and_its_review_run_on_the_orgs_worker(citus, app, org, sent):
    from datetime import UTC, datetime

    from patron.orgs.model import OrgSettings
    from patron.customers.identity_review import decide, pending, requests_of

    mobile = new_mobile()
    customer = item(await org.add({"mobile": mobile}))
    sent.clear()
    before = await _two_phase_commits(citus)
    change = {"identifier": "mobile", "old_value": mobile, "new_value": new_mobile()}
    for _ in range(2):  # the second supersedes the first
        response = await org.http.post("/v1.1/customer/update_identity", json={"root": {"customer": change}},
                                       headers=org.basic())
        assert item(response)["item_status"]["code"] == "1040", response.text
    storage = app.state.services.storage
    (request,) = await pending(org.id, storage)
    await requests_of(org.id, customer["user_id"], storage)
    decision = await decide(OrgSettings.from_file(org.file), request.id, True, org.console_user("priya"), "verified",
                            storage, datetime.now(UTC).replace(tzinfo=None))
    assert decision.applied
    await _assert_on_one_shard(citus, org, sent, before)
