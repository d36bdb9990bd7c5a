"""A search cannot wear Patron down for others (issue 29, item 1), through HTTP on every backend:
each search is answered within its deadline with its result or a 504 that says so, and the database
stops working on it then; SQLite's searches run off the event loop; matches are counted up to
10,000 ("10,000+"); a caller and a worker run only so many searches at once; the console does not
run a search that another site's link asks for.

The rules that bound a query before it runs (merged repeats, the caps on scanning conditions and
suffixes) are unit tests: tests/unit/test_search_query.py."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from sqlalchemy import insert, select

from support.api import Org, item, new_mobile
from patron.admission import SearchGate
from patron.codes import Code
from patron.customers.search.query import MAX_COUNTED, Page, read_query
from patron.customers.search.run import search
from patron.orgs.model import OrgSettings
from patron.store.schema import customers
from test_openapi import assert_documented_answer

PATH = "/v1.1/customer/search"
# A condition no index serves: it reads every customer of the org, and parses each one's fields.
SCANNING = "City_name:ENDS:nowhere-at-all"


async def copies(org: Org, count: int) -> None:
    """`count` more customers of the org, written straight to the table (the API would take
    minutes): copies of one registered customer, each with a mobile of its own."""
    mobile = new_mobile()
    added = item(await org.add({"mobile": mobile, "custom_fields": {"field": [{"name": "City_name", "value": "Pune"}]}}))
    async with org.engine.begin() as conn:
        template = dict((await conn.execute(select(customers).where(
            customers.c.org_id == org.id, customers.c.id == added["user_id"]))).mappings().one())
        unique = {"mobile", "email", "referral_code"} | {name for name in template if name.startswith("external_id")}
        # Ids far above the API's own, and of this org's alone (SQLite keeps ids unique in the file).
        base = 1_000_000_000 + org.id % 10_000 * 100_000
        rows = []
        for n in range(count):
            row = {**template, **{name: None for name in unique}}
            row["id"], row["mobile"] = base + n, f"9170{n:08d}"
            rows.append(row)
        for start in range(0, count, 5_000):
            await conn.execute(insert(customers), rows[start:start + 5_000])


# One org of 30,000 customers per backend, shared by the tests that need a search slow enough to
# overrun a deadline or to still run when another request comes: writing it takes seconds on Citus.
_LARGE: dict[str, Org] = {}


@pytest.fixture
async def large_org(make_org: Any, database_url: str) -> Org:
    if database_url not in _LARGE:
        org = await make_org()
        await copies(org, 30_000)
        _LARGE[database_url] = org
    return _LARGE[database_url]


async def get_search(org: Org, q: str, **params: Any) -> httpx.Response:
    return await org.http.get(PATH, params={"q": q, **params}, headers=org.basic())


@pytest.fixture
def limits(app: Any, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    """Set the app's search limits for one test."""
    services = app.state.services

    def set_limits(*, timeout: float | None = None, per_worker: int = 4, per_caller: int = 2) -> None:
        if timeout is not None:
            monkeypatch.setattr(services, "settings", services.settings.model_copy(update={"search_timeout_seconds": timeout}))
        monkeypatch.setattr(services, "searches", SearchGate(per_worker, per_caller))

    return set_limits


async def test_a_search_past_its_deadline_is_answered_504_saying_how_to_narrow_it(large_org, limits):
    org = large_org
    limits(timeout=0.001)
    response = await get_search(org, SCANNING)
    assert response.status_code == 504, response.text
    status = response.json()["response"]["status"]
    assert status["code"] == int(Code.SEARCH_TIMED_OUT) and "within 0.001 s" in status["detail"]
    assert "index" in status["detail"]
    assert_documented_answer(response, PATH, "get")


async def test_the_database_stops_working_on_a_search_at_its_deadline(large_org, limits, database_url):
    if database_url.startswith("sqlite"):
        pytest.skip("SQLite's searcher: test_sqlite_stops_a_search_at_its_deadline_and_frees_its_connection")
    org = large_org
    limits(timeout=0.001)
    assert (await get_search(org, SCANNING)).status_code == 504
    # Nothing of the search is still running, on the database Patron talks to or on its workers.
    nodes = [org.engine.url.render_as_string(hide_password=False).replace("+asyncpg", "")]
    conn = await asyncpg.connect(nodes[0])
    try:
        if await conn.fetchval("SELECT count(*) FROM pg_extension WHERE extname = 'citus'"):
            nodes += [f"postgresql://postgres@{r['nodename']}:{r['nodeport']}/{conn._params.database}"
                      for r in await conn.fetch("SELECT nodename, nodeport FROM pg_dist_node WHERE groupid <> 0")]
    finally:
        await conn.close()
    for node in nodes:
        conn = await asyncpg.connect(node)
        try:
            running = await conn.fetch(
                "SELECT query FROM pg_stat_activity WHERE state = 'active' AND pid <> pg_backend_pid()"
                " AND query ILIKE '%City_name%' AND query NOT ILIKE '%pg_stat_activity%'"
            )
        finally:
            await conn.close()
        assert running == [], (node, running)


async def test_sqlite_stops_a_search_at_its_deadline_and_frees_its_connection(large_org, app, database_url, limits):
    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite's searcher")
    org = large_org
    limits(timeout=0.001)
    assert (await get_search(org, SCANNING)).status_code == 504
    searcher = app.state.services.storage.file.searcher
    assert all(not conn.in_transaction for conn in searcher.idle)
    limits(timeout=5)
    assert (await get_search(org, SCANNING)).json()["response"]["customer"]["count"] == 0


async def test_sqlite_searches_leave_the_event_loop_free_for_other_requests(large_org, app, database_url):
    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite's searcher: PostgreSQL's searches wait on the network, never on the loop")
    org = large_org
    settings = OrgSettings.from_file(org.file)
    query = read_query(SCANNING, settings)
    turns = 0

    async def other_requests() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    others = asyncio.create_task(other_requests())
    await asyncio.sleep(0)
    before = turns
    result = await search(settings, query, Page(0, 10), app.state.services.storage, 5.0)
    during = turns - before
    others.cancel()
    assert result.count == 0
    # Run on the loop, the search would have let nothing else run until it ended.
    assert during > 100, during


async def test_matches_are_counted_up_to_ten_thousand_and_said_to_be_more(large_org):
    org = large_org
    answer = (await get_search(org, "City_name:EQUALS:Pune", rows="3")).json()["response"]["customer"]
    assert (answer["count"], answer["count_capped"], len(answer["results"]["item"])) == (MAX_COUNTED, True, 3)
    exact = (await get_search(org, f"City_name:EQUALS:Pune&registered_date:GREATER:2000-01-01", rows="0"))
    assert exact.json()["response"]["customer"]["count_capped"] is True


async def test_a_count_below_the_cap_is_exact(org):
    await copies(org, 12)
    answer = (await get_search(org, "City_name:EQUALS:Pune", rows="0")).json()["response"]["customer"]
    assert (answer["count"], answer["count_capped"]) == (13, False)


async def test_paging_stops_at_the_counted_matches(org):
    response = await get_search(org, "firstname:STARTS:a", start=str(MAX_COUNTED))
    assert response.status_code == 400
    assert f"first {MAX_COUNTED} matches" in response.json()["response"]["status"]["detail"]


async def test_a_caller_runs_at_most_its_share_of_searches_at_once(large_org, limits):
    org = large_org
    limits(per_caller=1, timeout=30)
    first, second = await asyncio.gather(get_search(org, SCANNING), get_search(org, SCANNING))
    codes = sorted([first.status_code, second.status_code])
    assert codes == [200, 429], (first.text, second.text)
    refused = first if first.status_code == 429 else second
    assert refused.headers["retry-after"] == "1"
    assert "already has a search running" in refused.json()["response"]["status"]["detail"]
    # Another caller of the org is not held by this one's bound.
    other = org.till_named(f"till.two.{org.id}")
    answer = await org.http.get(PATH, params={"q": "firstname:EQUALS:x"}, headers=org.basic(other))
    assert answer.status_code == 200


async def test_a_worker_runs_at_most_its_searches_at_once_then_refuses_after_a_short_wait(large_org, limits):
    org = large_org
    limits(per_worker=1, per_caller=5, timeout=30)
    gate = org.http._transport.app.state.services.searches  # type: ignore[attr-defined]
    gate.wait_seconds = 0.0
    other = org.till_named(f"till.two.{org.id}")
    # Both tills verified beforehand: a first password check would let one search end first.
    assert (await org.http.get(PATH, params={"q": "firstname:EQUALS:x"}, headers=org.basic(other))).status_code == 200
    assert (await get_search(org, "firstname:EQUALS:x")).status_code == 200
    first, second = await asyncio.gather(
        get_search(org, SCANNING),
        org.http.get(PATH, params={"q": SCANNING}, headers=org.basic(other)),
    )
    assert sorted([first.status_code, second.status_code]) == [200, 429], (first.text, second.text)
    refused = first if first.status_code == 429 else second
    assert "the most it runs at once" in refused.json()["response"]["status"]["detail"]


async def test_look_ups_answer_while_searches_run(large_org, limits):
    org = large_org
    limits(timeout=30)
    mobile = new_mobile()
    await org.add({"mobile": mobile})
    answers = await asyncio.gather(*(get_search(org, SCANNING) for _ in range(2)), org.get(mobile=mobile))
    assert [a.status_code for a in answers] == [200, 200, 200]


# The console


async def test_the_console_does_not_run_a_search_another_sites_link_asks_for(browser, org):
    await org.add({"mobile": new_mobile(), "firstname": "Crosssite"})
    await browser.as_user(org, "meera")
    asked = {"q": "Crosssite"}
    refused = await browser.http.get("/console/customers", params=asked, headers={"Sec-Fetch-Site": "cross-site"})
    assert refused.status_code == 200
    assert "opened from another site, so it was not run" in refused.text
    assert 'value="Crosssite"' in refused.text and "customer found" not in refused.text
    for site in ("same-origin", "none", None):
        headers = {"Sec-Fetch-Site": site} if site else {}
        ran = await browser.http.get("/console/customers", params=asked, headers=headers)
        assert "1 customer found" in ran.text, site


async def test_the_console_says_a_search_ran_past_its_deadline(browser, large_org, limits):
    org = large_org
    limits(timeout=0.001)
    await browser.as_user(org, "meera")
    page = await browser.http.get("/console/customers", params={"filter": SCANNING})
    assert "did not finish within 0.001 s" in page.text, page.text[page.text.find("<main"):][:3000]


async def test_the_console_shows_a_capped_count_as_ten_thousand_plus(browser, large_org):
    org = large_org
    await browser.as_user(org, "meera")
    page = await browser.http.get("/console/customers", params={"filter": "City_name:EQUALS:Pune"})
    assert "10,000+ customers found" in page.text
