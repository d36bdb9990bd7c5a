"""customer/update, rule by rule (member-care.md §1), through the HTTP API on every backend."""

from __future__ import annotations

from typing import Any
from xml.etree import ElementTree

import orjson

from support.api import item, new_mobile
from test_openapi import assert_documented_answer
from test_registration import assert_failed, audit_log, by_name, changed_fields, email_of, fetch, succeeded

from patron.codes import USER_UPDATED, Code

PATH = "/v1.1/customer/update"


async def update(org, *customers: dict[str, Any], till: str | None = None, path: str = PATH, **params: Any):
    body = {"root": {"customer": customers[0] if len(customers) == 1 else list(customers)}}
    return await org.http.post(
        path, content=orjson.dumps(body), params=params,
        headers={"Content-Type": "application/json", **org.basic(till)},
    )


async def registered(org, **fields: Any) -> dict[str, Any]:
    mobile = new_mobile()
    response = await org.add({"mobile": mobile, "email": email_of(mobile), **fields})
    assert response.status_code == 200, response.text
    return item(response)


async def test_an_update_changes_the_fields_sent_and_answers_the_customer_as_get_shows_it(org):
    customer = await registered(org, firstname="Asha")
    response = await update(org, {"mobile": customer["mobile"], "lastname": "Rao",
                                  "custom_fields": {"field": [{"name": "city_name", "value": "Mysuru"}]}})
    assert response.status_code == 200, response.text
    assert_documented_answer(response, PATH, "post")
    answered = item(response)
    assert answered["item_status"] == succeeded(USER_UPDATED)
    stored = await fetch(org, mobile=customer["mobile"])
    assert (stored["firstname"], stored["lastname"]) == ("Asha", "Rao")
    assert by_name(stored["custom_fields"]) == {"City_name": "Mysuru"}
    assert {**answered, "item_status": None} == {**stored, "item_status": None}


async def test_update_never_creates_a_customer(org):
    mobile = new_mobile()
    response = await update(org, {"mobile": mobile, "firstname": "Nobody"})
    assert response.status_code == 500
    assert_documented_answer(response, PATH, "post")
    assert_failed(item(response), Code.CUSTOMER_NOT_FOUND)
    assert item(response)["mobile"] == mobile
    assert item(await org.get(mobile=mobile))["item_status"]["code"] == str(int(Code.CUSTOMER_NOT_FOUND))


async def test_one_customer_an_update_each_item_past_the_first_fails_with_1060(org):
    first, second = await registered(org), await registered(org)
    response = await update(org, {"mobile": first["mobile"], "lastname": "One"},
                            {"mobile": second["mobile"], "lastname": "Two"})
    assert response.status_code == 201
    assert_documented_answer(response, PATH, "post")
    assert item(response, 0)["item_status"]["code"] == "1000"
    assert_failed(item(response, 1), Code.BATCH_LIMIT_EXCEEDED)
    assert (await fetch(org, mobile=second["mobile"]))["lastname"] == ""


async def test_a_customer_is_named_by_any_one_of_its_identifiers(org):
    customer = await registered(org, external_id=f"EXT-{new_mobile()}")
    for key, name in (("email", "Emma"), ("external_id", "Exa")):
        response = await update(org, {key: customer[key], "firstname": name})
        assert response.status_code == 200, response.text
        assert item(response)["user_id"] == customer["user_id"]
        assert (await fetch(org, id=customer["user_id"]))["firstname"] == name


async def test_the_primary_identifier_is_never_changed_here(org):
    customer = await registered(org)
    response = await update(org, {"email": customer["email"], "mobile": new_mobile()})
    assert item(response)["item_status"] == succeeded(USER_UPDATED, (Code.PRIMARY_IDENTIFIER_NOT_UPDATABLE, "Mobile"))
    assert (await fetch(org, id=customer["user_id"]))["mobile"] == customer["mobile"]


async def test_a_secondary_identifier_changes_only_where_the_org_allows_it(make_org):
    for allowed in (False, True):
        org = await make_org(CONF_ALLOW_EMAIL_UPDATE=allowed)
        customer = await registered(org)
        new_email = f"new.{customer['email']}"
        response = await update(org, {"mobile": customer["mobile"], "email": new_email})
        expected = [] if allowed else [str(int(Code.IDENTIFIER_UPDATE_NOT_ALLOWED))]
        assert item(response)["item_status"]["warnings"]["warning"] == expected
        assert (await fetch(org, id=customer["user_id"]))["email"] == (new_email if allowed else customer["email"])


async def test_never_to_a_value_another_customer_holds(make_org):
    org = await make_org(CONF_ALLOW_EMAIL_UPDATE=True)
    customer, other = await registered(org), await registered(org)
    response = await update(org, {"mobile": customer["mobile"], "email": other["email"]})
    assert item(response)["item_status"] == succeeded(USER_UPDATED, (Code.IDENTIFIER_OCCUPIED, "Email"))
    assert (await fetch(org, id=customer["user_id"]))["email"] == customer["email"]


async def test_registered_on_is_ignored(org):
    customer = await registered(org)
    response = await update(org, {"mobile": customer["mobile"], "registered_on": "1990-01-01 00:00:00"})
    assert response.status_code == 200 and item(response)["item_status"] == succeeded(USER_UPDATED)
    assert (await fetch(org, id=customer["user_id"]))["registered_on"] == customer["registered_on"]


async def test_fields_are_read_and_warned_about_as_add_reads_them(org):
    customer = await registered(org)
    response = await update(org, {
        "mobile": customer["mobile"], "firstname": "Ravi",
        "custom_fields": {"field": [{"name": "no_such_field", "value": "x"}]},
        "associated_with": "no.such.till",
    })
    assert item(response)["item_status"] == succeeded(USER_UPDATED, Code.INVALID_ATTRIBUTION_TILL, Code.INVALID_CUSTOM_FIELD)
    assert item(response)["firstname"] == "Ravi"


async def test_an_update_is_audited_with_per_field_changes(org):
    customer = await registered(org, lastname="Old")
    response = await org.http.post(
        PATH, content=orjson.dumps({"root": {"customer": {"mobile": customer["mobile"], "lastname": "New"}}}),
        headers={**org.basic(), "USER-CONTEXT-ENTITY-TYPE": "STAFF"},
    )
    assert response.status_code == 200, response.text
    (latest, *_) = await audit_log(org, customer["user_id"])
    assert latest["requestId"] == response.headers["x-cap-requestid"]
    assert latest["events"][0]["eventType"] == "UPDATE"
    assert changed_fields(latest)["lastname"] == ("Old", "New")
    assert latest["userContextDetails"]["entityType"] == "STAFF"


async def test_a_till_without_customer_write_may_not_update(org):
    customer = await registered(org)
    response = await update(org, {"mobile": customer["mobile"], "lastname": "X"}, till=org.till_named("till.readonly." + str(org.id)))
    assert response.status_code == 403
    assert_documented_answer(response, PATH, "post")


async def test_user_id_true_is_accepted(org):
    customer = await registered(org)
    response = await update(org, {"mobile": customer["mobile"], "lastname": "Rao"}, user_id="true")
    assert response.status_code == 200 and item(response)["user_id"] == customer["user_id"]


async def test_an_xml_body_gets_an_xml_answer(org):
    customer = await registered(org)
    body = f"<root><customer><mobile>{customer['mobile']}</mobile><lastname>Rao</lastname></customer></root>"
    for path, content_type in ((PATH + ".xml", None), (PATH, "application/xml")):
        headers = {**org.basic(), **({"Content-Type": content_type} if content_type else {})}
        response = await org.http.post(path, content=body.encode(), headers=headers)
        assert response.status_code == 200, response.text
        answer = ElementTree.fromstring(response.content)
        assert answer.tag == "response" and answer.findtext("status/code") == "200"
        assert answer.findtext("customers/customer/lastname") == "Rao"
        assert answer.findtext("customers/customer/item_status/message") == USER_UPDATED
        assert answer.findtext("customers/customer/registered_till/code") == org.till()

    missing = await org.http.post(
        PATH + ".xml", content=f"<root><customer><mobile>{new_mobile()}</mobile></customer></root>".encode(),
        headers=org.basic(),
    )
    assert missing.status_code == 500
    assert ElementTree.fromstring(missing.content).findtext("customers/customer/item_status/code") == "1012"
