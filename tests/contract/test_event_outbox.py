"""The outbox (events.md §1-2): every path that changes a customer writes its events in the same
transaction, numbered per customer; no commit, no event. Through the HTTP API on every backend."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import select

from support.api import item, new_mobile
from test_customer_update import update
from test_import import _applied, _csv
from test_identity_change import change, mobile_change, pending_of, review, storage_of
from test_registration import email_of

from patron.events.model import Event, Written
from patron.events.names import EventName
from patron.store.db import create_engine
from patron.store.schema import events


async def events_of(org, customer_id: int) -> list[dict[str, Any]]:
    """The customer's events as the outbox holds them, in sequence order."""
    async with org.engine.connect() as conn:
        rows = await conn.execute(
            select(events).where(events.c.org_id == org.id, events.c.customer_id == customer_id).order_by(events.c.sequence)
        )
        return [dict(row._mapping) for row in rows]


async def org_events(org) -> list[dict[str, Any]]:
    async with org.engine.connect() as conn:
        return [dict(row._mapping) for row in await conn.execute(select(events).where(events.c.org_id == org.id))]


def names(written: list[dict[str, Any]]) -> list[str]:
    return [event["name"] for event in written]


def updated_fields(event: dict[str, Any]) -> dict[str, tuple[str, Any, Any]]:
    return {f["fieldName"]: (f["fieldType"], f["previousValue"], f["currentValue"]) for f in event["data"]["updatedFields"]}


async def added(org, **fields: Any) -> dict[str, Any]:
    mobile = new_mobile()
    response = await org.add({"mobile": mobile, "email": email_of(mobile), **fields}, user_id="true")
    assert response.status_code == 200, response.text
    return item(response)


async def test_a_registration_writes_customer_added_and_its_points_with_sequences_from_1(org):
    customer = await added(org, firstname="Asha", lastname="Rao",
                           custom_fields={"field": [{"name": "city_name", "value": "Pune"}]})
    written = await events_of(org, customer["user_id"])
    assert names(written) == [EventName.CUSTOMER_ADDED, EventName.POINTS_ISSUED]
    assert [event["sequence"] for event in written] == [1, 2]
    first = written[0]
    assert (first["origin"], first["console_user"]) == ("api", None)
    data = first["data"]
    assert data["customerIdentifiers"]["instore"] == {"mobile": customer["mobile"], "email": customer["email"], "externalId": None}
    assert (data["firstName"], data["lastName"], data["loyaltyType"]) == ("Asha", "Rao", "LOYALTY")
    assert data["customFields"] == [{"key": "City_name", "value": "Pune"}]
    assert data["enteredBy"]["till"]["code"] == org.till()
    points = written[1]["data"]
    assert (points["reason"], points["awardedPoints"], points["loyaltyPoints"]) == ("REGISTRATION", 100, 100)


async def test_a_batch_writes_each_new_customers_events_and_none_for_a_failed_item(org):
    good = [{"mobile": new_mobile()} for _ in range(12)]
    response = await org.add(*good, {"mobile": "12"}, user_id="true")
    assert response.status_code == 200 or response.status_code == 201, response.text
    customers = response.json()["response"]["customers"]["customer"]
    written = await org_events(org)
    ids = {c["user_id"] for c in customers[:12]}
    assert {event["customer_id"] for event in written} == ids
    assert sorted(names(written)).count(EventName.CUSTOMER_ADDED) == 12


async def test_two_registrations_racing_for_one_mobile_write_one_customer_added(org):
    mobile = new_mobile()
    answers = await asyncio.gather(*(org.add({"mobile": mobile, "firstname": f"N{n}"}) for n in range(6)))
    assert all(answer.status_code == 200 for answer in answers)
    written = await org_events(org)
    assert names(written).count(EventName.CUSTOMER_ADDED) == 1
    (customer_id,) = {event["customer_id"] for event in written}
    sequences = [event["sequence"] for event in await events_of(org, customer_id)]
    assert sequences == list(range(1, len(sequences) + 1))


async def test_an_update_writes_customer_updated_naming_each_changed_field_and_its_type(make_org):
    org = await make_org(CONF_ALLOW_EMAIL_UPDATE=True)
    customer = await added(org, firstname="Asha")
    new_email = f"new.{customer['email']}"
    response = await update(org, {"mobile": customer["mobile"], "email": new_email, "firstname": "Ashwini",
                                  "custom_fields": {"field": [{"name": "city_name", "value": "Mysuru"}]}})
    assert response.status_code == 200, response.text
    written = await events_of(org, customer["user_id"])
    assert names(written)[-1] == EventName.CUSTOMER_UPDATED
    assert written[-1]["sequence"] == len(written)
    fields = updated_fields(written[-1])
    assert fields["firstname"] == ("Profile", "Asha", "Ashwini")
    assert fields["email"] == ("Identifier", customer["email"], new_email)
    assert fields["City_name"] == ("CustomField", None, "Mysuru")
    assert "updated_on" not in fields


async def test_an_update_that_changes_nothing_writes_no_event(org):
    customer = await added(org, firstname="Asha")
    before = await events_of(org, customer["user_id"])
    response = await update(org, {"mobile": customer["mobile"], "firstname": "Asha"})
    assert response.status_code == 200, response.text
    assert await events_of(org, customer["user_id"]) == before


async def test_a_failed_item_writes_no_event(org):
    await added(org)
    before = await org_events(org)
    refused = await org.add({"mobile": "12", "firstname": "Bad"})
    missing = await update(org, {"mobile": new_mobile(), "firstname": "Nobody"})
    assert [item(refused)["item_status"]["code"], item(missing)["item_status"]["code"]] != ["1000", "1000"]
    assert item(missing)["item_status"]["code"] == "1012"
    assert await org_events(org) == before


async def test_a_unit_that_rolls_back_leaves_no_event(app, org):
    customer = await added(org)
    before = await events_of(org, customer["user_id"])

    class Refused(Exception):
        pass

    written = Written(org.id, before[0]["created_at"], "rolled-back", "api")
    try:
        async with storage_of(app).unit_of_work() as unit:
            await unit.events.append(written, [Event(EventName.CUSTOMER_UPDATED, customer["user_id"], {"updatedFields": []})])
            raise Refused
    except Refused:
        pass
    assert await events_of(org, customer["user_id"]) == before
    response = await update(org, {"mobile": customer["mobile"], "lastname": "Rao"})
    assert response.status_code == 200
    # The sequence taken in the unit that rolled back was given back with it.
    assert [event["sequence"] for event in await events_of(org, customer["user_id"])] == list(range(1, len(before) + 2))


async def test_a_referral_writes_the_referees_events_and_the_referrers_points_in_its_own_sequence(make_org):
    org = await make_org("rewards")
    referrer_mobile = new_mobile()
    referrer = item(await org.add({"mobile": referrer_mobile}))
    code = item(await org.get(mobile=referrer_mobile))["referral_code"]
    referee = item(await org.add({"mobile": new_mobile(), "referral_code": code}))
    referee_events = await events_of(org, referee["user_id"])
    assert names(referee_events)[0] == EventName.CUSTOMER_ADDED
    reasons = {(e["data"]["reason"], e["data"].get("awardedPoints"), (e["data"].get("alternateCurrency") or {}).get("value"))
               for e in referee_events[1:]}
    assert ("REFEREE", 50, None) in reasons or any(r[0] in ("REGISTRATION", "REFEREE") for r in reasons)
    assert any(e["data"].get("alternateCurrency", {}).get("name") == "ac1" for e in referee_events[1:])
    referrer_events = await events_of(org, referrer["user_id"])
    last = referrer_events[-1]
    assert (last["name"], last["data"]["reason"], last["data"]["awardedPoints"], last["data"]["loyaltyPoints"]) == (
        EventName.POINTS_ISSUED, "REFERRER", 100, 200)
    assert last["data"]["customerIdentifiers"]["instore"]["mobile"] == referrer_mobile
    assert [event["sequence"] for event in referrer_events] == list(range(1, len(referrer_events) + 1))


async def test_an_identity_change_applied_at_once_writes_customer_updated_of_the_identifier(make_org):
    org = await make_org(CONF_IDENTITY_CHANGE_APPROVAL=False)
    customer = await added(org)
    new = new_mobile()
    assert (await change(org, mobile_change(customer, new))).status_code == 200
    last = (await events_of(org, customer["user_id"]))[-1]
    assert last["name"] == EventName.CUSTOMER_UPDATED
    assert updated_fields(last)["mobile"] == ("Identifier", customer["mobile"], new)


async def test_a_requested_identity_change_writes_request_updated_pending_then_approved_and_the_change(app, org):
    customer = await added(org)
    new = new_mobile()
    assert (await change(org, mobile_change(customer, new))).status_code == 200
    (request,) = await pending_of(app, org, customer["user_id"])
    requested = (await events_of(org, customer["user_id"]))[-1]
    assert (requested["name"], requested["data"]["status"], requested["data"]["newValue"]) == (
        EventName.REQUEST_UPDATED, "PENDING", new)
    await review(app, org, request.id, approve=True)
    decided, applied = (await events_of(org, customer["user_id"]))[-2:]
    assert (decided["name"], decided["data"]["status"], decided["origin"]) == (EventName.REQUEST_UPDATED, "APPROVED", "console")
    assert decided["data"]["decidedBy"] == org.console_user("priya")
    assert updated_fields(applied)["mobile"] == ("Identifier", customer["mobile"], new)
    assert applied["console_user"] == org.console_user("priya")


async def test_a_rejected_identity_change_writes_request_updated_rejected_and_no_change(app, org):
    customer = await added(org)
    assert (await change(org, mobile_change(customer, new_mobile()))).status_code == 200
    (request,) = await pending_of(app, org, customer["user_id"])
    await review(app, org, request.id, approve=False, reason="not the customer")
    last = (await events_of(org, customer["user_id"]))[-1]
    assert (last["name"], last["data"]["status"], last["data"]["reason"]) == (
        EventName.REQUEST_UPDATED, "REJECTED", "not the customer")


async def test_a_console_edit_writes_customer_updated_by_the_console_user(browser, org):
    customer = await added(org, firstname="Asha")
    await browser.as_user(org, "ravi")
    response = await browser.post(
        f"/console/customers/{customer['user_id']}/profile",
        {"firstname": "Ashwini", "lastname": "", "reason": "Customer called in"},
        f"/console/customers/{customer['user_id']}",
    )
    assert response.status_code == 303, response.text
    last = (await events_of(org, customer["user_id"]))[-1]
    assert (last["name"], last["origin"], last["console_user"]) == (
        EventName.CUSTOMER_UPDATED, "console", org.console_user("ravi"))
    assert last["data"]["enteredBy"] == {"consoleUser": org.console_user("ravi")}
    assert updated_fields(last)["firstname"] == ("Profile", "Asha", "Ashwini")


def test_an_import_writes_customer_added_from_the_import(patron, tmp_path, database_url):
    document = _applied(patron, tmp_path, "retail")
    mobiles = [new_mobile() for _ in range(3)]
    path = _csv(tmp_path, [f"{m},{m}@import.example,Asha,Pune,F" for m in mobiles])
    assert patron("customer", "import", str(path), "--org", str(document["org"]["id"])).exit_code == 0
    query = select(events.c.name, events.c.origin, events.c.sequence).where(events.c.org_id == document["org"]["id"])

    async def read() -> list[tuple[str, str, int]]:
        engine = create_engine(database_url)
        try:
            async with engine.connect() as conn:
                return [tuple(row) for row in await conn.execute(query)]
        finally:
            await engine.dispose()

    written = asyncio.run(read())
    assert sorted(written) == sorted([(EventName.CUSTOMER_ADDED, "import", 1)] * 3 + [(EventName.POINTS_ISSUED, "import", 2)] * 3)
