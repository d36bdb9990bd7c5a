"""customer/update_identity and the review of its requests, rule by rule (member-care.md §2),
through the HTTP API (and the domain's decide, as the console calls it) on every backend."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any
from xml.etree import ElementTree

import orjson
import pytest
from sqlalchemy import update

from support.api import Org, item, new_mobile
from support.orgs import org_document
from test_openapi import assert_documented_answer
from test_registration import assert_failed, audit_log, changed_fields, email_of, fetch

from patron.codes import IDENTITY_CHANGE_TAKEN, Code
from patron.customers.identity_requests import (
    APPROVED,
    PENDING,
    REJECTED,
    SUPERSEDED,
    UPDATED_REASON,
    DecisionRefused,
    IdentityRequest,
    PendingRequestRaced,
)
from patron.customers.identity_review import decide, request_changes, requests_of
from patron.customers.model import Caller
from patron.orgs.apply import apply_org
from patron.orgs.file import parse_org_document
from patron.orgs.model import OrgSettings
from patron.store.schema import customers

PATH = "/v1.1/customer/update_identity"


async def change(org, *changes: dict[str, Any], till: str | None = None, path: str = PATH):
    body = {"root": {"customer": changes[0] if len(changes) == 1 else list(changes)}}
    return await org.http.post(
        path, content=orjson.dumps(body), headers={"Content-Type": "application/json", **org.basic(till)}
    )


async def registered(org, **fields: Any) -> dict[str, Any]:
    mobile = new_mobile()
    response = await org.add({"mobile": mobile, "email": email_of(mobile), **fields})
    assert response.status_code == 200, response.text
    return item(response)


def mobile_change(customer: dict[str, Any], new: str) -> dict[str, str]:
    return {"identifier": "mobile", "old_value": customer["mobile"], "new_value": new}


def now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def storage_of(app: Any) -> Any:
    return app.state.services.storage


def settings_of(org) -> OrgSettings:
    return OrgSettings.from_file(org.file)


async def review(app, org, request_id: int, approve: bool, reason: str = "checked with the customer",
                 reviewer: str = "priya"):
    return await decide(settings_of(org), request_id, approve, org.console_user(reviewer), reason, storage_of(app),
                        now())


async def pending_of(app, org, user_id: int):
    return [r for r in await requests_of(org.id, user_id, storage_of(app)) if r.status == PENDING]


async def stored_mobile(org, user_id: int, mobile: str) -> None:
    """Change a customer's mobile around Patron's rules, as a repair in the database would."""
    async with org.engine.begin() as conn:
        await conn.execute(
            update(customers).where(customers.c.org_id == org.id, customers.c.id == user_id).values(mobile=mobile)
        )


async def test_a_change_waits_for_review(app, org):
    customer = await registered(org)
    new = new_mobile()
    response = await change(org, mobile_change(customer, new))
    assert response.status_code == 200, response.text
    assert_documented_answer(response, PATH, "post")
    assert item(response) == {
        "user_id": customer["user_id"], "identifier": "mobile", "old_value": customer["mobile"], "new_value": new,
        "updated": "false",
        "item_status": {"success": "true", "code": "1040", "message": IDENTITY_CHANGE_TAKEN, "warnings": {"warning": []}},
    }
    assert (await fetch(org, id=customer["user_id"]))["mobile"] == customer["mobile"]
    (request,) = await pending_of(app, org, customer["user_id"])
    assert (request.status, request.new_value, request.till_code) == (PENDING, new, org.till())


async def test_without_approval_the_change_applies_at_once(make_org):
    org = await make_org(CONF_IDENTITY_CHANGE_APPROVAL=False)
    customer = await registered(org)
    new = new_mobile()
    response = await change(org, mobile_change(customer, new))
    assert response.status_code == 200
    assert_documented_answer(response, PATH, "post")
    assert (item(response)["updated"], item(response)["item_status"]["code"]) == ("true", "1000")
    assert (await fetch(org, mobile=new))["user_id"] == customer["user_id"]


async def test_any_identifier_changes_whatever_conf_allow_update_says(make_org):
    org = await make_org(CONF_IDENTITY_CHANGE_APPROVAL=False, CONF_ALLOW_EMAIL_UPDATE=False)
    customer = await registered(org, external_id=f"EXT-{new_mobile()}")
    for name, new in (("email", f"new.{customer['email']}"), ("external_id", f"NEW-{new_mobile()}")):
        response = await change(org, {"identifier": name, "old_value": customer[name], "new_value": new})
        assert item(response)["updated"] == "true", response.text
        assert (await fetch(org, id=customer["user_id"]))[name] == new


async def test_no_customer_holding_the_old_value_is_1012(org):
    response = await change(org, {"identifier": "mobile", "old_value": new_mobile(), "new_value": new_mobile()})
    assert response.status_code == 500
    assert_documented_answer(response, PATH, "post")
    assert item(response)["item_status"]["code"] == "1012" and "user_id" not in item(response)


async def test_a_new_value_another_customer_holds_is_91007(org):
    customer, other = await registered(org), await registered(org)
    response = await change(org, mobile_change(customer, other["mobile"]))
    assert response.status_code == 500
    status = item(response)["item_status"]
    assert (status["code"], status["success"]) == ("91007", "false")
    assert status["message"] == "Mobile is already occupied by some other user"
    assert item(response)["user_id"] == customer["user_id"]


@pytest.mark.parametrize(("name", "bad", "code"), [
    ("mobile", "12345", Code.INVALID_MOBILE),
    ("email", "not-an-email", Code.INVALID_EMAIL),
    ("external_id", "x" * 300, Code.INVALID_EXTERNAL_ID),
])
async def test_a_new_value_is_read_by_its_fields_rules(org, name, bad, code):
    customer = await registered(org, external_id=f"EXT-{new_mobile()}")
    response = await change(org, {"identifier": name, "old_value": customer[name], "new_value": bad})
    assert item(response)["item_status"]["code"] == str(int(code))
    assert item(response)["new_value"] == bad


async def test_older_clients_spellings_are_read(app, org):
    by_names, by_value = await registered(org), await registered(org)
    first = await change(org, {"identifier": "mobile", "old_identifier": by_names["mobile"], "new_identifier": new_mobile()})
    second = await change(org, {"identifier": by_value["email"], "new_identifier": f"new.{by_value['email']}"})
    assert item(first)["item_status"]["code"] == item(second)["item_status"]["code"] == "1040"
    assert (item(second)["identifier"], item(second)["old_value"]) == ("email", by_value["email"])


async def test_a_newer_request_supersedes_the_pending_one(app, org):
    customer = await registered(org)
    await change(org, mobile_change(customer, new_mobile()))
    newer = new_mobile()
    await change(org, mobile_change(customer, newer))
    requests = await requests_of(org.id, customer["user_id"], storage_of(app))
    assert [(r.status, r.new_value == newer) for r in requests] == [(PENDING, True), (SUPERSEDED, False)]


async def test_concurrent_requests_for_one_customer_leave_one_pending(app, org):
    customer = await registered(org)
    responses = await asyncio.gather(*(change(org, mobile_change(customer, new_mobile())) for _ in range(4)))
    assert all(item(r)["item_status"]["code"] == "1040" for r in responses)
    assert len(await pending_of(app, org, customer["user_id"])) == 1


async def test_items_past_the_batch_limit_fail_with_1060(make_org):
    org = await make_org(BATCH_LIMIT=1)
    first, second = await registered(org), await registered(org)
    response = await change(org, mobile_change(first, new_mobile()), mobile_change(second, new_mobile()))
    assert response.status_code == 201
    assert_documented_answer(response, PATH, "post")
    assert [item(response, i)["item_status"]["code"] for i in (0, 1)] == ["1040", "1060"]


async def test_an_approval_applies_the_change_and_everything_is_audited(app, org):
    customer = await registered(org)
    new = new_mobile()
    asked = await change(org, mobile_change(customer, new))
    (request,) = await pending_of(app, org, customer["user_id"])
    decision = await review(app, org, request.id, True, "verified on a call")
    assert decision.applied and decision.request.status == APPROVED
    assert decision.request.decided_by == org.console_user("priya")
    assert (await fetch(org, mobile=new))["user_id"] == customer["user_id"]
    applied, approved, requested, *_ = await audit_log(org, customer["user_id"])
    assert [r["events"][0]["eventType"] for r in (applied, approved, requested)] == ["UPDATE", "ID_APPROVED", "ID_REQUESTED"]
    assert requested["requestId"] == asked.headers["x-cap-requestid"] and requested["till"] == org.till()
    assert changed_fields(approved)["mobile"] == changed_fields(applied)["mobile"] == (customer["mobile"], new)
    admin = org.till_named(f"till.admin.{org.id}")
    audits = await org.http.get("/api_gateway/v2/audits", params={"entityId": customer["user_id"]}, headers=org.basic(admin))
    assert_documented_answer(audits, "/api_gateway/v2/audits", "get")
    # The audit log says who decided in the console, and why; the request came through the API.
    assert (approved["updatedByMode"], approved["consoleUser"], approved["reason"]) == (
        "MEMBER_CARE", org.console_user("priya"), "verified on a call",
    )
    assert requested["updatedByMode"] == "API" and "consoleUser" not in requested


async def test_a_rejection_keeps_the_identifier_and_records_why(app, org):
    customer = await registered(org)
    await change(org, mobile_change(customer, new_mobile()))
    (request,) = await pending_of(app, org, customer["user_id"])
    decision = await review(app, org, request.id, False, "not the customer's number")
    assert not decision.applied and decision.request.decision_reason == "not the customer's number"
    assert (await fetch(org, id=customer["user_id"]))["mobile"] == customer["mobile"]
    latest, *_ = await audit_log(org, customer["user_id"])
    assert latest["events"][0]["eventType"] == "ID_REJECTED"


async def test_only_a_reviewer_decides_only_pending_requests_with_a_reason(app, org):
    customer = await registered(org)
    await change(org, mobile_change(customer, new_mobile()))
    (request,) = await pending_of(app, org, customer["user_id"])
    with pytest.raises(DecisionRefused):
        await review(app, org, request.id, True, reviewer="ravi")
    with pytest.raises(DecisionRefused):
        await review(app, org, request.id, True, reason=" ")
    await review(app, org, request.id, False)
    with pytest.raises(DecisionRefused):
        await review(app, org, request.id, True)


async def test_an_approval_of_a_value_taken_meanwhile_is_rejected_with_that_reason(app, org):
    customer = await registered(org)
    new = new_mobile()
    await change(org, mobile_change(customer, new))
    (request,) = await pending_of(app, org, customer["user_id"])
    await org.add({"mobile": new})
    decision = await review(app, org, request.id, True)
    assert decision.request.status == REJECTED and "held by another customer" in decision.request.decision_reason
    assert (await fetch(org, id=customer["user_id"]))["mobile"] == customer["mobile"]


async def test_two_approvals_racing_for_one_new_mobile_give_it_to_one_customer(app, org):
    first, second = await registered(org), await registered(org)
    new = new_mobile()
    for customer in (first, second):
        await change(org, mobile_change(customer, new))
    requests = [(await pending_of(app, org, c["user_id"]))[0] for c in (first, second)]
    decisions = await asyncio.gather(*(review(app, org, r.id, True) for r in requests))
    assert sorted(d.request.status for d in decisions) == [APPROVED, REJECTED]
    (rejected,) = [d.request for d in decisions if d.request.status == REJECTED]
    assert "held by another customer" in rejected.decision_reason
    holders = [(await fetch(org, id=c["user_id"]))["mobile"] for c in (first, second)]
    assert holders.count(new) == 1
    assert item(await org.get(mobile=new))["item_status"]["code"] == "1000"


async def test_a_request_from_the_console_records_its_user_and_reason(app, org):
    customer = await registered(org)
    console = Caller(org=settings_of(org), till_code=None, api_client_key=None, request_id="console-test",
                     console_user=org.console_user("ravi"), reason="customer asked at the desk")
    (outcome,) = await request_changes([mobile_change(customer, new_mobile())], console, storage_of(app), now())
    assert outcome.code == Code.IDENTITY_CHANGE_REQUESTED
    assert (outcome.request.console_user, outcome.request.reason, outcome.request.till_code) == (
        org.console_user("ravi"), "customer asked at the desk", None,
    )


async def test_a_till_without_customer_write_may_not_ask(org):
    customer = await registered(org)
    response = await change(org, mobile_change(customer, new_mobile()), till=org.till_named(f"till.readonly.{org.id}"))
    assert response.status_code == 403
    assert_documented_answer(response, PATH, "post")


async def test_another_orgs_customer_is_never_reached(make_org):
    mine, theirs = await make_org(), await make_org()
    customer = await registered(theirs)
    response = await change(mine, mobile_change(customer, new_mobile()))
    assert item(response)["item_status"]["code"] == "1012"


async def test_an_xml_body_gets_an_xml_answer(app, org):
    customer = await registered(org)
    new = new_mobile()
    body = (f"<root><customer><identifier>mobile</identifier><old_value>{customer['mobile']}</old_value>"
            f"<new_value>{new}</new_value></customer>"
            f"<customer><identifier>mobile</identifier><old_value>{new_mobile()}</old_value>"
            f"<new_value>{new_mobile()}</new_value></customer></root>")
    response = await org.http.post(PATH + ".xml", content=body.encode(), headers=org.basic())
    assert response.status_code == 201, response.text
    answer = ElementTree.fromstring(response.content)
    assert answer.tag == "response" and answer.findtext("status/code") == "201"
    taken, missing = answer.findall("customers/customer")
    assert (taken.findtext("new_value"), taken.findtext("updated"), taken.findtext("item_status/code")) == (new, "false", "1040")
    assert missing.findtext("item_status/code") == "1012"
    assert_failed({"item_status": {"success": missing.findtext("item_status/success"),
                                   "code": missing.findtext("item_status/code"),
                                   "message": missing.findtext("item_status/message")}}, Code.CUSTOMER_NOT_FOUND)


async def test_an_approval_never_overwrites_a_value_changed_since_the_request(app, org):
    customer = await registered(org)
    await change(org, mobile_change(customer, new_mobile()))
    (request,) = await pending_of(app, org, customer["user_id"])
    moved = new_mobile()
    await stored_mobile(org, customer["user_id"], moved)
    decision = await review(app, org, request.id, True)
    assert (decision.applied, decision.request.status) == (False, REJECTED)
    assert decision.request.decision_reason == f"Mobile changed since the request (now {moved})"
    assert (await fetch(org, id=customer["user_id"]))["mobile"] == moved


async def test_an_update_that_changes_the_identifier_supersedes_its_pending_request_audited(app, make_org):
    org = await make_org(CONF_ALLOW_EMAIL_UPDATE=True)
    customer = await registered(org)
    asked = f"asked.{customer['email']}"
    await change(org, {"identifier": "email", "old_value": customer["email"], "new_value": asked})
    body = {"root": {"customer": {"mobile": customer["mobile"], "email": f"new.{customer['email']}"}}}
    updated = await org.http.post(
        "/v1.1/customer/update", content=orjson.dumps(body), headers={"Content-Type": "application/json", **org.basic()}
    )
    assert item(updated)["item_status"]["code"] == "1000", updated.text
    (request,) = await requests_of(org.id, customer["user_id"], storage_of(app))
    assert (request.status, request.decision_reason) == (SUPERSEDED, UPDATED_REASON)
    records = await audit_log(org, customer["user_id"])
    (superseded,) = [r for r in records if r["events"][0]["eventType"] == "ID_SUPERSEDED"]
    assert changed_fields(superseded) == {"email": (customer["email"], asked)}
    assert (superseded["reason"], superseded["requestId"]) == (UPDATED_REASON, updated.headers["x-cap-requestid"])
    admin = org.till_named(f"till.admin.{org.id}")
    audits = await org.http.get("/api_gateway/v2/audits", params={"entityId": customer["user_id"]}, headers=org.basic(admin))
    assert_documented_answer(audits, "/api_gateway/v2/audits", "get")


async def test_a_newer_request_audits_the_one_it_supersedes(app, org):
    customer = await registered(org)
    first = new_mobile()
    await change(org, mobile_change(customer, first))
    await change(org, mobile_change(customer, new_mobile()))
    records = await audit_log(org, customer["user_id"])
    (superseded,) = [r for r in records if r["events"][0]["eventType"] == "ID_SUPERSEDED"]
    assert changed_fields(superseded) == {"mobile": (customer["mobile"], first)}
    assert "newer request" in superseded["reason"]


async def test_a_reviewer_may_not_approve_their_own_request(app, org):
    customer = await registered(org)
    priya = org.console_user("priya")
    console = Caller(org=settings_of(org), till_code=None, api_client_key=None, request_id="console-test",
                     console_user=priya, reason="customer asked at the desk")
    (outcome,) = await request_changes([mobile_change(customer, new_mobile())], console, storage_of(app), now())
    with pytest.raises(DecisionRefused, match="another reviewer must approve it"):
        await review(app, org, outcome.request.id, True)
    (request,) = await pending_of(app, org, customer["user_id"])
    assert request.id == outcome.request.id
    # Withdrawing it is no second opinion's business: a rejection of one's own request is taken.
    assert (await review(app, org, request.id, False, "asked by mistake")).request.status == REJECTED


async def test_only_a_unique_violation_is_a_raced_pending_request(app, org):
    customer = await registered(org)
    broken = IdentityRequest(
        org_id=org.id, id=None, customer_id=customer["user_id"], identifier="mobile", old_value=customer["mobile"],
        new_value=new_mobile(), status=PENDING, requested_at=now(), request_id=None,  # type: ignore[arg-type]
    )
    with pytest.raises(Exception) as raised:
        async with storage_of(app).unit_of_work() as unit:
            await unit.identity_requests.insert(broken)
    assert not isinstance(raised.value, PendingRequestRaced), raised.value


# Who asked (issue 29, items 7 and 8): four eyes by every road, superseding, the cap per caller.


async def tied_org(app, http, tie: bool = True, **configs: Any) -> Org:
    """retail.toml's org, in which (with `tie`) the reviewer priya also uses the head-office till
    and the backend API client."""
    return await apply_document(app, http, tied_document(org_document("retail", **configs), tie))


def tied_document(document: dict[str, Any], tie: bool = True) -> dict[str, Any]:
    org_id = document["org"]["id"]
    for user in document["console_users"]:
        if user["login"].startswith("priya."):
            user.update(tills=[f"till.admin.{org_id}"] if tie else [], api_clients=[f"backend.{org_id}"] if tie else [])
    return document


async def apply_document(app, http, document: dict[str, Any]) -> Org:
    org_file = parse_org_document(document)
    engine = app.state.services.engine
    await apply_org(engine, org_file)
    passwords = {t.code: t.password for s in org_file.stores for t in s.tills if t.password}
    passwords.update({user.login: user.password for user in org_file.console_users if user.password})
    return Org(http, org_file, passwords, engine)


async def token_of(org) -> str:
    client = org.file.api_clients[0]
    response = await org.http.post("/v3/oauth/token/generate", json={"key": client.key, "secret": client.secret})
    assert response.status_code == 200, response.text
    return response.json()["data"]["accessToken"]


async def test_a_request_remembers_its_till_its_user_context_and_the_console_users_tied_to_it(app, http):
    org = await tied_org(app, http)
    customer = await registered(org)
    admin = org.till_named(f"till.admin.{org.id}")
    context = {"USER-CONTEXT-ENTITY-TYPE": "USER", "USER-CONTEXT-ENTITY-ID": "cashier-7",
               "USER-CONTEXT-ENTITY-SOURCE": "POS", "USER-CONTEXT-ENTITY-SOURCE-ID": "lane-2"}
    body = {"root": {"customer": mobile_change(customer, new_mobile())}}
    response = await org.http.post(PATH, content=orjson.dumps(body),
                                   headers={"Content-Type": "application/json", **org.basic(admin), **context})
    assert item(response)["item_status"]["code"] == "1040", response.text
    (request,) = await pending_of(app, org, customer["user_id"])
    assert (request.requester, request.users, request.till_code) == (f"till:{admin}", (org.console_user("priya"),), admin)
    assert (request.context_entity_type, request.context_entity_id, request.context_entity_source,
            request.context_entity_source_id) == ("USER", "cashier-7", "POS", "lane-2")


async def test_a_reviewer_may_not_approve_what_they_asked_through_a_till_or_api_client_tied_to_them(app, http):
    org = await tied_org(app, http)
    first, second = await registered(org), await registered(org)
    await change(org, mobile_change(first, new_mobile()), till=org.till_named(f"till.admin.{org.id}"))
    body = {"root": {"customer": mobile_change(second, new_mobile())}}
    by_client = await org.http.post(PATH, content=orjson.dumps(body),
                                    headers={"Content-Type": "application/json", "X-CAP-API-OAUTH-TOKEN": await token_of(org)})
    assert item(by_client)["item_status"]["code"] == "1040", by_client.text
    for customer, road in ((first, f"through till till.admin.{org.id}"), (second, f"through API client backend.{org.id}")):
        (request,) = await pending_of(app, org, customer["user_id"])
        with pytest.raises(DecisionRefused, match=f"{road}: another reviewer must approve it"):
            await review(app, org, request.id, True)
        assert (await pending_of(app, org, customer["user_id"])) == [request]
    # Withdrawing it needs no second opinion.
    (request,) = await pending_of(app, org, first["user_id"])
    assert (await review(app, org, request.id, False, "asked by mistake")).request.status == REJECTED


async def test_a_reviewer_may_not_approve_a_request_whose_user_context_names_them(app, org):
    customer = await registered(org)
    body = {"root": {"customer": mobile_change(customer, new_mobile())}}
    await org.http.post(PATH, content=orjson.dumps(body), headers={
        "Content-Type": "application/json", **org.basic(), "USER-CONTEXT-ENTITY-ID": org.console_user("priya").upper(),
    })
    (request,) = await pending_of(app, org, customer["user_id"])
    with pytest.raises(DecisionRefused, match="as user-context entity id"):
        await review(app, org, request.id, True)


async def test_a_tie_binds_whether_the_org_file_made_it_before_the_request_or_after(app, http):
    untied = await tied_org(app, http, tie=False)
    customer = await registered(untied)
    await change(untied, mobile_change(customer, new_mobile()), till=untied.till_named(f"till.admin.{untied.id}"))
    tied = await apply_document(app, http, tied_document(org_document_of(untied)))
    (request,) = await pending_of(app, tied, customer["user_id"])
    with pytest.raises(DecisionRefused, match="through till"):
        await review(app, tied, request.id, True)
    # Tied when it asked, untied since: it is still theirs.
    other = await registered(tied)
    await change(tied, mobile_change(other, new_mobile()), till=tied.till_named(f"till.admin.{tied.id}"))
    untied_again = await apply_document(app, http, tied_document(org_document_of(tied), tie=False))
    (request,) = await pending_of(app, untied_again, other["user_id"])
    with pytest.raises(DecisionRefused, match="which the org file tied to them when it asked"):
        await review(app, untied_again, request.id, True)


def org_document_of(org) -> dict[str, Any]:
    """The org's file as a document again, with its secrets, to be applied changed."""
    return org.file.model_dump(mode="json", exclude_none=True)


async def test_another_callers_pending_request_is_refused_1041_unless_the_caller_reviews(app, org):
    customer = await registered(org)
    console = Caller(org=settings_of(org), till_code=None, api_client_key=None, request_id="console-test",
                     console_user=org.console_user("ravi"), reason="customer asked at the desk")
    (asked,) = await request_changes([mobile_change(customer, new_mobile())], console, storage_of(app), now())
    records = len(await audit_log(org, customer["user_id"]))
    response = await change(org, mobile_change(customer, new_mobile()))
    assert response.status_code == 500
    assert_documented_answer(response, PATH, "post")
    status = item(response)["item_status"]
    assert (status["code"], status["success"]) == ("1041", "false")
    assert status["message"] == (
        "Mobile already has a change request of another caller waiting for review; a reviewer must decide it first"
    )
    assert item(response)["user_id"] == customer["user_id"]
    assert await pending_of(app, org, customer["user_id"]) == [asked.request]
    assert len(await audit_log(org, customer["user_id"])) == records
    # The head office's till: its access group has identity_review.
    superseding = await change(org, mobile_change(customer, new_mobile()), till=org.till_named(f"till.admin.{org.id}"))
    assert item(superseding)["item_status"]["code"] == "1040", superseding.text
    assert [r.status for r in await requests_of(org.id, customer["user_id"], storage_of(app))] == [PENDING, SUPERSEDED]


async def test_a_callers_pending_requests_are_capped_1042(app, make_org):
    org = await make_org(CONF_IDENTITY_CHANGE_PENDING_PER_CALLER=2)
    customers = [await registered(org) for _ in range(3)]
    response = await change(org, *(mobile_change(customer, new_mobile()) for customer in customers))
    assert response.status_code == 201
    assert_documented_answer(response, PATH, "post")
    assert [item(response, i)["item_status"]["code"] for i in range(3)] == ["1040", "1040", "1042"]
    assert item(response, 2)["item_status"]["message"] == (
        "Too many identity change requests of this caller are waiting for review; ask again once some are decided"
    )
    assert await pending_of(app, org, customers[2]["user_id"]) == []
    # Its own request asked again replaces it, and another till has places of its own.
    again = await change(org, mobile_change(customers[0], new_mobile()))
    other = await change(org, mobile_change(customers[2], new_mobile()), till=org.till(1))
    assert item(again)["item_status"]["code"] == item(other)["item_status"]["code"] == "1040"
