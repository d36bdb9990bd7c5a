"""Tenants: a caller of org A can neither read, match, update nor detect a customer of org B, through
any endpoint, any lookup key, any identifier or referral code."""

from __future__ import annotations

from typing import Any

import pytest

from support.api import item, new_mobile
from patron.codes import Code

NOT_FOUND = str(int(Code.CUSTOMER_NOT_FOUND))
NEVER_USED_ID = 999_999_999_999


def identifiers() -> dict[str, str]:
    mobile = new_mobile()
    return {"mobile": mobile, "email": f"shared.{mobile}@example.com", "external_id": f"ext-{mobile}"}


async def registered(org: Any, **fields: Any) -> dict[str, Any]:
    response = await org.add(fields)
    assert response.status_code == 200, response.text
    return item(response)


def admin_of(org: Any) -> dict[str, str]:
    return org.basic(org.till_named("till.admin." + str(org.id)))


async def token_of(org: Any) -> dict[str, str]:
    client = org.file.api_clients[0]
    issued = await org.http.post("/v3/oauth/token/generate", json={"key": client.key, "secret": client.secret})
    return {"X-CAP-API-OAUTH-TOKEN": issued.json()["data"]["accessToken"]}


def without(answer: dict[str, Any], key: str) -> dict[str, Any]:
    """An answer with the echoed lookup value taken out, to compare two answers for what they reveal."""
    shown = answer["response"]["customers"]["customer"][0]
    return {**answer, "response": {**answer["response"], "customers": {"customer": [{**shown, key: None}]}}}


@pytest.fixture
async def orgs(make_org: Any) -> tuple[Any, Any]:
    return await make_org(), await make_org()


@pytest.mark.parametrize("key", ["mobile", "email", "external_id", "id"])
async def test_org_a_reads_org_bs_customer_as_it_reads_no_one(orgs, key):
    org_a, org_b = orgs
    theirs = await registered(org_b, **identifiers())
    value = theirs["user_id"] if key == "id" else theirs[key]
    never_used = NEVER_USED_ID if key == "id" else identifiers()[key]

    asked = await org_a.get(**{key: value})
    unknown = await org_a.get(**{key: never_used})
    assert asked.status_code == unknown.status_code == 500
    assert item(asked)["item_status"]["code"] == NOT_FOUND
    assert without(asked.json(), key) == without(unknown.json(), key)


@pytest.mark.parametrize("key", ["mobile", "email", "external_id", "id"])
async def test_org_a_reads_org_bs_customer_as_no_one_with_a_token_too(orgs, key):
    org_a, org_b = orgs
    theirs = await registered(org_b, **identifiers())
    value = theirs["user_id"] if key == "id" else theirs[key]
    response = await org_a.http.get("/v1.1/customer/get", params={key: value}, headers=await token_of(org_a))
    assert item(response)["item_status"]["code"] == NOT_FOUND


async def test_a_batch_lookup_finds_only_the_callers_own_customers(orgs):
    org_a, org_b = orgs
    mine = await registered(org_a, mobile=new_mobile())
    theirs = await registered(org_b, mobile=new_mobile())
    response = await org_a.get(id=f"{mine['user_id']},{theirs['user_id']}")
    assert response.status_code == 201
    assert [item(response, n)["item_status"]["code"] for n in (0, 1)] == ["1000", NOT_FOUND]
    assert item(response, 0)["user_id"] == mine["user_id"]


async def test_org_bs_identifiers_register_a_new_customer_in_org_a_without_a_warning(orgs):
    org_a, org_b = orgs
    sent = identifiers()
    theirs = await registered(org_b, firstname="Theirs", **sent)
    mine = await registered(org_a, firstname="Mine", **sent)

    assert mine["item_status"]["message"] == "Customer registration successful"
    assert mine["item_status"]["warnings"]["warning"] == []  # no 91007: nothing is occupied in A
    assert mine["user_id"] != theirs["user_id"]
    assert (mine["mobile"], mine["email"], mine["external_id"]) == (sent["mobile"], sent["email"], sent["external_id"])


async def test_org_a_updating_the_shared_identifiers_changes_only_its_own_customer(orgs):
    org_a, org_b = orgs
    sent = identifiers()
    theirs = await registered(org_b, firstname="Theirs", **sent)
    mine = await registered(org_a, firstname="Mine", **sent)
    updated = await registered(org_a, firstname="Changed", lastname="ByA", **sent)
    assert updated["user_id"] == mine["user_id"]
    assert updated["item_status"]["message"] == "Customer successfully updated"

    unchanged = item(await org_b.get(mobile=sent["mobile"]))
    assert unchanged["user_id"] == theirs["user_id"]
    assert (unchanged["firstname"], unchanged["lastname"]) == ("Theirs", "")


@pytest.mark.parametrize("config", ["CONF_PRIMARY_IDENTIFIER_STRICT_CHECK", "CONF_SKIP_SECONDARY_ID_ON_PRIMARY_MISMATCH"])
async def test_org_bs_secondary_identifiers_match_nothing_in_org_a(make_org, config):
    org_a, org_b = await make_org(**{config: True}), await make_org()
    theirs = await registered(org_b, **identifiers())
    # A new mobile with B's email and external id: were B's customer visible, this would be a
    # secondary match (1047 under the strict check, 91007 under skip).
    mine = await registered(org_a, mobile=new_mobile(), email=theirs["email"], external_id=theirs["external_id"])
    assert mine["item_status"] == {
        "success": "true", "code": "1000", "message": "Customer registration successful", "warnings": {"warning": []},
    }
    assert (mine["email"], mine["external_id"]) == (theirs["email"], theirs["external_id"])


async def test_org_bs_identifier_given_as_an_update_in_org_a_is_free(make_org):
    org_a, org_b = await make_org(CONF_ALLOW_EMAIL_UPDATE=True), await make_org()
    theirs = await registered(org_b, **identifiers())
    mine = await registered(org_a, mobile=new_mobile(), email=f"old.{new_mobile()}@example.com")
    updated = await registered(org_a, mobile=mine["mobile"], email=theirs["email"])
    assert updated["item_status"]["warnings"]["warning"] == []
    assert updated["email"] == theirs["email"]


async def test_org_bs_referral_code_is_unknown_in_org_a_and_awards_b_nothing(make_org):
    org_a, org_b = await make_org("rewards"), await make_org("rewards")
    referrer = await registered(org_b, mobile=new_mobile())
    code = item(await org_b.get(id=referrer["user_id"]))["referral_code"]

    referee = await registered(org_a, mobile=new_mobile(), referral_code=code)
    assert referee["item_status"]["warnings"]["warning"] == [str(int(Code.REFERRER_NOT_FOUND))]
    assert not any(effect.get("is_referrer") for effect in referee["side_effects"]["effect"])
    after = item(await org_b.get(id=referrer["user_id"]))
    assert (after["lifetime_points"], after["loyalty_points"]) == (referrer["lifetime_points"], referrer["loyalty_points"])


async def test_a_till_of_org_b_named_in_org_as_item_is_an_unknown_till(orgs):
    org_a, org_b = orgs
    mine = await registered(org_a, mobile=new_mobile(), registered_till=org_b.till(), associated_with=org_b.till())
    assert mine["item_status"]["warnings"]["warning"] == [
        str(int(Code.INVALID_REGISTERED_TILL)), str(int(Code.INVALID_ATTRIBUTION_TILL)),
    ]
    got = item(await org_a.get(id=mine["user_id"]))
    assert got["registered_till"]["code"] == org_a.till() and got["associated_with"] == org_a.till()


async def test_org_bs_audit_records_are_an_empty_list_to_org_a(orgs):
    org_a, org_b = orgs
    theirs = await registered(org_b, mobile=new_mobile())
    await registered(org_b, mobile=theirs["mobile"], firstname="Again")
    own_view = await org_b.http.get("/api_gateway/v2/audits", params={"entityId": theirs["user_id"]}, headers=admin_of(org_b))
    assert len(own_view.json()["data"]) == 2

    for headers in (admin_of(org_a), await token_of(org_a)):
        asked = await org_a.http.get(
            "/api_gateway/v2/audits",
            params={"entityType": "CUSTOMER", "entityId": theirs["user_id"], "includeUserContext": "true"},
            headers=headers,
        )
        unknown = await org_a.http.get(
            "/api_gateway/v2/audits",
            params={"entityType": "CUSTOMER", "entityId": NEVER_USED_ID, "includeUserContext": "true"},
            headers=headers,
        )
        assert asked.status_code == unknown.status_code == 200
        assert asked.json() == unknown.json() == {"data": [], "errors": None}


async def test_the_same_identifiers_in_two_orgs_are_two_customers_each_with_its_own_audit(orgs):
    org_a, org_b = orgs
    sent = identifiers()
    first = await registered(org_a, firstname="Anna", **sent)
    second = await registered(org_b, firstname="Bela", **sent)
    assert first["user_id"] != second["user_id"]
    for org, customer, name in ((org_a, first, "Anna"), (org_b, second, "Bela")):
        for key in ("mobile", "email", "external_id"):
            found = item(await org.get(**{key: sent[key]}))
            assert (found["user_id"], found["firstname"]) == (customer["user_id"], name)
        audits = await org.http.get("/api_gateway/v2/audits", params={"entityId": customer["user_id"]}, headers=admin_of(org))
        assert [record["entityId"] for record in audits.json()["data"]] == [customer["user_id"]]
