"""The event feed, GET /v1.1/events (events.md §3), and the retention that bounds it: through the
HTTP API on every backend, with the relay's part (positions, removal) run by the test."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

import httpx
import orjson
from sqlalchemy import func, select, update as sql_update

from support.api import item, new_mobile
from test_customer_update import update
from test_openapi import assert_documented_answer

from patron.api.context import utc_now
from patron.api.events import cursor_text
from patron.codes import MESSAGES, Code
from patron.events.build import envelope
from patron.events.model import StoredEvent
from patron.store.schema import events

FEED = "/v1.1/events"
RETENTION_DAYS = 30


def storage_of(app: Any) -> Any:
    return app.state.services.storage


def basic(org, group: str) -> dict[str, str]:
    """The Basic auth of the org's till of an access group: pos, crm (customer and events read), listener (events write)."""
    till = {"pos": "till.one", "crm": "till.crm", "listener": "till.listener"}[group]
    return org.basic(f"{till}.{org.id}")


async def feed(org, group: str = "crm", headers: dict[str, str] | None = None, **params: Any) -> httpx.Response:
    return await org.http.get(FEED, params=params, headers={**basic(org, group), **(headers or {})})


async def page(org, group: str = "crm", **params: Any) -> dict[str, Any]:
    response = await feed(org, group, **params)
    assert response.status_code == 200, response.text
    return response.json()


async def everything(org, group: str = "crm", **params: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every event the feed holds, read a page at a time from the oldest; and the pages."""
    pages, after = [], None
    while True:
        answer = await page(org, group, **({"after": after} if after else {}), **params)
        pages.append(answer)
        if not answer["events"]:
            return [event for one in pages for event in one["events"]], pages
        after = answer["next"]


async def registered(org, count: int = 1) -> list[dict[str, Any]]:
    """`count` new customers, registered by the org's pos till, 100 a request."""
    customers: list[dict[str, Any]] = []
    while len(customers) < count:
        batch = [{"mobile": new_mobile()} for _ in range(min(100, count - len(customers)))]
        response = await org.add(*batch, user_id="true")
        assert response.status_code == 200, response.text
        customers += response.json()["response"]["customers"]["customer"]
    return customers


async def positioned(app: Any, org) -> None:
    """What the relay does after each commit: give the org's committed events their positions."""
    while True:
        async with storage_of(app).unit_of_work() as unit:
            if not await unit.events.position_pending(org.id, 100):
                return


async def stored(app: Any, org) -> list[StoredEvent]:
    async with storage_of(app).unit_of_work(readonly=True) as unit:
        return await unit.events.read(org.id, 0, 100_000)


async def stream(app: Any, org) -> tuple[int, int]:
    async with storage_of(app).unit_of_work(readonly=True) as unit:
        return await unit.events.stream(org.id)


async def aged(org, through_position: int, days: int = RETENTION_DAYS + 1, from_position: int = 0) -> None:
    """Make the org's events at positions (from_position, through_position] `days` old."""
    async with org.engine.begin() as conn:
        await conn.execute(
            sql_update(events)
            .where(events.c.org_id == org.id, events.c.position > from_position, events.c.position <= through_position)
            .values(created_at=utc_now() - timedelta(days=days))
        )


async def remove_expired(app: Any, org, through: int, most: int = 1000, now: datetime | None = None) -> int:
    before = (now or utc_now()) - timedelta(days=RETENTION_DAYS)
    async with storage_of(app).unit_of_work() as unit:
        return await unit.events.remove_expired(org.id, before=before, through=through, most=most)


async def kept_positions(org) -> list[int]:
    async with org.engine.connect() as conn:
        rows = await conn.execute(
            select(events.c.position).where(events.c.org_id == org.id, events.c.position.is_not(None)).order_by(events.c.position)
        )
        return [row.position for row in rows]


def status(response: httpx.Response) -> dict[str, Any]:
    assert response.headers["content-type"].startswith("application/json"), response.headers
    return response.json()["response"]["status"]


# --- Who may read it ---------------------------------------------------------------------------


async def test_a_caller_without_events_read_is_denied_in_the_apis_envelope(make_org):
    org = await make_org("feed")
    denied = await feed(org, "pos")
    assert denied.status_code == 403
    assert status(denied) == {"success": "false", "code": 403, "message": MESSAGES[Code.ACCESS_DENIED]}
    anonymous = await org.http.get(FEED)
    assert anonymous.status_code == 401
    assert status(anonymous)["code"] == 401


async def test_a_caller_with_events_read_or_write_reads_the_feed(app, make_org):
    org = await make_org("feed")
    await registered(org)
    await positioned(app, org)
    for group in ("crm", "listener"):
        assert len((await page(org, group))["events"]) == 2, group


async def test_the_feed_holds_only_the_callers_orgs_events(app, make_org):
    ours, theirs = await make_org("feed"), await make_org("feed")
    our_customers = {c["user_id"] for c in await registered(ours, 3)}
    await registered(theirs, 4)
    await positioned(app, ours)
    await positioned(app, theirs)
    read, _ = await everything(ours)
    assert {event["orgId"] for event in read} == {ours.id}
    assert {event["data"]["customerIdentifiers"]["customerId"] for event in read} == our_customers
    assert len(read) == 6
    # A cursor of the other org's feed is not one of ours, whatever its position.
    other = await feed(ours, after=(await page(theirs))["next"])
    assert other.status_code == 400
    assert "after" in status(other)["detail"]


# --- What it holds, and in which order ---------------------------------------------------------


async def test_only_events_given_their_position_appear(app, make_org):
    org = await make_org("feed")
    await registered(org, 2)
    before = await page(org)
    assert before["events"] == []
    await positioned(app, org)
    after = await page(org, after=before["next"])
    assert len(after["events"]) == 4
    assert {stored_event.event_id for stored_event in await stored(app, org)} == {e["eventId"] for e in after["events"]}


async def test_each_customers_events_come_in_their_sequence_order(app, make_org):
    org = await make_org("feed")
    customers = await registered(org, 3)
    for round_ in range(3):
        for customer in reversed(customers):
            changed = await update(org, {"mobile": customer["mobile"], "firstname": f"Name{round_}"})
            assert item(changed)["item_status"]["code"] == "1000", changed.text
    await positioned(app, org)
    read, _ = await everything(org, limit="4")
    sequences: dict[int, list[int]] = defaultdict(list)
    for event in read:
        sequences[event["data"]["customerIdentifiers"]["customerId"]].append(event["sequence"])
    assert {customer["user_id"]: sequences[customer["user_id"]] for customer in customers} == {
        customer["user_id"]: [1, 2, 3, 4, 5] for customer in customers
    }


async def test_pages_of_100_chain_into_one_read_of_all_without_gap_or_repeat(app, make_org):
    org = await make_org("feed")
    await registered(org, 125)  # 250 events: each customer's customerAdded and pointsIssued
    await positioned(app, org)
    chained, pages = await everything(org)
    assert [len(one["events"]) for one in pages] == [100, 100, 50, 0]  # 100 by default
    whole = await page(org, limit="1000")
    assert chained == whole["events"]
    assert len({event["eventId"] for event in chained}) == 250
    async with org.engine.connect() as conn:
        assert (await conn.execute(select(func.count()).where(events.c.org_id == org.id))).scalar() == 250
    assert pages[-1]["next"] == pages[-2]["next"] == whole["next"]


async def test_next_is_the_same_cursor_when_no_event_follows_and_later_events_come_after_it(app, make_org):
    org = await make_org("feed")
    await registered(org)
    await positioned(app, org)
    first = await page(org)
    caught_up = await page(org, after=first["next"])
    assert caught_up == {"events": [], "next": first["next"]}
    await registered(org)
    await positioned(app, org)
    later = await page(org, after=caught_up["next"])
    assert [event["eventName"] for event in later["events"]] == ["customerAdded", "pointsIssued"]
    assert not {e["eventId"] for e in later["events"]} & {e["eventId"] for e in first["events"]}


async def test_an_empty_feed_answers_a_cursor_to_poll_with(make_org):
    org = await make_org("feed")
    empty = await page(org)
    assert empty == {"events": [], "next": cursor_text(org.id, 0)}
    assert await page(org, after=empty["next"]) == empty


# --- The parameters ------------------------------------------------------------------------------


async def test_a_malformed_cursor_is_refused_naming_after(make_org):
    org = await make_org("feed")
    good = cursor_text(org.id, 0)
    for cursor in ("not a cursor", "!!!!", "abc", good + "A", good[:-1], "MTIz", "eC4w", cursor_text(org.id, 0) + "=="):
        refused = await feed(org, after=cursor)
        assert refused.status_code == 400, cursor
        assert status(refused)["detail"].startswith("after is not a cursor of this feed"), cursor


async def test_a_cursor_past_the_end_of_the_stream_is_refused(make_org):
    org = await make_org("feed")
    refused = await feed(org, after=cursor_text(org.id, 5))
    assert refused.status_code == 400
    assert status(refused)["detail"].startswith("after is past the end of this org's events")


async def test_limit_is_a_whole_number_from_1_to_1000(app, make_org):
    org = await make_org("feed")
    await registered(org)
    await positioned(app, org)
    for limit in ("0", "1001", "-1", "ten", "1.5", "", "१०"):
        refused = await feed(org, limit=limit)
        assert refused.status_code == 400, limit
        assert status(refused)["detail"] == "limit must be a whole number from 1 to 1000 (default 100)"
    assert len((await page(org, limit="1"))["events"]) == 1
    assert len((await page(org, limit="1000"))["events"]) == 2


async def test_a_parameter_given_twice_is_refused(make_org):
    org = await make_org("feed")
    twice = await org.http.get(f"{FEED}?limit=5&limit=6", headers=basic(org, "crm"))
    assert twice.status_code == 400
    assert status(twice)["detail"] == "limit is given more than once"


async def test_the_feed_answers_json_only_its_refusals_too(app, make_org):
    org = await make_org("feed")
    await registered(org)
    await positioned(app, org)
    as_xml = await feed(org, format="xml")
    assert as_xml.status_code == 400
    assert "JSON only" in status(as_xml)["detail"]
    accepting_xml = {"Accept": "application/xml"}
    assert len((await feed(org, headers=accepting_xml)).json()["events"]) == 2
    assert status(await feed(org, "pos", headers=accepting_xml))["code"] == 403


# --- Personal data ---------------------------------------------------------------------------------


async def test_a_caller_that_may_read_customers_gets_the_events_sinks_with_pii_get(app, make_org):
    org = await make_org("feed")
    (customer,) = await registered(org)
    await positioned(app, org)
    read = (await page(org, "crm"))["events"]
    assert read == [envelope(event, pii=True) for event in await stored(app, org)]
    assert read[0]["data"]["customerIdentifiers"]["instore"]["mobile"] == customer["mobile"]


async def test_a_caller_with_events_only_gets_them_thin_as_a_sink_without_pii(app, make_org):
    org = await make_org("feed")
    (customer,) = await registered(org)
    assert item(await update(org, {"mobile": customer["mobile"], "firstname": "Asha"}))["item_status"]["code"] == "1000"
    await positioned(app, org)
    read = (await page(org, "listener"))["events"]
    assert read == [envelope(event, pii=False) for event in await stored(app, org)]
    added = read[0]["data"]
    assert added["customerIdentifiers"] == {"customerId": customer["user_id"], "instore": {"mobile": None, "email": None, "externalId": None}}
    assert (added["firstName"], added["lastName"]) == (None, None)
    assert orjson.dumps(read).decode().count(customer["mobile"]) == 0


# --- Retention ---------------------------------------------------------------------------------


async def test_retention_removes_positioned_events_created_before_the_limit_through_the_position_given(app, make_org):
    org = await make_org("feed")
    await registered(org, 5)
    await positioned(app, org)
    await aged(org, through_position=8)
    await registered(org, 2)  # old too, but without a position: never removed
    async with org.engine.begin() as conn:
        await conn.execute(sql_update(events).where(events.c.org_id == org.id, events.c.position.is_(None))
                           .values(created_at=utc_now() - timedelta(days=RETENTION_DAYS + 5)))
    assert await remove_expired(app, org, through=6) == 6
    assert await kept_positions(org) == [7, 8, 9, 10]
    assert await stream(app, org) == (10, 6)
    # Positions 9 and 10 are recent: the head of the stream goes up to its first event not expired.
    assert await remove_expired(app, org, through=10) == 2
    assert await kept_positions(org) == [9, 10]
    assert await stream(app, org) == (10, 8)
    async with org.engine.connect() as conn:
        unpositioned = select(func.count()).where(events.c.org_id == org.id, events.c.position.is_(None))
        assert (await conn.execute(unpositioned)).scalar() == 4


async def test_retention_removes_at_most_most_events_a_call(app, make_org):
    org = await make_org("feed")
    await registered(org, 4)
    await positioned(app, org)
    await aged(org, through_position=8)
    removed = [await remove_expired(app, org, through=8, most=3) for _ in range(4)]
    assert removed == [3, 3, 2, 0]
    assert await kept_positions(org) == []
    assert await stream(app, org) == (8, 8)


async def test_retention_leaves_no_gap_behind_the_first_event_not_expired(app, make_org):
    org = await make_org("feed")
    await registered(org, 5)
    await positioned(app, org)
    await aged(org, through_position=4)
    await aged(org, from_position=6, through_position=10)
    assert await remove_expired(app, org, through=10) == 4
    assert await kept_positions(org) == [5, 6, 7, 8, 9, 10]
    assert await stream(app, org) == (10, 4)


async def test_a_cursor_older_than_the_retention_is_answered_410_never_a_gap(app, make_org):
    org = await make_org("feed", CONF_EVENT_RETENTION_DAYS=7)
    await registered(org, 3)
    await positioned(app, org)
    old_cursor = (await page(org, limit="2"))["next"]
    await aged(org, through_position=4)
    assert await remove_expired(app, org, through=4) == 4
    gone = await feed(org, after=old_cursor)
    assert gone.status_code == 410
    assert status(gone) == {
        "success": "false", "code": 410, "message": MESSAGES[Code.CURSOR_EXPIRED],
        "detail": "the cursor is older than the retention of 7 days (CONF_EVENT_RETENTION_DAYS): events after it"
        " were removed; start again without after (from the oldest event kept), or from a recent cursor",
    }
    # Starting again: from the oldest event kept, which a cursor at the last one removed also reads.
    fresh = await page(org)
    assert [e["eventId"] for e in fresh["events"]] == [e.event_id for e in await stored(app, org)]
    assert len(fresh["events"]) == 2
    assert await page(org, after=cursor_text(org.id, 4)) == fresh


async def test_an_emptied_feed_starts_after_the_last_position_removed(app, make_org):
    org = await make_org("feed")
    await registered(org, 2)
    await positioned(app, org)
    await aged(org, through_position=4)
    assert await remove_expired(app, org, through=4) == 4
    assert await page(org) == {"events": [], "next": cursor_text(org.id, 4)}
    assert (await feed(org, after=cursor_text(org.id, 0))).status_code == 410


# --- The document ----------------------------------------------------------------------------------


async def test_the_feeds_answers_fit_the_documented_schema(app, make_org):
    org = await make_org("feed")
    await registered(org)
    await update(org, {"mobile": (await registered(org))[0]["mobile"], "firstname": "Ravi"})
    await positioned(app, org)
    for group in ("crm", "listener"):
        assert_documented_answer(await feed(org, group), FEED, "get")
    for refused in (
        await feed(org, limit="5000"),
        await feed(org, "pos"),
        await org.http.get(FEED),
    ):
        assert_documented_answer(refused, FEED, "get")
    await aged(org, through_position=2)
    await remove_expired(app, org, through=2)
    gone = await feed(org, after=cursor_text(org.id, 1))
    assert gone.status_code == 410
    assert_documented_answer(gone, FEED, "get")
