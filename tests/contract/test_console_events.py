"""The console's Events page (events.md §4) through HTTP, on every backend: the org's sinks with their
health and backlog, a sink's dead letters, and replays with a reason (CSRF, access, audit); the
sinks' state written by the relay itself (tests/test_relay.py's scripted sinks)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from support.console import Console
from support.api import Org
from support.orgs import org_document
from test_relay import Sinks, failing_with, register, relay_for, rows_of, webhook, without_its_row, no_relay_running

from patron.console.pages import events as console_events
from patron.console.sessions import page_of_form
from patron.orgs.apply import apply_org
from patron.orgs.file import parse_org_document
from patron.relay.sinks import Outcome
from patron.store.schema import event_replays, event_retries, event_sinks


@pytest.fixture
def events_org(app: Any, http: Any):  # noqa: ANN201
    """The retail test org with these [[webhooks]], its admin group (priya) with events write, its
    care group (ravi) with events read and its lookup group (meera) with none."""

    async def make(*hooks: dict[str, Any]) -> Org:
        document = org_document("retail")
        document["webhooks"] = list(hooks)
        levels = {"admin": "write", "care": "read"}
        for group in document["access_groups"]:
            if group["name"] in levels:
                group["events"] = levels[group["name"]]
        org_file = parse_org_document(document, "tests/orgs/retail.toml")
        await apply_org(app.state.services.engine, org_file)
        passwords = {t.code: t.password for s in org_file.stores for t in s.tills if t.password}
        passwords.update({user.login: user.password for user in org_file.console_users if user.password})
        return Org(http, org_file, passwords, app.state.services.engine)

    return make


async def dead_lettered(app: Any, org: Org, count: int = 3) -> tuple[Sinks, Any]:
    """`count` customers whose customerAdded the crm sink refused (422): dead letters."""
    sinks = Sinks()
    sinks.prepare(org)
    sinks["crm"].answer = failing_with(422, when=lambda delivery: delivery.event_name == "customerAdded")
    await register(org, count)
    relay = relay_for(app, org, sinks)
    await relay.run(once=True)
    return sinks, relay


def flash_of(html: str) -> str:
    found = re.search(r'<div class="flash" role="status">(.*?)</div>', html, re.S)
    assert found, html[:3000]
    return found.group(1)


async def replay(browser: Console, data: dict[str, str], sink: str = "crm") -> Any:
    return await browser.post(f"/console/events/{sink}/replay", data, token_from=f"/console/events/{sink}")


# The pages.


async def test_the_events_page_shows_each_sink_with_its_health_pending_lag_last_error_and_last_success(
    app, browser, events_org
):
    org = await events_org(webhook("crm"), webhook("warehouse"), webhook("sms"))
    sinks = Sinks()
    sinks.prepare(org)
    sinks["crm"].answer = failing_with(503)
    sinks["warehouse"].answer = failing_with(410, when=lambda delivery: delivery.event_name == "pointsIssued")
    await register(org, 2)
    await relay_for(app, org, sinks).run(once=True)
    await no_relay_running(org)
    await browser.as_user(org, "priya")
    page = await browser.http.get("/console/events")
    assert page.status_code == 200
    rows = {name: row for row in re.findall(r"<tr>(.*?)</tr>", page.text, re.S)
            for name in re.findall(r'href="/console/events/([a-z]+)"', row)}
    assert set(rows) == {"crm", "warehouse", "sms"}
    assert "Failing</span> since" in rows["crm"] and "HTTP 503: no" in rows["crm"]
    assert re.search(r'data-label="Pending" class="num">4<', rows["crm"])
    assert re.search(r'data-label="Oldest pending">\d+s<', rows["crm"])
    assert "Disabled</span> since" in rows["warehouse"] and "HTTP 410" in rows["warehouse"]
    assert ">OK<" in rows["sms"] and re.search(r'data-label="Pending" class="num">0<', rows["sms"])
    assert re.search(r'data-label="Last success">\d{4}-\d{2}-\d{2} \d{2}:\d{2}<', rows["sms"])
    assert "No relay has been seen in the last 30 seconds" in page.text


async def test_the_events_page_is_in_the_navigation_of_users_whose_group_has_events_access(browser, events_org):
    org = await events_org(webhook("crm"))
    for who, shown in (("priya", True), ("ravi", True), ("meera", False)):
        browser.http.cookies.clear()
        await browser.as_user(org, who)
        overview = await browser.http.get("/console/")
        assert ('href="/console/events"' in overview.text) is shown, who
        assert (await browser.http.get("/console/events")).status_code == (200 if shown else 403), who
        assert (await browser.http.get("/console/events/crm")).status_code == (200 if shown else 403), who


async def test_a_sinks_page_lists_its_dead_letters_newest_first_paged_with_links_to_their_customers(
    app, browser, events_org, monkeypatch
):
    monkeypatch.setattr(console_events, "DEAD_LETTER_PAGE", 2)
    org = await events_org(webhook("crm"))
    await dead_lettered(app, org, 3)
    dead = sorted(await rows_of(org, event_retries, status="dead"), key=lambda row: (row["updated_at"], row["position"]),
                  reverse=True)
    await browser.as_user(org, "priya")
    first = await browser.http.get("/console/events/crm")
    assert first.status_code == 200
    assert "3 events given up, most recent first: showing 1–2." in first.text
    customers = re.findall(r'data-label="Customer"><a href="/console/customers/(\d+)"', first.text)
    assert [int(c) for c in customers] == [row["customer_id"] for row in dead[:2]]
    assert first.text.count('data-label="Name">customerAdded<') == 2
    assert 'data-label="Last error">HTTP 422: no<' in first.text
    assert 'href="/console/events/crm?start=2" rel="next"' in first.text
    second = await browser.http.get("/console/events/crm?start=2")
    assert [int(c) for c in re.findall(r'href="/console/customers/(\d+)"', second.text)] == [dead[2]["customer_id"]]


async def test_an_unknown_sink_is_not_found(browser, events_org):
    org = await events_org(webhook("crm"))
    await browser.as_user(org, "priya")
    assert (await browser.http.get("/console/events/nowhere")).status_code == 404
    await without_its_row(org, "crm")
    refused = await replay(browser, {"what": "dead", "reason": "x"}, sink="crm")
    assert refused.status_code == 400  # no relay has started it yet: nothing to replay
    assert "No relay has started crm yet" in refused.text
    assert (await browser.http.post("/console/events/nowhere/replay", data={
        "csrf_token": await browser.csrf("/console/events"), "what": "dead", "reason": "x"})).status_code == 404


# Replays.


async def test_a_replay_needs_a_reason(app, browser, events_org):
    org = await events_org(webhook("crm"))
    await dead_lettered(app, org)
    await browser.as_user(org, "priya")
    for reason, message in (("  ", "Give a reason: it is kept with the replay."),
                            ("a\x00b", "The reason holds a NUL character"),
                            ("x" * 501, "The reason is longer than 500 characters.")):
        response = await replay(browser, {"what": "dead", "reason": reason})
        assert response.status_code == 400
        assert message in response.text
    assert await rows_of(org, event_replays) == []
    assert {row["status"] for row in await rows_of(org, event_retries)} == {"dead"}


async def test_a_replay_of_the_dead_letters_is_made_audited_with_the_console_user_and_its_reason(app, browser, events_org):
    org = await events_org(webhook("crm"))
    sinks, relay = await dead_lettered(app, org, 3)
    await browser.as_user(org, "priya")
    response = await replay(browser, {"what": "dead", "reason": "The CRM accepts the new schema"})
    assert response.status_code == 303 and response.headers["location"] == "/console/events/crm"
    page = await browser.http.get("/console/events/crm")
    assert flash_of(page.text) == "3 events put back in the queue of crm, due now."
    (record,) = await rows_of(org, event_replays)
    assert (record["requested_by"], record["reason"], record["sink"], record["events"]) == (
        f"console:{org.console_user('priya')}", "The CRM accepts the new schema", "crm", 3)
    assert "The CRM accepts the new schema" in page.text and "dead letters" in page.text  # recent replays
    sinks["crm"].answer = lambda delivery: Outcome("delivered")
    await relay.run(once=True)
    assert [body["eventName"] for body in sinks["crm"].bodies].count("customerAdded") == 3
    assert await rows_of(org, event_retries) == []


async def test_a_replay_of_one_event_sends_that_event_again(app, browser, events_org):
    org = await events_org(webhook("crm"))
    sinks = Sinks()
    await register(org, 1)
    relay = relay_for(app, org, sinks)
    await relay.run(once=True)
    event_id = sinks["crm"].bodies[0]["eventId"]
    await browser.as_user(org, "priya")
    response = await replay(browser, {"what": "event", "event_id": event_id, "reason": "Lost by the CRM"})
    assert response.status_code == 303
    await relay.run(once=True)
    assert sinks["crm"].delivered_ids().count(event_id) == 2
    (record,) = await rows_of(org, event_replays)
    assert (record["event_id"], record["events"]) == (event_id, 1)


async def test_a_replay_that_cannot_be_made_says_why_and_writes_nothing(app, browser, events_org):
    org = await events_org(webhook("crm"))
    await dead_lettered(app, org, 1)
    await browser.as_user(org, "priya")
    for data, message in (
        ({"what": "event", "event_id": "", "reason": "x"}, "Give the eventId of the event to send again."),
        ({"what": "event", "event_id": "not an id!", "reason": "x"}, "is not an eventId"),
        ({"what": "event", "event_id": "1b4e28ba-2fa1-11d2-883f-0016d3cca427", "reason": "x"}, "no such event is stored"),
        ({"reason": "x"}, "Choose what to send again"),
    ):
        response = await replay(browser, data)
        assert response.status_code == 400, data
        assert message in response.text, data
        assert "Nothing was replayed" in response.text
    assert await rows_of(org, event_replays) == []


async def test_a_replay_without_the_sessions_csrf_token_is_refused(app, browser, events_org):
    org = await events_org(webhook("crm"))
    await dead_lettered(app, org)
    await browser.as_user(org, "priya")
    for token in ({}, {"csrf_token": "forged"}):
        response = await browser.http.post("/console/events/crm/replay", data={"what": "dead", "reason": "x", **token})
        assert response.status_code == 403
    assert await rows_of(org, event_replays) == []
    assert {row["status"] for row in await rows_of(org, event_retries)} == {"dead"}


async def test_a_user_whose_group_only_reads_events_sees_no_replay_form_and_their_posts_are_refused(
    app, browser, events_org
):
    org = await events_org(webhook("crm"))
    await dead_lettered(app, org)
    await browser.as_user(org, "ravi")
    page = await browser.http.get("/console/events/crm")
    assert page.status_code == 200 and "customerAdded" in page.text
    assert "/replay" not in page.text and "Send again" not in page.text
    response = await replay(browser, {"what": "dead", "reason": "x"})
    assert response.status_code == 403
    assert await rows_of(org, event_replays) == []


async def test_a_disabled_sink_is_enabled_again_only_when_the_form_asks(app, browser, events_org):
    org = await events_org(webhook("crm"))
    sinks = Sinks()
    sinks.prepare(org)
    sinks["crm"].answer = failing_with(410, when=lambda delivery: delivery.event_name == "pointsIssued")
    await register(org, 1)
    await relay_for(app, org, sinks).run(once=True)
    await browser.as_user(org, "priya")
    page = await browser.http.get("/console/events/crm")
    assert 'name="enable" value="yes"' in page.text
    added = sinks["crm"].bodies[0]["eventId"]
    # The 410 left its batch unsent (the sink's position stays): the event is not yet sent again.
    kept = await replay(browser, {"what": "event", "event_id": added, "reason": "x"})
    assert kept.status_code == 400 and "not yet sent to the sink" in kept.text
    enabled = await replay(browser, {"what": "dead", "reason": "Endpoint restored", "enable": "yes"})
    assert enabled.status_code == 303
    page = await browser.http.get("/console/events/crm")
    assert "crm is enabled again." in flash_of(page.text)
    (crm,) = await rows_of(org, event_sinks)
    assert crm["disabled_at"] is None
    assert 'name="enable"' not in page.text


def test_a_sign_in_asked_by_a_replay_goes_back_to_the_sinks_page():
    assert page_of_form("/console/events/crm/replay") == "/console/events/crm"
