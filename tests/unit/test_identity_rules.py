"""customer/update and identity changes (member-care.md §1, §2) as rules, on the in-memory storage."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from fakes import FakeStorage
from test_registration_rules import NOW, add, caller_of

from patron.codes import Code
from patron.registration.identity import (
    APPLIED_REASON,
    APPROVED,
    ID_SUPERSEDED,
    PENDING,
    REJECTED,
    SUPERSEDED,
    DecisionRefused,
    infer_identifier,
    read_change,
)
from patron.registration.identity_changes import decide, pending, request_change_of, request_changes, requests_of
from patron.registration.model import ItemRejected
from patron.registration.service import update, update_customer_by_id

REVIEWER = "priya"  # tests/orgs/retail.toml: access group admin, identity_review = true
AGENT = "ravi"  # group care: may write, may not review


async def ask(storage: FakeStorage, caller, *items: dict[str, Any]):
    return await request_changes(list(items), caller, storage, NOW)


def test_an_at_sign_makes_an_old_value_an_email_a_mobile_a_mobile_and_else_an_external_id():
    org = caller_of("retail").org
    assert [infer_identifier(v, org) for v in ("a@b.example", "+91 98000 00001", "CARD-7")] == [
        "email", "mobile", "external_id",
    ]


def test_the_older_spellings_read_as_the_current_one():
    org = caller_of("retail").org
    current = read_change({"identifier": "mobile", "old_value": "919800000001", "new_value": "919800000002"}, org)
    named = read_change({"identifier": "MOBILE", "old_identifier": "919800000001", "new_identifier": "919800000002"}, org)
    inferred = read_change({"identifier": "919800000001", "new_identifier": "919800000002"}, org)
    assert current == named == inferred


@pytest.mark.parametrize(("name", "bad", "code"), [
    ("mobile", "12345", Code.INVALID_MOBILE), ("email", "not-an-email", Code.INVALID_EMAIL),
])
def test_a_new_value_is_read_by_its_fields_rules(name, bad, code):
    org = caller_of("retail").org
    with pytest.raises(ItemRejected) as rejected:
        read_change({"identifier": name, "old_value": "a@b.example" if name == "email" else "919800000001",
                     "new_value": bad}, org)
    assert rejected.value.code == code


async def test_update_never_creates_a_customer():
    storage, caller = FakeStorage(), caller_of("retail")
    result = await update({"mobile": "919800000001", "firstname": "Asha"}, caller, storage, NOW)
    assert result.code == Code.CUSTOMER_NOT_FOUND and not storage.tables.customers


async def test_update_from_the_console_changes_fields_and_keeps_the_registering_till():
    storage, caller = FakeStorage(), caller_of("retail")
    await add(storage, caller, {"mobile": "919800000001"})
    console = dataclasses.replace(caller, till_code=None, console_user=AGENT, reason="customer called")
    result = await update({"mobile": "919800000001", "lastname": "Rao", "associated_with": "nope"}, console, storage, NOW)
    assert result.success and result.customer.lastname == "Rao"
    stored = storage.customer("919800000001")
    assert (stored.registered_till, stored.associated_with) == (caller.till_code, caller.till_code)
    assert storage.tables.audits[-1]["console_user"] == AGENT and storage.tables.audits[-1]["reason"] == "customer called"


async def test_a_change_waits_for_review_and_a_newer_one_supersedes_it():
    storage, caller = FakeStorage(), caller_of("retail")
    await add(storage, caller, {"mobile": "919800000001"})
    (first,) = await ask(storage, caller, {"identifier": "mobile", "old_value": "919800000001", "new_value": "919800000002"})
    (second,) = await ask(storage, caller, {"identifier": "mobile", "old_value": "919800000001", "new_value": "919800000003"})
    assert (first.code, second.code, second.updated) == (Code.IDENTITY_CHANGE_REQUESTED,) * 2 + (False,)
    assert [r.status for r in storage.tables.identity_requests] == [SUPERSEDED, PENDING]
    assert storage.customer("919800000001") is not None
    (queued,) = await pending(caller.org.org_id, storage)
    assert queued.new_value == "919800000003"


async def test_an_approval_applies_the_change_and_audits_who_asked_and_who_decided():
    storage, caller = FakeStorage(), caller_of("retail")
    await add(storage, caller, {"mobile": "919800000001"})
    (asked,) = await ask(storage, caller, {"identifier": "mobile", "old_value": "919800000001", "new_value": "919800000002"})
    decision = await decide(caller.org, asked.request.id, True, REVIEWER, "verified by phone", storage, NOW)
    assert decision.applied and decision.request.status == APPROVED
    assert storage.customer("919800000002").id == asked.customer_id
    events = [(a["event_type"], a["console_user"]) for a in storage.tables.audits]
    assert events[1:] == [("ID_REQUESTED", None), ("ID_APPROVED", REVIEWER), ("UPDATE", REVIEWER)]


async def test_an_approval_of_a_value_taken_meanwhile_is_a_rejection_with_that_reason():
    storage, caller = FakeStorage(), caller_of("retail")
    await add(storage, caller, {"mobile": "919800000001"})
    (asked,) = await ask(storage, caller, {"identifier": "mobile", "old_value": "919800000001", "new_value": "919800000002"})
    await add(storage, caller, {"mobile": "919800000002"})
    decision = await decide(caller.org, asked.request.id, True, REVIEWER, "looks right", storage, NOW)
    assert not decision.applied and decision.request.status == REJECTED
    assert "held by another customer" in decision.request.decision_reason
    assert storage.customer("919800000001") is not None


async def test_only_a_reviewer_decides_with_a_reason_and_only_pending_requests():
    storage, caller = FakeStorage(), caller_of("retail")
    await add(storage, caller, {"mobile": "919800000001"})
    (asked,) = await ask(storage, caller, {"identifier": "mobile", "old_value": "919800000001", "new_value": "919800000002"})
    for reviewer, reason in ((AGENT, "ok"), (REVIEWER, "  ")):
        with pytest.raises(DecisionRefused):
            await decide(caller.org, asked.request.id, True, reviewer, reason, storage, NOW)
    await decide(caller.org, asked.request.id, False, REVIEWER, "not the customer's number", storage, NOW)
    with pytest.raises(DecisionRefused):
        await decide(caller.org, asked.request.id, True, REVIEWER, "changed my mind", storage, NOW)
    (request,) = await requests_of(caller.org.org_id, asked.customer_id, storage)
    assert request.status == REJECTED and request.decision_reason == "not the customer's number"


async def test_without_approval_the_change_applies_at_once_the_primary_identifier_included():
    storage, caller = FakeStorage(), caller_of("retail", CONF_IDENTITY_CHANGE_APPROVAL=False)
    await add(storage, caller, {"mobile": "919800000001"})
    (done,) = await ask(storage, caller, {"identifier": "mobile", "old_value": "919800000001", "new_value": "919800000002"})
    assert (done.code, done.updated) == (Code.ITEM_OK, True)
    assert storage.customer("919800000002") is not None and not storage.tables.identity_requests


async def test_a_change_applied_at_once_supersedes_the_pending_request_of_that_identifier():
    storage, caller = FakeStorage(), caller_of("retail")
    await add(storage, caller, {"mobile": "919800000001"})
    await ask(storage, caller, {"identifier": "mobile", "old_value": "919800000001", "new_value": "919800000002"})
    at_once = caller_of("retail", CONF_IDENTITY_CHANGE_APPROVAL=False)
    await ask(storage, at_once, {"identifier": "mobile", "old_value": "919800000001", "new_value": "919800000003"})
    (request,) = storage.tables.identity_requests
    assert (request.status, request.decision_reason) == (SUPERSEDED, APPLIED_REASON)
    superseded = [a for a in storage.tables.audits if a["event_type"] == ID_SUPERSEDED]
    assert [(a["changes"], a["reason"]) for a in superseded] == [
        ([{"field": "mobile", "previous": "919800000001", "current": "919800000002"}], APPLIED_REASON)
    ]


async def test_an_update_by_id_changes_exactly_that_customer_and_refuses_1012_when_it_is_gone():
    storage, caller = FakeStorage(), caller_of("retail")
    (first,) = await add(storage, caller, {"mobile": "919800000001"})
    # Its mobile stored as today's rules would not read it (an older org file, a repair): named by
    # id, it is still the customer edited, and nothing needs reading its identifiers.
    storage.tables.customers[first.customer.id].mobile = "12345"
    result = await update_customer_by_id(first.customer.id, {"lastname": "Rao"}, caller, storage, NOW)
    assert result.success and result.customer.id == first.customer.id
    assert storage.tables.customers[first.customer.id].lastname == "Rao"
    gone = await update_customer_by_id(999999, {"lastname": "Rao"}, caller, storage, NOW)
    assert gone.code == Code.CUSTOMER_NOT_FOUND


async def test_an_approval_never_overwrites_a_value_changed_since_the_request():
    storage, caller = FakeStorage(), caller_of("retail")
    await add(storage, caller, {"mobile": "919800000001"})
    (asked,) = await ask(storage, caller, {"identifier": "mobile", "old_value": "919800000001", "new_value": "919800000002"})
    storage.tables.customers[asked.customer_id].mobile = "919800000009"  # changed around the rules
    decision = await decide(caller.org, asked.request.id, True, REVIEWER, "looks right", storage, NOW)
    assert not decision.applied and decision.request.status == REJECTED
    assert decision.request.decision_reason == "Mobile changed since the request (now 919800000009)"
    assert storage.tables.customers[asked.customer_id].mobile == "919800000009"


class _Recorded:
    """A repository that notes, in its unit's order, each customer it locks and each request row it writes."""

    def __init__(self, inner: Any, order: list[str], noted: dict[str, str]) -> None:
        self._inner, self._order, self._noted = inner, order, noted

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._inner, name)
        if name not in self._noted:
            return found

        async def noting(*args: Any, **kwargs: Any) -> Any:
            self._order.append(self._noted[name])
            return await found(*args, **kwargs)

        return noting


class LockOrder(FakeStorage):
    def __init__(self) -> None:
        super().__init__()
        self.orders: list[list[str]] = []

    @asynccontextmanager
    async def unit_of_work(self, *, readonly: bool = False) -> AsyncIterator[Any]:
        async with super().unit_of_work(readonly=readonly) as unit:
            order: list[str] = []
            self.orders.append(order)
            yield dataclasses.replace(
                unit,
                customers=_Recorded(unit.customers, order, {"holders": "customer", "locked": "customer"}),
                identity_requests=_Recorded(
                    unit.identity_requests, order, {"supersede": "request", "insert": "request", "decide": "request"}
                ),
            )


async def test_every_path_locks_the_customer_before_its_requests():
    storage, caller = LockOrder(), caller_of("retail", CONF_ALLOW_EMAIL_UPDATE=True)
    (added,) = await add(storage, caller, {"mobile": "919800000001", "email": "a@b.example"})
    customer_id = added.customer.id

    async def asked(old: str, new: str) -> int:
        (outcome,) = await ask(storage, caller, {"identifier": "mobile", "old_value": old, "new_value": new})
        return outcome.request.id

    await decide(caller.org, await asked("919800000001", "919800000002"), False, REVIEWER, "no", storage, NOW)
    await decide(caller.org, await asked("919800000001", "919800000003"), True, REVIEWER, "yes", storage, NOW)
    await request_change_of(customer_id, "mobile", "919800000004", caller, storage, NOW)
    await asked("919800000003", "919800000005")  # the API's path, superseding the console's request
    await request_changes([{"identifier": "email", "old_value": "a@b.example", "new_value": "c@d.example"}],
                          caller, storage, NOW)
    await update({"mobile": "919800000003", "email": "e@f.example"}, caller, storage, NOW)  # supersedes
    at_once = caller_of("retail", CONF_IDENTITY_CHANGE_APPROVAL=False)
    await ask(storage, at_once, {"identifier": "mobile", "old_value": "919800000003", "new_value": "919800000006"})
    writing = [order for order in storage.orders if "request" in order]
    assert len(writing) >= 8
    assert all(order.index("customer") < order.index("request") for order in writing if "customer" in order), writing
    assert all("customer" in order for order in writing), writing
