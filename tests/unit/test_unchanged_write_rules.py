"""A write that changes nothing writes nothing (#30 item 5), as rules on the in-memory storage: no
UPDATE, no audit record, no event and updated_on kept, answered as an update is."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta
from typing import Any

from fakes import FakeStorage, update
from test_registration_rules import NOW, add, caller_of

from patron.bulk import import_batch
from patron.codes import UPDATED, USER_UPDATED, Code
from patron.customers.model import Customer
from patron.customers.registration import changes_nothing, register, update_customer_by_id
from patron.events.names import EventName
from patron.loyalty import rules

LATER = NOW + timedelta(hours=3)
ASHA = {
    "mobile": "919800000001", "email": "asha@example.com", "firstname": "Asha", "lastname": "Rao",
    "custom_fields": {"field": [{"name": "City_name", "value": "Pune"}]},
    "extended_fields": {"field": [{"name": "age_group", "value": "26-40"}]},
    "subscriptions": {"subscription": [{"channel": "SMS", "priority": "BULK", "is_subscribed": "1"}]},
    "commChannels": {"commChannel": [{"type": "email", "value": "asha@example.com", "primary": "true"}]},
}


def written(storage: FakeStorage) -> tuple[list[str], list[EventName]]:
    """The audit records' types and the outbox's events, in the order written."""
    return [a["event_type"] for a in storage.tables.audits], [event.name for _, _, event, _ in storage.tables.events]


async def test_an_add_that_changes_nothing_writes_nothing_and_is_answered_as_an_update():
    storage, caller = FakeStorage(), caller_of("retail")
    (created,) = await add(storage, caller, ASHA)
    before = written(storage)
    (again,) = await register([ASHA], caller, storage, LATER)
    assert (again.code, again.message, again.created, again.unchanged) == (Code.ITEM_OK, UPDATED, False, True)
    assert written(storage) == before and before[0] == ["CREATE"]
    assert storage.customer(ASHA["mobile"]) == created.customer
    assert again.customer == created.customer and again.customer.updated_on == NOW


async def test_a_customer_update_that_changes_nothing_writes_nothing_and_says_user_updated():
    storage, caller = FakeStorage(), caller_of("retail")
    await add(storage, caller, ASHA)
    before = written(storage)
    result = await update({"mobile": ASHA["mobile"], "lastname": "Rao"}, caller, storage, LATER)
    assert (result.code, result.message, result.unchanged) == (Code.ITEM_OK, USER_UPDATED, True)
    assert written(storage) == before
    assert storage.customer(ASHA["mobile"]).updated_on == NOW


async def test_a_console_edit_that_changes_nothing_writes_nothing():
    storage, caller = FakeStorage(), caller_of("retail")
    (created,) = await add(storage, caller, ASHA)
    before = written(storage)
    agent = dataclasses.replace(caller, till_code=None, console_user="ravi", reason="Customer called in")
    result = await update_customer_by_id(created.customer.id, {"firstname": "Asha"}, agent, storage, LATER)
    assert (result.code, result.message, result.unchanged) == (Code.ITEM_OK, USER_UPDATED, True)
    assert written(storage) == before


async def test_updated_on_alone_is_no_change():
    storage, caller = FakeStorage(), caller_of("retail")
    (created,) = await add(storage, caller, {**ASHA, "updated_on": "2025-05-29 09:10:00"})
    (again,) = await register([{"mobile": ASHA["mobile"], "updated_on": "2025-06-01"}], caller, storage, LATER)
    assert again.unchanged and len(storage.tables.audits) == 1
    assert storage.customer(ASHA["mobile"]).updated_on == created.customer.updated_on


async def test_a_value_not_applied_changes_nothing_and_is_still_warned_of():
    storage, caller = FakeStorage(), caller_of("retail")
    await add(storage, caller, ASHA)
    before = written(storage)
    refused = {"mobile": ASHA["mobile"], "custom_fields": {"field": [{"name": "pwgConsumption", "value": "lots"}]}}
    (again,) = await register([refused], caller, storage, LATER)
    assert again.unchanged and again.warnings.codes == [Code.INVALID_CUSTOM_FIELD]
    assert again.message.startswith(UPDATED + ", ")
    assert written(storage) == before


async def test_a_change_is_written_with_updated_on_moved_and_audited_without_it():
    storage, caller = FakeStorage(), caller_of("retail")
    await add(storage, caller, ASHA)
    (changed,) = await register([{**ASHA, "lastname": "Iyer"}], caller, storage, LATER)
    assert not changed.unchanged and changed.message == UPDATED
    assert storage.customer(ASHA["mobile"]).updated_on == LATER
    create, update_ = storage.tables.audits
    assert [c["field"] for c in update_["changes"]] == ["lastname"]
    assert "updated_on" not in [c["field"] for c in create["changes"]]
    assert written(storage)[1][-1] == EventName.CUSTOMER_UPDATED


async def test_a_new_value_inside_a_list_or_a_field_is_a_change():
    storage, caller = FakeStorage(), caller_of("retail")
    await add(storage, caller, ASHA)
    unsubscribed = {"subscription": [{"channel": "SMS", "priority": "BULK", "is_subscribed": "0"}]}
    moved = {"field": [{"name": "City_name", "value": "Mysuru"}]}
    for sent in ({"subscriptions": unsubscribed}, {"custom_fields": moved}):
        (result,) = await register([{"mobile": ASHA["mobile"], **sent}], caller, storage, LATER)
        assert not result.unchanged, sent
    assert [a["event_type"] for a in storage.tables.audits] == ["CREATE", "UPDATE", "UPDATE"]


def test_a_plan_that_joins_a_programme_is_a_change_whatever_the_customer_holds():
    caller = caller_of("rewards")
    joining = rules.Joining.of(caller.org.definition, caller.org.programs, caller.org.org_id, NOW.date(), False)
    customer = _a_customer()
    assert changes_nothing(customer, dataclasses.replace(customer, updated_on=LATER), None)
    assert not changes_nothing(customer, dataclasses.replace(customer), joining)
    assert not changes_nothing(customer, dataclasses.replace(customer, external_id_key="other"), None)


async def test_a_non_loyalty_customer_joining_is_written():
    storage, caller = FakeStorage(), caller_of("rewards")
    await add(storage, caller, {"mobile": ASHA["mobile"], "type": "NON_LOYALTY"})
    (joined,) = await register([{"mobile": ASHA["mobile"], "type": "LOYALTY"}], caller, storage, LATER)
    assert not joined.unchanged and joined.memberships
    (again,) = await register([{"mobile": ASHA["mobile"], "type": "LOYALTY"}], caller, storage, LATER)
    assert again.unchanged and again.memberships == joined.memberships


async def test_of_two_identical_updates_at_once_only_the_first_to_lock_the_customer_writes():
    storage, caller = FakeStorage(), caller_of("retail")
    await add(storage, caller, ASHA)
    renamed = {"mobile": ASHA["mobile"], "lastname": "Iyer"}
    results = await asyncio.gather(*(update(renamed, caller, storage, LATER) for _ in range(4)))
    assert sorted(result.unchanged for result in results) == [False, True, True, True]
    assert [a["event_type"] for a in storage.tables.audits] == ["CREATE", "UPDATE"]


async def test_an_import_counts_the_rows_that_change_nothing_as_unchanged():
    storage, caller = FakeStorage(), caller_of("retail")
    rows: list[tuple[int, Any]] = [(1, ASHA), (2, {"mobile": "919800000002", "firstname": "Ravi"})]
    first = await import_batch(caller, storage, rows)
    again = await import_batch(caller, storage, [*rows, (3, {"mobile": "919800000002", "firstname": "Ravindra"})])
    assert (first.created, first.updated, first.unchanged) == (2, 0, 0)
    assert (again.created, again.updated, again.unchanged) == (0, 1, 2)


def _a_customer() -> Customer:
    return Customer(
        id=100001, org_id=1, mobile="919800000001", email=None, external_id=None, firstname="Asha", lastname="",
        type="LOYALTY", source="INSTORE", account_id=None, fraud_status="NONE", registered_on=NOW, updated_on=NOW,
        registered_till="till.one", associated_with="till.one", referral_code=None,
    )
