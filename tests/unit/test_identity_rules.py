"""customer/update and identity changes (member-care.md §1, §2) as rules, on the in-memory storage."""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from fakes import FakeStorage, update
from test_registration_rules import NOW, ORGS, add, caller_of

from patron.codes import Code
from patron.customers.identity_requests import (
    APPLIED_REASON,
    APPROVED,
    ID_SUPERSEDED,
    PENDING,
    REJECTED,
    SUPERSEDED,
    DecisionRefused,
    IdentityRequest,
    Requester,
    infer_identifier,
    may_supersede,
    own_road,
    read_change,
)
from patron.customers.identity_review import (
    decide,
    pending,
    request_change_of,
    request_changes,
    requester_of_caller,
    requests_of,
)
from patron.customers.model import Caller, ItemRejected
from patron.customers.registration import update_customer_by_id
from patron.orgs.file import parse_org_document
from patron.orgs.model import OrgSettings

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


# Who asked (issue 29, items 7 and 8): four eyes by every road, superseding, the cap per caller.


def tied(**configs: Any) -> Caller:
    """A till of retail.toml's org in which the reviewer priya also uses the head-office till and
    the backend API client."""
    data = tomllib.loads((ORGS / "retail.toml").read_text())
    data.setdefault("configs", {}).update(configs)
    for user in data["console_users"]:
        if user["login"] == REVIEWER:
            user.update(tills=["till.admin"], api_clients=["backend"])
    org = OrgSettings.from_file(parse_org_document(data))
    return Caller(org=org, till_code="till.one", api_client_key=None, request_id="unit")


def asked(**who: Any) -> IdentityRequest:
    return IdentityRequest(
        org_id=1, id=7, customer_id=100001, identifier="mobile", old_value="919800000001", new_value="919800000002",
        status=PENDING, requested_at=NOW, request_id="unit", **who,
    )


def test_a_reviewer_stands_behind_what_they_ask_by_any_road_the_org_file_ties_to_them():
    org = tied().org
    roads = {
        "console": own_road(org, asked(console_user=REVIEWER), REVIEWER),
        "till": own_road(org, asked(till_code="till.admin"), REVIEWER),
        "client": own_road(org, asked(till_code="till.one", api_client_key="backend"), REVIEWER),
        "user context": own_road(org, asked(till_code="till.one", context_entity_id=" PRIYA "), REVIEWER),
        "tied when asked": own_road(org, asked(till_code="till.two", requester_users=f"{AGENT} {REVIEWER}"), REVIEWER),
    }
    assert roads == {
        "console": "in the console",
        "till": "through till till.admin",
        "client": "through API client backend",
        "user context": "as user-context entity id PRIYA",
        "tied when asked": "as till:till.two, which the org file tied to them when it asked",
    }
    assert own_road(org, asked(till_code="till.one"), REVIEWER) is None
    assert own_road(org, asked(till_code="till.admin"), AGENT) is None


def test_a_request_remembers_its_caller_the_users_tied_to_it_and_its_user_context():
    caller = tied()
    admin = dataclasses.replace(caller, till_code="till.admin", user_context={"entity_type": "USER", "entity_id": AGENT})
    requester = requester_of_caller(admin)
    assert (requester.key, requester.users, requester.reviews) == ("till:till.admin", (REVIEWER, AGENT), True)
    console = requester_of_caller(dataclasses.replace(caller, till_code=None, console_user=AGENT))
    assert (console.key, console.users, console.reviews) == (f"console:{AGENT}", (AGENT,), False)
    client = requester_of_caller(dataclasses.replace(caller, api_client_key="backend"))
    assert (client.key, client.users, client.reviews) == ("client:backend", (REVIEWER,), True)


async def test_a_reviewer_may_not_approve_a_request_made_through_their_tied_till_but_may_withdraw_it():
    storage, caller = FakeStorage(), tied()
    await add(storage, caller, {"mobile": "919800000001"})
    admin = dataclasses.replace(caller, till_code="till.admin")
    (outcome,) = await ask(storage, admin, {"identifier": "mobile", "old_value": "919800000001", "new_value": "919800000002"})
    assert (outcome.request.requester, outcome.request.users) == ("till:till.admin", (REVIEWER,))
    with pytest.raises(DecisionRefused, match="through till till.admin: another reviewer must approve it"):
        await decide(caller.org, outcome.request.id, True, REVIEWER, "looks right", storage, NOW)
    assert storage.tables.identity_requests[0].status == PENDING
    decision = await decide(caller.org, outcome.request.id, False, REVIEWER, "asked by mistake", storage, NOW)
    assert decision.request.status == REJECTED


def test_only_the_same_caller_or_person_or_a_reviewer_supersedes_a_pending_request():
    pending = asked(till_code="till.one", requester="till:till.one", requester_users=AGENT)
    assert may_supersede(pending, Requester("till:till.one", (), False))
    assert may_supersede(pending, Requester(f"console:{AGENT}", (AGENT,), False))  # the same person
    assert may_supersede(pending, Requester("till:till.two", (), True))  # identity_review
    assert not may_supersede(pending, Requester("till:till.two", (), False))
    assert not may_supersede(pending, Requester("client:backend", (REVIEWER,), False))
    # Written before requests had a requester: the till it names is its caller.
    assert may_supersede(asked(till_code="till.one"), Requester("till:till.one", (), False))


async def test_another_callers_pending_request_is_refused_1041_and_nothing_is_written():
    storage, caller = FakeStorage(), tied()
    await add(storage, caller, {"mobile": "919800000001"})
    console = dataclasses.replace(caller, till_code=None, console_user=AGENT, reason="customer called")
    await ask(storage, console, {"identifier": "mobile", "old_value": "919800000001", "new_value": "919800000002"})
    audits = len(storage.tables.audits)
    (refused,) = await ask(storage, caller, {"identifier": "mobile", "old_value": "919800000001", "new_value": "919800000003"})
    assert (refused.code, refused.customer_id) == (Code.PENDING_REQUEST_OF_ANOTHER_CALLER, storage.customer("919800000001").id)
    assert refused.message.startswith("Mobile already has a change request of another caller")
    assert [(r.status, r.console_user) for r in storage.tables.identity_requests] == [(PENDING, AGENT)]
    assert len(storage.tables.audits) == audits
    reviewer = dataclasses.replace(caller, till_code="till.admin")  # group admin: identity_review
    (superseding,) = await ask(storage, reviewer, {"identifier": "mobile", "old_value": "919800000001", "new_value": "919800000003"})
    assert superseding.code == Code.IDENTITY_CHANGE_REQUESTED
    assert [r.status for r in storage.tables.identity_requests] == [SUPERSEDED, PENDING]


async def test_a_callers_pending_requests_are_capped_1042_superseding_its_own_included():
    storage, caller = FakeStorage(), tied(CONF_IDENTITY_CHANGE_PENDING_PER_CALLER=2)
    mobiles = ["919800000001", "919800000002", "919800000003"]
    await add(storage, caller, *({"mobile": mobile} for mobile in mobiles))
    changes = [{"identifier": "mobile", "old_value": mobile, "new_value": f"91980000009{i}"} for i, mobile in enumerate(mobiles)]
    outcomes = await ask(storage, caller, *changes)
    assert [o.code for o in outcomes] == [Code.IDENTITY_CHANGE_REQUESTED] * 2 + [Code.TOO_MANY_PENDING_REQUESTS]
    assert outcomes[2].message == "Too many identity change requests of this caller are waiting for review; ask again once some are decided"
    # Its own pending request, asked again, is replaced: still two waiting.
    (again,) = await ask(storage, caller, {**changes[0], "new_value": "919800000099"})
    assert again.code == Code.IDENTITY_CHANGE_REQUESTED
    other = dataclasses.replace(caller, till_code="till.two")
    (others,) = await ask(storage, other, changes[2])
    assert others.code == Code.IDENTITY_CHANGE_REQUESTED
    assert sum(r.status == PENDING for r in storage.tables.identity_requests) == 3
