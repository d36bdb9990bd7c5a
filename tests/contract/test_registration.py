"""customer/add and customer/get, rule by rule (spec customer-add.md §1–5, §7, §8; customer-get.md; codes.md)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from xml.etree import ElementTree
from zoneinfo import ZoneInfo

import orjson
import pytest

from support.api import item, new_mobile
from patron.codes import ITEM_ERRORS, MESSAGES, REGISTERED, RETRIEVED, UPDATED, Code, warning_text
from patron.settings import Settings

KOLKATA = ZoneInfo("Asia/Kolkata")  # the test orgs' timezone
STAMP = "%Y-%m-%d %H:%M:%S"


# ---------------------------------------------------------------- helpers


def succeeded(base: str, *warnings: tuple[Code, str] | Code) -> dict[str, Any]:
    """The item_status of a success whose warnings arose in this order."""
    pairs = [(w, "") if isinstance(w, Code) else w for w in warnings]
    return {
        "success": "true",
        "code": "1000",
        "message": ", ".join([base, *(warning_text(code, field) for code, field in pairs)]),
        "warnings": {"warning": [str(int(code)) for code, _ in pairs]},
    }


def assert_failed(customer: dict[str, Any], code: Code) -> None:
    status = customer["item_status"]
    assert (status["success"], status["code"], status["message"]) == ("false", str(int(code)), ITEM_ERRORS[code])


def status_of(response) -> dict[str, Any]:
    return response.json()["response"]["status"]


def email_of(mobile: str) -> str:
    return f"c{mobile}@example.com"


async def add_one(org, customer: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    response = await org.add(customer, **kwargs)
    assert response.status_code in (200, 500), response.text
    return item(response)


async def fetch(org, **query: Any) -> dict[str, Any]:
    """The one customer a get finds (asserting that it finds it)."""
    found = item(await org.get(**query))
    assert found["item_status"]["code"] == "1000", found
    return found


async def missing(org, **query: Any) -> bool:
    return item(await org.get(**query))["item_status"]["code"] == str(int(Code.CUSTOMER_NOT_FOUND))


async def post(org, body: bytes, *, path: str = "/v1.1/customer/add", content_type: str | None = None,
               headers: dict[str, str] | None = None, params: dict[str, str] | None = None):
    sent = {**org.basic(), **(headers or {})}
    if content_type is not None:
        sent["Content-Type"] = content_type
    return await org.http.post(path, content=body, headers=sent, params=params)


def json_body(*customers: dict[str, Any]) -> bytes:
    return orjson.dumps({"root": {"customer": list(customers)}})


async def audit_log(org, user_id: int) -> list[dict[str, Any]]:
    """The customer's audit records, newest first, read with the org's admin till."""
    admin = org.till_named("till.admin." + str(org.id))
    response = await org.http.get(
        "/api_gateway/v2/audits",
        params={"entityType": "CUSTOMER", "entityId": user_id, "includeUserContext": "true"},
        headers=org.basic(admin),
    )
    assert response.status_code == 200, response.text
    return response.json()["data"]


def changed_fields(record: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    return {
        event["updatedField"]: (event["additionalFields"]["previousValue"], event["additionalFields"]["currentValue"])
        for event in record["events"]
    }


def by_name(fields: dict[str, Any]) -> dict[str, Any]:
    """Custom or extended fields as name → value (the spec fixes no order among them)."""
    return {entry["name"]: entry["value"] for entry in fields["field"]}


def local_now() -> datetime:
    return datetime.now(KOLKATA).replace(tzinfo=None)


def close_to_now(stamp: str) -> bool:
    return abs(datetime.strptime(stamp, STAMP) - local_now()) < timedelta(minutes=5)


# ---------------------------------------------------------------- §1 the request


async def test_a_single_customer_object_is_a_batch_of_one(org):
    mobile = new_mobile()
    response = await post(org, orjson.dumps({"root": {"customer": {"mobile": mobile}}}), content_type="application/json")
    assert response.status_code == 200
    assert status_of(response)["total"] == "1"
    assert item(response)["mobile"] == mobile


async def test_a_json_body_needs_no_content_type(org):
    mobile = new_mobile()
    response = await post(org, json_body({"mobile": mobile}))
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/json")


async def test_the_json_suffix_sets_the_format(org):
    mobile = new_mobile()
    response = await post(org, json_body({"mobile": mobile}), path="/v1.1/customer/add.json", content_type="text/plain")
    assert response.status_code == 200, response.text
    assert item(response)["mobile"] == mobile


async def test_the_xml_suffix_sets_the_format(org):
    mobile = new_mobile()
    body = f"<root><customer><mobile>{mobile}</mobile></customer></root>".encode()
    response = await post(org, body, path="/v1.1/customer/add.xml")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/xml")
    assert ElementTree.fromstring(response.content).findtext("customers/customer/mobile") == mobile


@pytest.mark.parametrize("content_type", ["application/xml", "text/xml", "text/xml; charset=utf-8"])
async def test_an_xml_content_type_selects_xml(org, content_type):
    mobile = new_mobile()
    body = f"<root><customer><mobile>{mobile}</mobile></customer></root>".encode()
    response = await post(org, body, content_type=content_type)
    assert response.status_code == 200, response.text
    answer = ElementTree.fromstring(response.content)
    assert answer.findtext("status/code") == "200"
    assert answer.findtext("customers/customer/item_status/message") == REGISTERED


async def test_the_format_parameter_overrides_the_headers(org):
    mobile = new_mobile()
    body = f"<root><customer><mobile>{mobile}</mobile></customer></root>".encode()
    response = await post(org, body, content_type="application/json", params={"format": "xml"})
    assert response.status_code == 200, response.text
    assert ElementTree.fromstring(response.content).findtext("customers/customer/mobile") == mobile

    as_json = await post(org, json_body({"mobile": new_mobile()}), content_type="application/xml", params={"format": "json"})
    assert as_json.status_code == 200 and as_json.headers["content-type"].startswith("application/json")


async def test_accept_chooses_the_response_format(org):
    mobile = new_mobile()
    xml_body = f"<root><customer><mobile>{mobile}</mobile></customer></root>".encode()
    as_json = await post(org, xml_body, content_type="application/xml", headers={"Accept": "application/json"})
    assert as_json.status_code == 200 and item(as_json)["mobile"] == mobile

    as_xml = await post(org, json_body({"mobile": mobile}), content_type="application/json",
                        headers={"Accept": "application/xml"})
    assert as_xml.headers["content-type"].startswith("application/xml")
    assert ElementTree.fromstring(as_xml.content).findtext("customers/customer/item_status/message") == UPDATED


async def test_the_format_parameter_also_chooses_the_response_format_of_get(org):
    mobile = new_mobile()
    await org.add({"mobile": mobile})
    response = await org.get(mobile=mobile, format="xml")
    assert response.headers["content-type"].startswith("application/xml")
    assert ElementTree.fromstring(response.content).findtext("customers/customer/mobile") == mobile


async def test_another_media_type_is_415(org):
    response = await post(org, b"mobile=919812345678", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415
    assert status_of(response)["code"] == 415
    assert status_of(response)["message"] == MESSAGES[Code.UNSUPPORTED_MEDIA_TYPE]


async def test_seed_sample_two_is_malformed_json_and_gets_400_with_line_and_column(org):
    # The seed's "Sample Request: With External ID", verbatim: a comma is missing after "123445901".
    body = b"""{
    "root": {
        "customer": [
            {
                "external_id": "123445901"
                "registered_on": "2024-07-29 11:11:11",
                "registered_till": "till_name",
                "associated_with": "till_name"
            }
        ]
    }
}"""
    response = await post(org, body, content_type="application/json")
    assert response.status_code == 400
    status = status_of(response)
    assert (status["success"], status["code"], status["message"]) == ("false", 400, MESSAGES[Code.INVALID_INPUT])
    assert "line 6" in status["detail"] and "column" in status["detail"]


@pytest.mark.parametrize("body", [b"", b"{", b"[1, 2", b"\xff\xfe", b"{\"root\": {\"customer\": [}]}}"])
async def test_malformed_json_is_400_with_a_detail(org, body):
    response = await post(org, body, content_type="application/json")
    assert response.status_code == 400
    status = status_of(response)
    assert status["message"] == MESSAGES[Code.INVALID_INPUT] and status["detail"]


async def test_malformed_xml_is_400_with_a_detail(org):
    response = await post(org, b"<root><customer><mobile>1</customer></root>", content_type="application/xml")
    assert response.status_code == 400
    answer = ElementTree.fromstring(response.content)  # an XML request is answered in XML, errors too
    assert answer.findtext("status/code") == "400"
    assert answer.findtext("status/message") == MESSAGES[Code.INVALID_INPUT]
    assert "line 1" in answer.findtext("status/detail")


@pytest.mark.parametrize(
    "document",
    [{}, {"root": {}}, {"root": {"customer": []}}, {"root": []}, {"customer": {"mobile": "919812345678"}}, [1], "root"],
)
async def test_a_body_without_root_customer_is_400_with_a_detail(org, document):
    response = await post(org, orjson.dumps(document), content_type="application/json")
    assert response.status_code == 400
    status = status_of(response)
    assert status["message"] == MESSAGES[Code.INVALID_INPUT] and "root.customer" in status["detail"]


async def test_an_xml_body_without_customer_is_400(org):
    response = await post(org, b"<root><client><mobile>1</mobile></client></root>", content_type="application/xml")
    assert response.status_code == 400


async def test_xml_entity_bomb_is_refused(org):
    bomb = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
  <!ENTITY lol "lol">
  <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
  <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<root><customer><mobile>919812345678</mobile><firstname>&lol4;</firstname></customer></root>"""
    response = await post(org, bomb, content_type="application/xml")
    assert response.status_code == 400
    assert ElementTree.fromstring(response.content).findtext("status/message") == MESSAGES[Code.INVALID_INPUT]


async def test_xml_external_entities_are_refused(org):
    xxe = b"""<?xml version="1.0"?>
<!DOCTYPE root [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<root><customer><mobile>919812345678</mobile><firstname>&secret;</firstname></customer></root>"""
    response = await post(org, xxe, content_type="application/xml")
    assert response.status_code == 400
    assert await missing(org, mobile="919812345678")


async def test_deeply_nested_xml_is_400(org):
    body = b"<root><customer><mobile>919812345678</mobile><x>" + b"<a>" * 5000 + b"</a>" * 5000 + b"</x></customer></root>"
    response = await post(org, body, content_type="application/xml")
    assert response.status_code == 400
    assert ElementTree.fromstring(response.content).findtext("status/detail")


async def test_deeply_nested_json_is_400(org):
    body = b'{"root": {"customer": [{"mobile": "919812345678", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}]}}"
    response = await post(org, body, content_type="application/json")
    assert response.status_code == 400 and status_of(response)["detail"]


async def test_a_body_over_the_size_limit_is_413(org):
    response = await org.add({"mobile": new_mobile(), "lastname": "y" * (65 * 1024)})
    assert response.status_code == 413
    status = status_of(response)
    assert (status["success"], status["code"], status["message"]) == ("false", 413, MESSAGES[Code.BODY_TOO_LARGE])


def test_the_body_size_limit_defaults_to_one_mebibyte():
    assert Settings.model_fields["max_body_bytes"].default == 1024 * 1024


async def test_user_id_and_mlp_single_enroll_are_accepted(org):
    for params in ({"user_id": "true"}, {"mlp_single_enroll": "true"}, {"mlp_single_enroll": "false"}):
        response = await org.add({"mobile": new_mobile()}, **params)
        assert response.status_code == 200, params
        assert isinstance(item(response)["user_id"], int)


@pytest.mark.parametrize("params", [{"format": "yaml"}, {"mlp_single_enroll": "perhaps"}, {"user_id": "maybe"}])
async def test_a_bad_query_parameter_is_400(org, params):
    response = await org.add({"mobile": new_mobile()}, **params)
    assert response.status_code == 400
    assert status_of(response)["message"] == MESSAGES[Code.INVALID_INPUT]


# ---------------------------------------------------------------- §2 mobile


async def test_a_mobile_as_a_json_number_is_accepted(org):
    # The seed's first sample sends the mobile as a number.
    created = await add_one(org, {"mobile": 917755876888})
    assert created["item_status"]["code"] == "1000" and created["mobile"] == "917755876888"


async def test_conf_client_default_countrycode_passed_gives_a_national_number_the_base_country_code(make_org):
    org = await make_org(CONF_CLIENT_DEFAULT_COUNTRYCODE_PASSED=True)
    mobile = new_mobile()
    created = await add_one(org, {"mobile": mobile[2:]})
    assert created["item_status"] == succeeded(REGISTERED)
    assert created["mobile"] == mobile
    # Numbers that already carry their code are read as before; get normalises the same way.
    assert (await add_one(org, {"mobile": "+" + mobile}))["user_id"] == created["user_id"]
    assert (await fetch(org, mobile=mobile[2:]))["user_id"] == created["user_id"]


# ---------------------------------------------------------------- §2 email


async def test_email_is_lower_cased_and_matched_case_insensitively(make_org):
    org = await make_org(CONF_REGISTRATION_PRIMARY_KEY="email")
    mobile = new_mobile()
    created = await add_one(org, {"email": f"Asha.{mobile}@Example.COM", "firstname": "Asha"})
    assert created["email"] == f"asha.{mobile}@example.com"
    again = await add_one(org, {"email": f"ASHA.{mobile}@EXAMPLE.com", "lastname": "Rao"})
    assert again["user_id"] == created["user_id"] and again["item_status"] == succeeded(UPDATED)
    assert (await fetch(org, email=f"asha.{mobile}@EXAMPLE.com"))["lastname"] == "Rao"


# ---------------------------------------------------------------- §2 external id


async def test_an_external_id_is_trimmed_and_may_be_a_number(make_org):
    org = await make_org(CONF_REGISTRATION_PRIMARY_KEY="external_id")
    assert (await add_one(org, {"external_id": "  ext-42  "}))["external_id"] == "ext-42"
    assert (await add_one(org, {"external_id": 123445901}))["external_id"] == "123445901"
    assert (await fetch(org, external_id="123445901"))["external_id"] == "123445901"


# ---------------------------------------------------------------- §2 names


async def test_an_invalid_name_on_update_keeps_the_stored_one(org):
    mobile = new_mobile()
    await org.add({"mobile": mobile, "firstname": "Asha"})
    updated = await add_one(org, {"mobile": mobile, "firstname": "Asha!!"})
    assert updated["item_status"] == succeeded(UPDATED, (Code.INVALID_FIELD_VALUE, "firstname"))
    assert (await fetch(org, mobile=mobile))["firstname"] == "Asha"


# ---------------------------------------------------------------- §2 registered_on, updated_on


async def test_registered_on_defaults_to_now(org):
    created = await add_one(org, {"mobile": new_mobile()})
    assert close_to_now(created["registered_on"]) and close_to_now(created["updated_on"])


async def test_registered_on_more_than_24_hours_ahead_is_1034(org):
    mobile = new_mobile()
    ahead = (local_now() + timedelta(hours=25)).strftime(STAMP)
    assert_failed(await add_one(org, {"mobile": mobile, "registered_on": ahead}), Code.REGISTRATION_DATE_OUT_OF_RANGE)
    assert await missing(org, mobile=mobile)


async def test_registered_on_is_ignored_on_update(org):
    mobile = new_mobile()
    await org.add({"mobile": mobile, "registered_on": "2024-07-29 11:11:11"})
    updated = await add_one(org, {"mobile": mobile, "registered_on": "2025-01-01 10:00:00"})
    assert updated["item_status"] == succeeded(UPDATED)
    assert updated["registered_on"] == "2024-07-29 11:11:11"
    assert (await fetch(org, mobile=mobile))["registered_on"] == "2024-07-29 11:11:11"


async def test_updated_on_is_stored_as_given(org):
    mobile = new_mobile()
    created = await add_one(org, {"mobile": mobile, "updated_on": "2025-05-29 09:10:00"})
    assert created["updated_on"] == "2025-05-29 09:10:00"
    updated = await add_one(org, {"mobile": mobile, "firstname": "Asha", "updated_on": "2025-06-01"})
    assert updated["updated_on"] == "2025-06-01 00:00:00"
    assert (await fetch(org, mobile=mobile))["updated_on"] == "2025-06-01 00:00:00"


async def test_an_update_without_updated_on_sets_it_to_now(org):
    mobile = new_mobile()
    await org.add({"mobile": mobile, "updated_on": "2020-05-29 09:10:00"})
    assert close_to_now((await add_one(org, {"mobile": mobile, "firstname": "Asha"}))["updated_on"])


# ---------------------------------------------------------------- §2 type, source, fraud_status


async def test_type_defaults_to_loyalty(org):
    assert (await add_one(org, {"mobile": new_mobile()}))["type"] == "LOYALTY"


async def test_source_defaults_to_instore(org):
    assert (await add_one(org, {"mobile": new_mobile()}))["source"] == "instore"


async def test_fraud_status_defaults_to_none(org):
    mobile = new_mobile()
    assert (await add_one(org, {"mobile": mobile}))["fraud_status"] == "NONE"
    assert (await fetch(org, mobile=mobile))["fraud_details"] == {"status": "NONE"}


async def test_an_unknown_fraud_status_is_warning_1061_and_the_status_is_unchanged(org):
    mobile = new_mobile()
    created = await add_one(org, {"mobile": mobile, "fraud_status": {"status": "Fraus_Suspected"}})
    assert created["item_status"] == succeeded(REGISTERED, Code.INVALID_FRAUD_STATUS)
    assert created["fraud_status"] == "NONE"
    await org.add({"mobile": mobile, "fraud_status": "outlier"})
    updated = await add_one(org, {"mobile": mobile, "fraud_status": "Fraus_Suspected"})
    assert updated["item_status"] == succeeded(UPDATED, Code.INVALID_FRAUD_STATUS)
    assert updated["fraud_status"] == "OUTLIER"


# ---------------------------------------------------------------- §2 accountId, tills


async def test_account_id_is_stored(org):
    created = await add_one(org, {"mobile": new_mobile(), "source": "WEB_ENGAGE", "accountId": 123456})
    (record,) = await audit_log(org, created["user_id"])
    assert changed_fields(record)["account_id"] == (None, "123456")


async def test_registered_till_and_associated_with_of_the_org_are_used(org):
    mobile = new_mobile()
    two = org.till_named("till.two." + str(org.id))
    created = await add_one(org, {"mobile": mobile, "registered_till": two, "associated_with": two})
    assert created["item_status"] == succeeded(REGISTERED)
    got = await fetch(org, mobile=mobile)
    assert got["registered_till"] == {"code": two, "name": "Till Two"}
    assert got["registered_store"] == {"code": "store.one", "name": "Store One"}
    assert got["associated_with"] == two


async def test_registered_till_and_associated_with_default_to_the_calling_till(org):
    mobile = new_mobile()
    two = org.till_named("till.two." + str(org.id))
    await org.add({"mobile": mobile}, till=two)
    got = await fetch(org, mobile=mobile)
    assert got["registered_till"]["code"] == two and got["associated_with"] == two


# ---------------------------------------------------------------- §2 commChannels, subscriptions


async def test_a_comm_channel_with_meta_nested_too_deep_to_store_is_skipped_with_warning_1024(org):
    mobile = new_mobile()
    meta = '{"a": ' * 300 + '{"residence": "true"}' + "}" * 300  # deeper than any JSON encoder will write
    body = (f'{{"root": {{"customer": {{"mobile": "{mobile}", "commChannels": [{{"type": "mobile", "value": "{mobile}",'
            f' "meta": {meta}}}, {{"type": "email", "value": "{email_of(mobile)}"}}]}}}}}}')
    response = await post(org, body.encode(), content_type="application/json")
    assert response.status_code == 200, response.text
    created = item(response)
    assert created["item_status"] == succeeded(REGISTERED, (Code.INVALID_FIELD_VALUE, "commChannels"))
    assert [c["type"] for c in (await fetch(org, mobile=mobile))["commChannels"]] == ["email"]


async def test_a_comm_channel_whose_meta_keys_xml_cannot_name_is_skipped_with_warning_1024(org):
    mobile = new_mobile()
    channels = [
        {"type": "mobile", "value": mobile, "meta": {"my key": "1", "a<b": "2"}},
        {"type": "email", "value": email_of(mobile), "meta": {"residence": "true", "since_2020": {"verified-by": "otp"}}},
    ]
    created = await add_one(org, {"mobile": mobile, "commChannels": channels})
    assert created["item_status"] == succeeded(REGISTERED, (Code.INVALID_FIELD_VALUE, "commChannels"))
    answer = ElementTree.fromstring((await org.get(mobile=mobile, format="xml")).content)  # well-formed
    assert answer.findtext("customers/customer/commChannels/meta/since_2020/verified-by") == "otp"


async def test_subscriptions_are_stored_and_echoed(org):
    mobile = new_mobile()
    subscriptions = [
        {"channel": "sms", "priority": "TRANS", "scope": "all", "is_subscribed": 1},
        {"channel": "EMAIL", "priority": "bulk", "scope": "offers", "is_subscribed": "0"},
    ]
    expected = [
        {"channel": "sms", "priority": "TRANS", "scope": "all", "is_subscribed": "1"},
        {"channel": "email", "priority": "BULK", "scope": "offers", "is_subscribed": "0"},
    ]
    created = await add_one(org, {"mobile": mobile, "subscriptions": {"subscription": subscriptions}})
    assert created["item_status"] == succeeded(REGISTERED)
    assert created["subscriptions"]["subscription"] == expected
    assert (await fetch(org, mobile=mobile))["subscriptions"]["subscription"] == expected


async def test_subscriptions_are_merged_on_update(org):
    mobile = new_mobile()
    await org.add({"mobile": mobile, "subscriptions": {"subscription": [
        {"channel": "sms", "priority": "TRANS", "is_subscribed": 1},
        {"channel": "email", "priority": "BULK", "is_subscribed": 1},
    ]}})
    unsubscribed = {"channel": "sms", "priority": "TRANS", "is_subscribed": 0}
    await org.add({"mobile": mobile, "subscriptions": {"subscription": [unsubscribed]}})
    stored = (await fetch(org, mobile=mobile))["subscriptions"]["subscription"]
    assert {(s["channel"], s["priority"], s["is_subscribed"]) for s in stored} == {
        ("sms", "TRANS", "0"), ("email", "BULK", "1"),
    }


# ---------------------------------------------------------------- §2 custom fields


async def test_an_unknown_custom_field_is_skipped_with_warning_1017_and_the_others_are_kept(org):
    mobile = new_mobile()
    fields = [{"name": "address", "value": "BTM"}, {"name": "City_name", "value": "Bangalore"}]
    created = await add_one(org, {"mobile": mobile, "custom_fields": {"field": fields}})
    assert created["item_status"] == succeeded(REGISTERED, Code.INVALID_CUSTOM_FIELD)
    assert (await fetch(org, mobile=mobile))["custom_fields"]["field"] == [{"name": "City_name", "value": "Bangalore"}]


async def test_custom_fields_are_merged_by_name_on_update(org):
    mobile = new_mobile()
    await org.add({"mobile": mobile, "custom_fields": {"field": [
        {"name": "City_name", "value": "Pune"}, {"name": "pwgConsumption", "value": "1"},
    ]}})
    await org.add({"mobile": mobile, "custom_fields": {"field": [{"name": "city_name", "value": "Goa"}]}})
    assert by_name((await fetch(org, mobile=mobile))["custom_fields"]) == {"City_name": "Goa", "pwgConsumption": "1"}


# ---------------------------------------------------------------- §2 extended fields


async def test_an_extended_field_the_org_declares_is_stored(make_org):
    org = await make_org("fields")
    fields = [{"name": "AGE_GROUP", "value": "41+"}, {"name": "shoe_size", "value": "9"}]
    created = await add_one(org, {"mobile": new_mobile(), "extended_fields": {"field": fields}})
    assert created["item_status"] == succeeded(REGISTERED)
    assert by_name(created["extended_fields"]) == {"age_group": "41+", "shoe_size": "9"}


async def test_extended_fields_are_merged_by_name_on_update(org):
    mobile = new_mobile()
    first = [{"name": "gender", "value": "F"}, {"name": "age", "value": 30}]
    await org.add({"mobile": mobile, "extended_fields": {"field": first}})
    await org.add({"mobile": mobile, "extended_fields": {"field": [{"name": "age", "value": 31}]}})
    assert by_name((await fetch(org, mobile=mobile))["extended_fields"]) == {"gender": "Female", "age": "31"}


# ---------------------------------------------------------------- §3 required identifiers


@pytest.mark.parametrize("required", [True, False])
async def test_conf_users_is_mobile_required_else_1006(make_org, required):
    org = await make_org(CONF_REGISTRATION_PRIMARY_KEY="email", CONF_USERS_IS_MOBILE_REQUIRED=required)
    email = email_of(new_mobile())
    created = await add_one(org, {"email": email})
    if required:
        assert_failed(created, Code.MOBILE_REQUIRED)
        assert await missing(org, email=email)
    else:
        assert created["item_status"] == succeeded(REGISTERED)


@pytest.mark.parametrize("customer", ["919812345678", 42, None, ["919812345678"]])
async def test_an_item_that_is_not_an_object_is_1007(org, customer):
    response = await org.add(customer)
    assert response.status_code == 500
    assert_failed(item(response), Code.NO_VALID_IDENTIFIER)


async def test_a_non_loyalty_customer_left_without_mobile_or_email_by_skip_secondary_is_1045(make_org):
    org = await make_org(CONF_REGISTRATION_PRIMARY_KEY="external_id", CONF_SKIP_SECONDARY_ID_ON_PRIMARY_MISMATCH=True)
    mobile = new_mobile()
    await org.add({"external_id": f"one-{mobile}", "mobile": mobile})
    refused = await add_one(org, {"external_id": f"two-{mobile}", "mobile": mobile, "type": "non_loyalty"})
    assert_failed(refused, Code.NON_LOYALTY_WITHOUT_IDENTIFIER)
    assert await missing(org, external_id=f"two-{mobile}")


# ---------------------------------------------------------------- §4 identity resolution


async def test_the_holder_of_the_primary_is_updated(org):
    mobile = new_mobile()
    created = await add_one(org, {"mobile": mobile, "firstname": "Asha"})
    updated = await add_one(org, {"mobile": mobile, "lastname": "Rao"})
    assert updated["item_status"] == succeeded(UPDATED)
    assert updated["user_id"] == created["user_id"]
    assert (updated["firstname"], updated["lastname"]) == ("Asha", "Rao")


async def test_a_secondary_held_by_another_customer_is_dropped_with_warning_91007(org):
    first, second = new_mobile(), new_mobile()
    await org.add({"mobile": first, "email": email_of(first)})
    other = await add_one(org, {"mobile": second, "external_id": f"ext-{second}"})
    updated = await add_one(org, {"mobile": first, "external_id": f"ext-{second}"})
    assert updated["item_status"] == succeeded(UPDATED, (Code.IDENTIFIER_OCCUPIED, "External id"))
    assert updated["item_status"]["message"].endswith("External id is already occupied by some other user, ignoring it")
    assert updated["external_id"] is None
    assert (await fetch(org, external_id=f"ext-{second}"))["user_id"] == other["user_id"]


async def test_new_identifiers_create_a_customer(org):
    mobile = new_mobile()
    created = await add_one(org, {"mobile": mobile, "email": email_of(mobile), "external_id": f"ext-{mobile}"})
    assert created["item_status"] == succeeded(REGISTERED)
    assert (created["mobile"], created["email"], created["external_id"]) == (mobile, email_of(mobile), f"ext-{mobile}")


async def test_a_secondary_match_is_updated_and_its_other_primary_kept_with_warning_91005(org):
    old, new = new_mobile(), new_mobile()
    existing = await add_one(org, {"mobile": old, "email": email_of(old)})
    updated = await add_one(org, {"mobile": new, "email": email_of(old), "firstname": "Asha"})
    assert updated["item_status"] == succeeded(UPDATED, (Code.PRIMARY_IDENTIFIER_NOT_UPDATABLE, "Mobile"))
    assert updated["item_status"]["message"].endswith("Mobile is primary identifier and cannot be updated")
    assert updated["user_id"] == existing["user_id"] and updated["mobile"] == old
    assert (await fetch(org, mobile=old))["firstname"] == "Asha"
    assert await missing(org, mobile=new)


@pytest.mark.parametrize("strict", [True, False])
async def test_a_secondary_match_without_a_primary_gets_the_primary_filled_in(make_org, strict):
    org = await make_org(CONF_ALLOW_REGISTRATION_FROM_ANY_IDENTIFIERS=True, CONF_PRIMARY_IDENTIFIER_STRICT_CHECK=strict)
    mobile = new_mobile()
    existing = await add_one(org, {"email": email_of(mobile)})
    updated = await add_one(org, {"mobile": mobile, "email": email_of(mobile)})
    assert updated["item_status"] == succeeded(UPDATED)
    assert updated["user_id"] == existing["user_id"] and updated["mobile"] == mobile


async def test_strict_check_refuses_a_secondary_match_that_has_another_primary_1047(make_org):
    org = await make_org(CONF_PRIMARY_IDENTIFIER_STRICT_CHECK=True)
    old, new = new_mobile(), new_mobile()
    existing = await add_one(org, {"mobile": old, "email": email_of(old), "firstname": "Asha"})
    response = await org.add({"mobile": new, "email": email_of(old), "firstname": "Other"})
    assert response.status_code == 500
    refused = item(response)
    assert_failed(refused, Code.PRIMARY_IDENTIFIER_MISMATCH)
    assert refused["item_status"]["message"] == "Customer's primary identifier not matching with other identifiers."
    assert (refused["mobile"], refused["email"], refused["user_id"]) == (new, email_of(old), existing["user_id"])
    assert (await fetch(org, mobile=old))["firstname"] == "Asha"
    assert await missing(org, mobile=new)


@pytest.mark.parametrize(
    "name", ["CONF_SKIP_SECONDARY_ID_ON_PRIMARY_MISMATCH", "CONFIG_SKIP_SECONDARY_ID_ON_PRIMARY_MISMATCH"]
)
async def test_skip_secondary_creates_a_new_customer_and_drops_the_colliding_secondary_91007(make_org, name):
    org = await make_org(**{name: True})
    old, new = new_mobile(), new_mobile()
    existing = await add_one(org, {"mobile": old, "email": email_of(old), "firstname": "Asha"})
    created = await add_one(org, {"mobile": new, "email": email_of(old), "external_id": f"ext-{new}", "firstname": "Ravi"})
    assert created["item_status"] == succeeded(REGISTERED, (Code.IDENTIFIER_OCCUPIED, "Email"))
    assert created["user_id"] != existing["user_id"]
    assert (created["mobile"], created["email"], created["external_id"]) == (new, None, f"ext-{new}")
    got = await fetch(org, mobile=old)
    assert (got["email"], got["firstname"]) == (email_of(old), "Asha")


@pytest.mark.parametrize(
    ("identifier", "config", "code"),
    [
        ("email", "CONF_USERS_IS_EMAIL_REQUIRED", Code.EMAIL_REQUIRED),
        ("external_id", "CONF_USERS_IS_EXTERNAL_ID_REQUIRED", Code.EXTERNAL_ID_REQUIRED),
    ],
)
async def test_skip_secondary_never_drops_a_required_identifier_the_item_fails_with_its_required_code(
    make_org, identifier, config, code
):
    org = await make_org(CONF_SKIP_SECONDARY_ID_ON_PRIMARY_MISMATCH=True, **{config: True})
    old, new = new_mobile(), new_mobile()
    held = {"email": email_of(old), "external_id": f"ext-{old}"}
    existing = await add_one(org, {"mobile": old, **held})
    # The required value is another customer's: dropping it (91007) would leave the new one without.
    refused = await add_one(org, {"mobile": new, identifier: held[identifier]})
    assert_failed(refused, code)
    assert await missing(org, mobile=new)
    assert (await fetch(org, mobile=old))["user_id"] == existing["user_id"]


async def test_skip_secondary_off_updates_the_secondary_match(make_org):
    org = await make_org(CONF_SKIP_SECONDARY_ID_ON_PRIMARY_MISMATCH=False)
    old, new = new_mobile(), new_mobile()
    existing = await add_one(org, {"mobile": old, "email": email_of(old)})
    assert (await add_one(org, {"mobile": new, "email": email_of(old)}))["user_id"] == existing["user_id"]


async def test_skip_secondary_wins_over_strict_check(make_org):
    org = await make_org(CONF_SKIP_SECONDARY_ID_ON_PRIMARY_MISMATCH=True, CONF_PRIMARY_IDENTIFIER_STRICT_CHECK=True)
    old, new = new_mobile(), new_mobile()
    existing = await add_one(org, {"mobile": old, "email": email_of(old)})
    created = await add_one(org, {"mobile": new, "email": email_of(old)})
    assert created["item_status"] == succeeded(REGISTERED, (Code.IDENTIFIER_OCCUPIED, "Email"))
    assert created["user_id"] != existing["user_id"] and created["email"] is None


async def test_two_secondaries_held_by_one_customer_are_one_match(org):
    old, new = new_mobile(), new_mobile()
    existing = await add_one(org, {"mobile": old, "email": email_of(old), "external_id": f"ext-{old}"})
    updated = await add_one(org, {"mobile": new, "email": email_of(old), "external_id": f"ext-{old}"})
    assert updated["item_status"] == succeeded(UPDATED, (Code.PRIMARY_IDENTIFIER_NOT_UPDATABLE, "Mobile"))
    assert updated["user_id"] == existing["user_id"]


@pytest.mark.parametrize("strict", [True, False])
async def test_secondaries_held_by_two_customers_are_1047(make_org, strict):
    org = await make_org(CONF_PRIMARY_IDENTIFIER_STRICT_CHECK=strict)
    first, second, new = new_mobile(), new_mobile(), new_mobile()
    await org.add({"mobile": first, "email": email_of(first)})
    await org.add({"mobile": second, "external_id": f"ext-{second}"})
    refused = await add_one(org, {"mobile": new, "email": email_of(first), "external_id": f"ext-{second}"})
    assert_failed(refused, Code.PRIMARY_IDENTIFIER_MISMATCH)
    assert await missing(org, mobile=new)
    assert (await fetch(org, mobile=first))["email"] == email_of(first)
    assert (await fetch(org, mobile=second))["external_id"] == f"ext-{second}"


async def test_secondaries_held_by_two_customers_with_skip_secondary_create_and_drop_them_91007(make_org):
    org = await make_org(CONF_SKIP_SECONDARY_ID_ON_PRIMARY_MISMATCH=True)
    first, second, new = new_mobile(), new_mobile(), new_mobile()
    await org.add({"mobile": first, "email": email_of(first)})
    await org.add({"mobile": second, "external_id": f"ext-{second}"})
    created = await add_one(org, {"mobile": new, "email": email_of(first), "external_id": f"ext-{second}"})
    assert created["item_status"] == succeeded(REGISTERED, (Code.IDENTIFIER_OCCUPIED, "Email"))
    assert (created["mobile"], created["email"], created["external_id"]) == (new, None, None)


@pytest.mark.parametrize("primary", ["email", "external_id"])
async def test_resolution_follows_the_configured_primary(make_org, primary):
    org = await make_org(CONF_REGISTRATION_PRIMARY_KEY=primary, CONF_PRIMARY_IDENTIFIER_STRICT_CHECK=True)
    old, new = new_mobile(), new_mobile()
    values = {"email": email_of, "external_id": lambda m: f"ext-{m}"}[primary]
    existing = await add_one(org, {primary: values(old), "mobile": old})
    # The same primary with a new mobile: an update (the mobile may be filled only when empty).
    same = await add_one(org, {primary: values(old), "firstname": "Asha"})
    assert same["user_id"] == existing["user_id"] and same["item_status"] == succeeded(UPDATED)
    # Another primary with the first customer's mobile: the strict check refuses it.
    assert_failed(await add_one(org, {primary: values(new), "mobile": old}), Code.PRIMARY_IDENTIFIER_MISMATCH)


# ---------------------------------------------------------------- §4 the update path


async def test_an_empty_identifier_is_filled_on_update(org):
    mobile = new_mobile()
    await org.add({"mobile": mobile})
    updated = await add_one(org, {"mobile": mobile, "email": email_of(mobile), "external_id": f"ext-{mobile}"})
    assert updated["item_status"] == succeeded(UPDATED)
    assert (updated["email"], updated["external_id"]) == (email_of(mobile), f"ext-{mobile}")
    assert (await fetch(org, email=email_of(mobile)))["mobile"] == mobile


@pytest.mark.parametrize("allowed", [True, False])
async def test_conf_allow_email_update(make_org, allowed):
    org = await make_org(CONF_ALLOW_EMAIL_UPDATE=allowed)
    mobile = new_mobile()
    await org.add({"mobile": mobile, "email": email_of(mobile)})
    updated = await add_one(org, {"mobile": mobile, "email": "new." + email_of(mobile)})
    if allowed:
        assert updated["item_status"] == succeeded(UPDATED) and updated["email"] == "new." + email_of(mobile)
        assert await missing(org, email=email_of(mobile))
    else:
        assert updated["item_status"] == succeeded(UPDATED, (Code.IDENTIFIER_UPDATE_NOT_ALLOWED, "Email"))
        assert updated["item_status"]["message"].endswith("Email update is not allowed")
        assert updated["email"] == email_of(mobile)


@pytest.mark.parametrize("allowed", [True, False])
async def test_conf_allow_mobile_update(make_org, allowed):
    org = await make_org(CONF_REGISTRATION_PRIMARY_KEY="email", CONF_ALLOW_MOBILE_UPDATE=allowed)
    old, new = new_mobile(), new_mobile()
    await org.add({"email": email_of(old), "mobile": old})
    updated = await add_one(org, {"email": email_of(old), "mobile": new})
    if allowed:
        assert updated["item_status"] == succeeded(UPDATED) and updated["mobile"] == new
    else:
        assert updated["item_status"] == succeeded(UPDATED, (Code.IDENTIFIER_UPDATE_NOT_ALLOWED, "Mobile"))
        assert updated["mobile"] == old


@pytest.mark.parametrize("allowed", [True, False])
async def test_conf_loyalty_allow_external_id_update(make_org, allowed):
    org = await make_org(CONF_LOYALTY_ALLOW_EXTERNAL_ID_UPDATE=allowed)
    mobile = new_mobile()
    await org.add({"mobile": mobile, "external_id": f"old-{mobile}"})
    updated = await add_one(org, {"mobile": mobile, "external_id": f"new-{mobile}"})
    if allowed:
        assert updated["item_status"] == succeeded(UPDATED) and updated["external_id"] == f"new-{mobile}"
    else:
        assert updated["item_status"] == succeeded(UPDATED, (Code.IDENTIFIER_UPDATE_NOT_ALLOWED, "External id"))
        assert updated["external_id"] == f"old-{mobile}"


async def test_an_identifier_update_to_a_value_held_by_another_customer_is_91007(make_org):
    org = await make_org(CONF_ALLOW_EMAIL_UPDATE=True)
    first, second = new_mobile(), new_mobile()
    await org.add({"mobile": first, "email": email_of(first)})
    await org.add({"mobile": second, "email": email_of(second)})
    updated = await add_one(org, {"mobile": first, "email": email_of(second)})
    assert updated["item_status"] == succeeded(UPDATED, (Code.IDENTIFIER_OCCUPIED, "Email"))
    assert (await fetch(org, mobile=first))["email"] == email_of(first)


async def test_the_primary_never_changes_even_with_its_update_config_91005(make_org):
    org = await make_org(CONF_ALLOW_MOBILE_UPDATE=True)
    old, new = new_mobile(), new_mobile()
    await org.add({"mobile": old, "email": email_of(old)})
    updated = await add_one(org, {"mobile": new, "email": email_of(old)})
    assert updated["item_status"] == succeeded(UPDATED, (Code.PRIMARY_IDENTIFIER_NOT_UPDATABLE, "Mobile"))
    assert updated["mobile"] == old


async def test_null_never_clears_an_identifier(make_org):
    org = await make_org(CONF_ALLOW_EMAIL_UPDATE=True, CONF_LOYALTY_ALLOW_EXTERNAL_ID_UPDATE=True)
    mobile = new_mobile()
    await org.add({"mobile": mobile, "email": email_of(mobile), "external_id": f"ext-{mobile}"})
    for blank in ({"email": None, "external_id": None}, {}, {"email": "", "external_id": "  "}):
        updated = await add_one(org, {"mobile": mobile, **blank})
        assert updated["item_status"] == succeeded(UPDATED)
        assert (updated["email"], updated["external_id"]) == (email_of(mobile), f"ext-{mobile}")


async def test_fields_present_replace_and_absent_fields_stay(org):
    mobile = new_mobile()
    await org.add({
        "mobile": mobile, "firstname": "Asha", "lastname": "Rao", "source": "WEBSITE", "fraud_status": "NORMAL",
        "custom_fields": {"field": [{"name": "City_name", "value": "Pune"}]},
        "extended_fields": {"field": [{"name": "gender", "value": "F"}]},
    })
    await org.add({"mobile": mobile, "firstname": "Anita", "source": "mobile_app", "fraud_status": "OUTLIER"})
    got = await fetch(org, mobile=mobile)
    assert (got["firstname"], got["lastname"], got["source"], got["fraud_status"]) == ("Anita", "Rao", "mobile_app", "OUTLIER")
    assert by_name(got["custom_fields"]) == {"City_name": "Pune"}
    assert by_name(got["extended_fields"]) == {"gender": "Female"}


async def test_loyalty_to_non_loyalty_is_1046(org):
    mobile = new_mobile()
    existing = await add_one(org, {"mobile": mobile, "firstname": "Asha"})
    refused = await add_one(org, {"mobile": mobile, "type": "non_loyalty", "firstname": "Changed"})
    assert_failed(refused, Code.LOYALTY_TO_NON_LOYALTY)
    assert refused["user_id"] == existing["user_id"]
    got = await fetch(org, mobile=mobile)
    assert (got["type"], got["firstname"]) == ("LOYALTY", "Asha")


async def test_non_loyalty_to_loyalty_converts_the_customer(org):
    mobile = new_mobile()
    existing = await add_one(org, {"mobile": mobile, "type": "NON_LOYALTY"})
    assert existing["type"] == "NON_LOYALTY"
    assert (await add_one(org, {"mobile": mobile, "firstname": "Asha"}))["type"] == "NON_LOYALTY"
    converted = await add_one(org, {"mobile": mobile, "type": "loyalty"})
    assert converted["item_status"] == succeeded(UPDATED)
    assert converted["user_id"] == existing["user_id"] and converted["type"] == "LOYALTY"
    assert (await fetch(org, mobile=mobile))["type"] == "LOYALTY"


async def test_adding_an_existing_customer_again_is_an_update_never_a_duplicate_error(org):
    mobile = new_mobile()
    sent = {"mobile": mobile, "email": email_of(mobile), "external_id": f"ext-{mobile}"}
    first, second = await add_one(org, sent), await add_one(org, sent)
    assert first["item_status"] == succeeded(REGISTERED)
    assert second["item_status"] == succeeded(UPDATED)
    assert second["user_id"] == first["user_id"]


async def test_an_update_keeps_the_registration_till(org):
    mobile = new_mobile()
    await org.add({"mobile": mobile})
    two = org.till_named("till.two." + str(org.id))
    await org.add({"mobile": mobile, "associated_with": two}, till=two)
    got = await fetch(org, mobile=mobile)
    assert got["registered_till"]["code"] == org.till() and got["associated_with"] == two


# ---------------------------------------------------------------- §5 the batch


async def test_all_items_succeeding_is_200(org):
    response = await org.add({"mobile": new_mobile()}, {"mobile": new_mobile()})
    assert response.status_code == 200
    assert status_of(response) == {"success": "true", "code": 200, "message": MESSAGES[Code.SUCCESS], "total": "2",
                                   "success_count": "2"}


async def test_partial_batch_is_201_on_the_status_line_too(org):
    response = await org.add({"mobile": new_mobile()}, {"mobile": "12345"})
    assert response.status_code == 201
    assert status_of(response) == {"success": "true", "code": 201, "message": MESSAGES[Code.PARTIAL_SUCCESS],
                                   "total": "2", "success_count": "1"}


async def test_all_items_failing_is_500_on_the_status_line_too(org):
    response = await org.add({"mobile": "12345"}, {"email": "x@example.com"})
    assert response.status_code == 500
    assert status_of(response) == {"success": "false", "code": 500, "message": MESSAGES[Code.ALL_FAILED],
                                   "total": "2", "success_count": "0"}


async def test_items_are_processed_in_order_each_atomic_and_independent(org):
    existing, first, last = new_mobile(), new_mobile(), new_mobile()
    await org.add({"mobile": existing, "firstname": "Asha"})
    response = await org.add(
        {"mobile": first},
        {"mobile": existing, "type": "non_loyalty", "firstname": "Never", "email": email_of(existing)},
        {"mobile": last},
    )
    assert response.status_code == 201
    customers = response.json()["response"]["customers"]["customer"]
    assert [c["mobile"] for c in customers] == [first, existing, last]
    assert [c["item_status"]["code"] for c in customers] == ["1000", "1046", "1000"]
    got = await fetch(org, mobile=existing)
    assert (got["firstname"], got["email"], got["type"]) == ("Asha", None, "LOYALTY")
    assert (await fetch(org, mobile=first))["user_id"] < (await fetch(org, mobile=last))["user_id"]


async def test_later_item_sees_an_earlier_one(org):
    mobile = new_mobile()
    response = await org.add({"mobile": mobile, "firstname": "Asha"}, {"mobile": mobile, "lastname": "Rao"})
    assert response.status_code == 200
    first, second = item(response, 0), item(response, 1)
    assert first["item_status"] == succeeded(REGISTERED)
    assert second["item_status"] == succeeded(UPDATED)
    assert second["user_id"] == first["user_id"]
    assert (second["firstname"], second["lastname"]) == ("Asha", "Rao")


async def test_a_later_item_sees_an_earlier_ones_secondary(org):
    first, second = new_mobile(), new_mobile()
    response = await org.add({"mobile": first, "email": email_of(first)}, {"mobile": second, "email": email_of(first)})
    assert item(response, 1)["item_status"] == succeeded(UPDATED, (Code.PRIMARY_IDENTIFIER_NOT_UPDATABLE, "Mobile"))
    assert item(response, 1)["user_id"] == item(response, 0)["user_id"]


async def test_items_past_the_batch_limit_fail_with_1060(make_org):
    org = await make_org(BATCH_LIMIT=2)
    mobiles = [new_mobile() for _ in range(4)]
    response = await org.add(*({"mobile": mobile} for mobile in mobiles))
    assert response.status_code == 201
    customers = response.json()["response"]["customers"]["customer"]
    assert [c["item_status"]["code"] for c in customers] == ["1000", "1000", "1060", "1060"]
    assert_failed(customers[2], Code.BATCH_LIMIT_EXCEEDED)
    assert customers[2]["item_status"]["message"] == "Batch limit exceeded."
    assert customers[3]["mobile"] == mobiles[3]
    assert not await missing(org, mobile=mobiles[1])
    assert await missing(org, mobile=mobiles[2])


async def test_the_batch_limit_defaults_to_100(org):
    mobiles = [new_mobile() for _ in range(101)]
    response = await org.add(*({"mobile": mobile} for mobile in mobiles))
    assert response.status_code == 201
    assert status_of(response)["success_count"] == "100"
    assert item(response, 99)["item_status"]["code"] == "1000"
    assert_failed(item(response, 100), Code.BATCH_LIMIT_EXCEEDED)


async def test_failed_item_echoes_its_identifiers(org):
    response = await org.add(
        {"mobile": 12345, "email": "Asha@Example.com", "external_id": " ext-1 ", "firstname": "Asha"},
        {"mobile": "not a number"},
    )
    first, second = item(response, 0), item(response, 1)
    assert_failed(first, Code.INVALID_MOBILE)
    assert first["mobile"] == 12345 and first["email"] == "Asha@Example.com" and first["external_id"] == " ext-1 "
    assert "user_id" not in first and "firstname" not in first
    assert (second["mobile"], second["email"], second["external_id"]) == ("not a number", None, None)


async def test_a_failed_item_that_matched_a_customer_echoes_its_user_id(make_org):
    org = await make_org(CONF_PRIMARY_IDENTIFIER_STRICT_CHECK=True)
    mobile = new_mobile()
    existing = await add_one(org, {"mobile": mobile, "email": email_of(mobile)})
    converted = await add_one(org, {"mobile": mobile, "type": "non_loyalty"})
    mismatched = await add_one(org, {"mobile": new_mobile(), "email": email_of(mobile)})
    assert converted["user_id"] == mismatched["user_id"] == existing["user_id"]


async def test_warnings_appear_once_per_code_in_order(org):
    first, second = new_mobile(), new_mobile()
    await org.add({"mobile": first}, {"mobile": second, "email": email_of(second)})
    updated = await add_one(org, {
        "mobile": first,
        "firstname": "Asha!",
        "lastname": "Rao?",
        "email": email_of(second),
        "custom_fields": {"field": [{"name": "nope", "value": "1"}, {"name": "City_name", "value": "x" * 101}]},
        "extended_fields": {"field": [{"name": "gender", "value": "X"}, {"name": "age", "value": "-3"}]},
    })
    assert updated["item_status"] == succeeded(
        UPDATED,
        (Code.INVALID_FIELD_VALUE, "firstname"),
        Code.INVALID_CUSTOM_FIELD,
        (Code.INVALID_EXTENDED_FIELD, "gender"),
        (Code.IDENTIFIER_OCCUPIED, "Email"),  # arises in resolution, after the item was read
    )


async def test_every_add_response_carries_a_unique_request_id(org):
    ids = {(await org.add({"mobile": new_mobile()})).headers["X-Cap-Requestid"] for _ in range(3)}
    assert len(ids) == 3 and all(ids)


# ---------------------------------------------------------------- §7 the response item


async def test_a_success_item_has_the_fields_of_section_7(org):
    mobile = new_mobile()
    created = await add_one(org, {"mobile": mobile, "firstname": "Asha"})
    # The loyalty part of the item (points, slabs, side effects) is test_loyalty's.
    expected = {
        "user_id", "firstname", "lastname", "mobile", "email", "external_id", "lifetime_purchases", "registered_on",
        "updated_on", "type", "source", "fraud_status", "reason", "custom_fields", "extended_fields",
        "subscriptions", "item_status",
    }
    assert expected <= set(created)
    assert isinstance(created["user_id"], int) and not isinstance(created["user_id"], bool)
    assert (created["firstname"], created["lastname"], created["mobile"]) == ("Asha", "", mobile)
    assert created["email"] is None and created["external_id"] is None
    assert (created["type"], created["source"], created["fraud_status"]) == ("LOYALTY", "instore", "NONE")
    assert created["reason"] == ""
    assert created["custom_fields"] == {"field": []} and created["extended_fields"] == {"field": []}
    assert created["subscriptions"] == {"subscription": []}


# ---------------------------------------------------------------- §8 the audit


async def test_a_create_is_audited_field_by_field(org):
    mobile = new_mobile()
    response = await org.add({
        "mobile": mobile, "email": email_of(mobile), "firstname": "Asha", "source": "website",
        "custom_fields": {"field": [{"name": "City_name", "value": "Pune"}]},
    })
    created = item(response)
    (record,) = await audit_log(org, created["user_id"])
    assert record["requestId"] == response.headers["X-Cap-Requestid"]
    assert record["till"] == org.till() and record["updatedByMode"] == "API"
    assert {event["eventType"] for event in record["events"]} == {"CREATE"}
    fields = changed_fields(record)
    assert fields["mobile"] == (None, mobile)
    assert fields["email"] == (None, email_of(mobile))
    assert fields["firstname"] == (None, "Asha")
    assert fields["source"] == (None, "WEBSITE")
    assert fields["type"] == (None, "LOYALTY")
    assert fields["custom_fields"] == (None, {"City_name": "Pune"})
    assert "external_id" not in fields


async def test_audited_times_are_written_as_the_api_answers_them_in_the_orgs_timezone(org):
    mobile = new_mobile()
    created = await add_one(org, {"mobile": mobile, "registered_on": "2025-03-01 10:30:00"})
    (record,) = await audit_log(org, created["user_id"])
    fields = changed_fields(record)
    assert fields["registered_on"] == (None, "2025-03-01 10:30:00") == (None, created["registered_on"])
    assert "updated_on" not in fields  # no audit record lists it: it moves with every write


async def test_an_update_is_audited_with_each_changed_fields_previous_and_current_value(make_org):
    org = await make_org(CONF_ALLOW_EMAIL_UPDATE=True)
    mobile = new_mobile()
    user_id = (await add_one(org, {"mobile": mobile, "email": email_of(mobile), "firstname": "Asha", "lastname": "Rao",
                                   "custom_fields": {"field": [{"name": "City_name", "value": "Pune"}]}}))["user_id"]
    response = await org.add({"mobile": mobile, "email": "new." + email_of(mobile), "firstname": "Asha",
                              "lastname": "Iyer", "custom_fields": {"field": [{"name": "City_name", "value": "Goa"}]}})
    newest, oldest = await audit_log(org, user_id)
    assert newest["requestId"] == response.headers["X-Cap-Requestid"] != oldest["requestId"]
    assert {event["eventType"] for event in newest["events"]} == {"UPDATE"}
    fields = changed_fields(newest)
    assert fields["email"] == (email_of(mobile), "new." + email_of(mobile))
    assert fields["lastname"] == ("Rao", "Iyer")
    assert fields["custom_fields"] == ({"City_name": "Pune"}, {"City_name": "Goa"})
    assert "firstname" not in fields and "mobile" not in fields


async def test_a_failed_item_writes_no_audit_record(org):
    mobile = new_mobile()
    user_id = (await add_one(org, {"mobile": mobile}))["user_id"]
    assert_failed(await add_one(org, {"mobile": mobile, "type": "non_loyalty"}), Code.LOYALTY_TO_NON_LOYALTY)
    assert len(await audit_log(org, user_id)) == 1


async def test_the_audit_keeps_the_user_context_headers_as_sent(org):
    context = {
        "USER-CONTEXT-ENTITY-TYPE": "STAFF",
        "USER-CONTEXT-ENTITY-ID": "emp 42",
        "USER-CONTEXT-ENTITY-SOURCE": "something else",
        "USER-CONTEXT-ENTITY-SOURCE-ID": "x" * 255,
    }
    user_id = (await add_one(org, {"mobile": new_mobile()}, headers=context))["user_id"]
    (record,) = await audit_log(org, user_id)
    assert record["userContextDetails"] == {
        "entityType": "STAFF", "entityId": "emp 42", "entitySource": "something else", "entitySourceId": "x" * 255,
    }


async def test_a_user_context_header_over_255_characters_is_400(org):
    response = await org.add({"mobile": new_mobile()}, headers={"USER-CONTEXT-ENTITY-ID": "x" * 256})
    assert response.status_code == 400


async def test_an_api_clients_writes_are_audited_under_its_key(org):
    key = org.file.api_clients[0].key
    token = (await org.http.post("/v3/oauth/token/generate", json={"key": key, "secret": "backend-secret-123"})).json()
    response = await org.http.post(
        "/v1.1/customer/add", json={"root": {"customer": {"mobile": new_mobile()}}},
        headers={"X-CAP-API-OAUTH-TOKEN": token["data"]["accessToken"]},
    )
    (record,) = await audit_log(org, item(response)["user_id"])
    assert record["apiClient"] == key and record["till"] == org.file.api_clients[0].default_till


# ---------------------------------------------------------------- customer/get


async def test_get_by_mobile_with_plus_and_spaces(org):
    mobile = new_mobile()
    user_id = (await add_one(org, {"mobile": mobile}))["user_id"]
    for asked in (f"+{mobile}", f"+91 {mobile[2:7]} {mobile[7:]}", f" {mobile} ", f"+91-{mobile[2:]}"):
        got = await fetch(org, mobile=asked)
        assert got["user_id"] == user_id and got["mobile"] == mobile
    # A '+' left unescaped in the query string arrives as a space, and still finds the customer.
    for query in (f"mobile=+{mobile}", f"mobile=%2B91%20{mobile[2:]}"):
        response = await org.http.get(f"/v1.1/customer/get?{query}", headers=org.basic())
        assert item(response)["user_id"] == user_id, query


async def test_get_by_email_in_any_case(org):
    mobile = new_mobile()
    user_id = (await add_one(org, {"mobile": mobile, "email": email_of(mobile)}))["user_id"]
    assert (await fetch(org, email=email_of(mobile).upper()))["user_id"] == user_id


async def test_get_by_external_id_and_by_id(org):
    mobile = new_mobile()
    user_id = (await add_one(org, {"mobile": mobile, "external_id": f"ext-{mobile}"}))["user_id"]
    assert (await fetch(org, external_id=f"ext-{mobile}"))["user_id"] == user_id
    assert (await fetch(org, id=user_id))["mobile"] == mobile
    assert (await fetch(org, id=user_id, user_id="true"))["mobile"] == mobile


async def test_get_found_is_1000_customer_successfully_retrieved(org):
    mobile = new_mobile()
    await org.add({"mobile": mobile})
    response = await org.get(mobile=mobile)
    assert response.status_code == 200
    assert status_of(response) == {"success": "true", "code": 200, "message": MESSAGES[Code.SUCCESS], "total": "1",
                                   "success_count": "1"}
    assert item(response)["item_status"] == {
        "success": "true", "code": "1000", "message": RETRIEVED, "warnings": {"warning": []},
    }


@pytest.mark.parametrize(("key", "value"), [("mobile", "919800000000"), ("email", "nobody@example.com"),
                                            ("external_id", "nobody"), ("id", "1"), ("id", "abc"), ("mobile", "12")])
async def test_get_not_found_is_1012_echoing_the_identifier(org, key, value):
    response = await org.get(**{key: value})
    assert response.status_code == 500
    assert status_of(response)["code"] == 500 and status_of(response)["success"] == "false"
    missing_item = item(response)
    assert missing_item[key] == value
    assert_failed(missing_item, Code.CUSTOMER_NOT_FOUND)


async def test_get_with_comma_separated_values(org):
    first, second = new_mobile(), new_mobile()
    await org.add({"mobile": first}, {"mobile": second})
    response = await org.get(mobile=f"{second},919800000001, +{first}")
    assert response.status_code == 201
    assert status_of(response) == {"success": "true", "code": 201, "message": MESSAGES[Code.PARTIAL_SUCCESS],
                                   "total": "3", "success_count": "2"}
    customers = response.json()["response"]["customers"]["customer"]
    assert [c["item_status"]["code"] for c in customers] == ["1000", "1012", "1000"]
    assert (customers[0]["mobile"], customers[1]["mobile"], customers[2]["mobile"]) == (second, "919800000001", first)


async def test_get_of_another_orgs_id_is_1012(make_org):
    mine, theirs = await make_org(), await make_org()
    mobile = new_mobile()
    theirs_sent = {"mobile": mobile, "email": email_of(mobile), "external_id": f"ext-{mobile}"}
    their_id = (await add_one(theirs, theirs_sent))["user_id"]
    for query in ({"id": their_id}, {"mobile": mobile}, {"email": email_of(mobile)}, {"external_id": f"ext-{mobile}"}):
        assert_failed(item(await mine.get(**query)), Code.CUSTOMER_NOT_FOUND)


@pytest.mark.parametrize(
    "query",
    [{}, {"mobile": ""}, {"mobile": " , ,"}, {"mobile": "919812345678", "email": "a@example.com"},
     {"mobile": "919812345678", "format": "yaml"}, {"mobile": "919812345678", "user_id": "perhaps"}],
)
async def test_get_needs_exactly_one_lookup_key_and_good_parameters(org, query):
    response = await org.get(**query)
    assert response.status_code == 400
    assert status_of(response)["message"] == MESSAGES[Code.INVALID_INPUT]


async def test_get_carries_the_read_only_fields_and_no_side_effects(org):
    mobile = new_mobile()
    await org.add({"mobile": mobile, "email": email_of(mobile), "fraud_status": "marked"})
    got = await fetch(org, mobile=mobile)
    for key in ("fraud_details", "registered_till", "registered_store", "associated_with", "referral_code",
                "commChannels", "identifiers", "custom_fields", "extended_fields", "subscriptions"):
        assert key in got, key
    assert "side_effects" not in got
    assert got["fraud_details"] == {"status": "MARKED"}
    assert got["identifiers"] == [{"type": "mobile", "value": mobile}, {"type": "email", "value": email_of(mobile)}]
    assert got["registered_till"] == {"code": org.till(), "name": "Till One"}


async def test_a_read_only_till_may_get(org):
    mobile = new_mobile()
    await org.add({"mobile": mobile})
    readonly = org.till_named("till.readonly." + str(org.id))
    assert (await fetch(org, till=readonly, mobile=mobile))["mobile"] == mobile


# ---------------------------------------------------------------- the seed's samples


SEED_SAMPLE_ONE = {
    "mobile": 917755876888,
    "email": "testNee113@gmail.com",
    "external_id": "12on",
    "firstname": "Neeraj",
    "lastname": "loyal",
    "updated_on": "2025-05-29 09:10:00",
    "registered_till": "rutuja_capillary",
    "associated_with": "rutuja_capillary",
    "type": "NON_LOYALTY",
    "source": "WEB_ENGAGE",
    "accountId": "123456",
    "fraud_status": {"status": "Fraus_Suspected"},
    "commChannels": [{"type": "mobile", "value": "917755876888", "primary": "true", "verified": "true",
                      "meta": {"residence": "true"}}],
    "custom_fields": {"field": [{"name": "City_name", "value": "Bangalore"}, {"name": "address", "value": "BTM"}]},
    "extended_fields": {"field": [{"name": "age", "value": "25"}]},
}


async def test_seed_sample_one_with_mobile_and_email(org):
    response = await org.add(SEED_SAMPLE_ONE)
    assert response.status_code == 200
    created = item(response)
    assert created["item_status"] == succeeded(
        REGISTERED, Code.INVALID_FRAUD_STATUS, Code.INVALID_REGISTERED_TILL, Code.INVALID_ATTRIBUTION_TILL,
        Code.INVALID_CUSTOM_FIELD,
    )
    assert (created["mobile"], created["email"], created["external_id"]) == ("917755876888", "testnee113@gmail.com", "12on")
    assert (created["firstname"], created["lastname"]) == ("Neeraj", "loyal")
    assert (created["type"], created["source"]) == ("NON_LOYALTY", "web_engage")
    assert (created["fraud_status"], created["updated_on"]) == ("NONE", "2025-05-29 09:10:00")
    assert created["custom_fields"]["field"] == [{"name": "City_name", "value": "Bangalore"}]
    assert created["extended_fields"]["field"] == [{"name": "age", "value": "25"}]
    got = await fetch(org, mobile="917755876888")
    assert got["registered_till"]["code"] == got["associated_with"] == org.till()
    assert got["commChannels"] == SEED_SAMPLE_ONE["commChannels"]


async def test_seed_sample_two_corrected_registers_by_external_id(make_org):
    org = await make_org(CONF_REGISTRATION_PRIMARY_KEY="external_id")
    sample = {"external_id": "123445901", "registered_on": "2024-07-29 11:11:11", "registered_till": "till_name",
              "associated_with": "till_name"}
    response = await org.add(sample)
    assert response.status_code == 200
    created = item(response)
    assert created["item_status"] == succeeded(REGISTERED, Code.INVALID_REGISTERED_TILL, Code.INVALID_ATTRIBUTION_TILL)
    assert (created["mobile"], created["email"], created["external_id"]) == (None, None, "123445901")
    assert (created["firstname"], created["lastname"], created["type"]) == ("", "", "LOYALTY")
    assert created["registered_on"] == "2024-07-29 11:11:11"


async def test_seed_sample_two_corrected_needs_a_mobile_in_a_mobile_primary_org(org):
    # The seed's 1007 row: no valid mobile, external ID or email for this org's rules.
    sample = {"external_id": "123445901", "registered_on": "2024-07-29 11:11:11"}
    assert_failed(await add_one(org, sample), Code.MOBILE_REQUIRED)


async def test_seed_500_sample_every_item_failing(org):
    response = await org.add({"mobile": "1"})
    assert response.status_code == 500
    assert status_of(response) == {"success": "false", "code": 500, "message": MESSAGES[Code.ALL_FAILED],
                                   "total": "1", "success_count": "0"}


# ---------------------------------------------------------------- XML


async def test_an_xml_answer_is_well_formed_whatever_a_json_request_stored(org):
    mobile = new_mobile()
    city = {"name": "City_name", "value": "x\x02y"}
    await org.add({"mobile": mobile, "custom_fields": {"field": [city]}})
    answer = ElementTree.fromstring((await org.get(mobile=mobile, format="xml")).content)
    assert answer.findtext("customers/customer/custom_fields/field/value") == "x\ufffdy"
    assert (await fetch(org, mobile=mobile))["custom_fields"]["field"][0]["value"] == "x\x02y"


async def test_every_element_of_a_json_answer_is_in_its_xml_answer_empty_lists_as_empty_elements(org):
    mobile = new_mobile()
    await org.add({"mobile": mobile})
    as_json = item(await org.get(mobile=mobile))
    assert as_json["commChannels"] == []
    answer = ElementTree.fromstring((await org.get(mobile=mobile, format="xml")).content)
    customer = answer.find("customers/customer")
    for key, value in as_json.items():
        element = customer.find(key)
        assert element is not None, key
        if value == []:
            assert len(element) == 0 and not (element.text or "").strip(), key
    assert customer.find("commChannels") is not None


async def test_xml_batch_of_two_customers(org):
    first, second = new_mobile(), new_mobile()
    body = (f"<root><customer><mobile>{first}</mobile></customer>"
            f"<customer><mobile>{second}</mobile><email>bad</email></customer></root>").encode()
    response = await post(org, body, content_type="application/xml")
    assert response.status_code == 200
    answer = ElementTree.fromstring(response.content)
    assert answer.findtext("status/total") == "2" and answer.findtext("status/success_count") == "2"
    customers = answer.findall("customers/customer")
    assert [c.findtext("mobile") for c in customers] == [first, second]
    assert [w.text for w in customers[1].findall("item_status/warnings/warning")] == [str(int(Code.INVALID_EMAIL))]
    assert customers[1].findtext("item_status/message") == succeeded(REGISTERED, Code.INVALID_EMAIL)["message"]


async def test_xml_round_trip(org):
    mobile = new_mobile()
    two = org.till_named("till.two." + str(org.id))
    body = f"""<?xml version="1.0" encoding="UTF-8"?>
<root>
  <customer>
    <mobile>+91 {mobile[2:]}</mobile>
    <email>Asha.{mobile}@Example.com</email>
    <external_id>ext-{mobile}</external_id>
    <firstname>अनन्या</firstname>
    <lastname>O'Brien</lastname>
    <registered_on>2024-07-29 11:11:11</registered_on>
    <updated_on>2025-05-29 09:10:00</updated_on>
    <registered_till>{two}</registered_till>
    <associated_with>{two}</associated_with>
    <type>loyalty</type>
    <source>web_engage</source>
    <accountId>123456</accountId>
    <fraud_status><status>normal</status></fraud_status>
    <custom_fields>
      <field><name>city_name</name><value>Pune</value></field>
      <field><name>pwgConsumption</name><value>2.5</value></field>
    </custom_fields>
    <extended_fields>
      <field><name>gender</name><value>F</value></field>
    </extended_fields>
    <subscriptions>
      <subscription>
        <channel>sms</channel><priority>TRANS</priority><scope>all</scope><is_subscribed>1</is_subscribed>
      </subscription>
    </subscriptions>
    <commChannels>
      <commChannel><type>mobile</type><value>{mobile}</value><primary>true</primary><verified>false</verified></commChannel>
    </commChannels>
  </customer>
</root>""".encode()
    response = await post(org, body, content_type="application/xml")
    assert response.status_code == 200, response.text
    added = ElementTree.fromstring(response.content).find("customers/customer")
    assert added.findtext("item_status/message") == REGISTERED

    as_xml = await org.get(mobile=mobile, format="xml")
    got = ElementTree.fromstring(as_xml.content).find("customers/customer")
    as_json = await fetch(org, mobile=mobile)
    assert got.findtext("user_id") == added.findtext("user_id") == str(as_json["user_id"])
    expected = {
        "mobile": mobile, "email": f"asha.{mobile}@example.com", "external_id": f"ext-{mobile}",
        "firstname": "अनन्या", "lastname": "O'Brien", "registered_on": "2024-07-29 11:11:11",
        "updated_on": "2025-05-29 09:10:00", "type": "LOYALTY", "source": "web_engage", "fraud_status": "NORMAL",
        "associated_with": two, "registered_till/code": two, "fraud_details/status": "NORMAL",
        "item_status/message": RETRIEVED,
    }
    for path, value in expected.items():
        assert got.findtext(path) == value, path
    assert {f.findtext("name"): f.findtext("value") for f in got.findall("custom_fields/field")} == {
        "City_name": "Pune", "pwgConsumption": "2.5",
    }
    assert [(f.findtext("name"), f.findtext("value")) for f in got.findall("extended_fields/field")] == [("gender", "Female")]
    subscription = got.find("subscriptions/subscription")
    assert [subscription.findtext(k) for k in ("channel", "priority", "scope", "is_subscribed")] == [
        "sms", "TRANS", "all", "1",
    ]
    channel = got.find("commChannels")
    assert [channel.findtext(k) for k in ("type", "value", "primary", "verified")] == ["mobile", mobile, "true", "false"]
    assert as_json["commChannels"][0]["value"] == mobile
    assert by_name(as_json["custom_fields"]) == {"City_name": "Pune", "pwgConsumption": "2.5"}


# ---------------------------------------------------------------- Patron's choices where the spec is silent


async def test_an_item_with_no_identifier_at_all_gets_the_primarys_required_code_first(make_org):
    # Spec §3: the required identifiers (step 2) are checked before "no valid identifier left" (step 3).
    org = await make_org()
    assert_failed(await add_one(org, {"firstname": "Nobody"}), Code.MOBILE_REQUIRED)
    anywhere = await make_org(CONF_ALLOW_REGISTRATION_FROM_ANY_IDENTIFIERS=True)
    assert_failed(await add_one(anywhere, {"firstname": "Nobody"}), Code.NO_VALID_IDENTIFIER)


async def test_a_registered_on_out_of_range_fails_a_registration_but_is_ignored_by_an_update(make_org):
    org = await make_org()
    mobile = new_mobile()
    assert_failed(await add_one(org, {"mobile": mobile, "registered_on": "1990-01-01"}), Code.REGISTRATION_DATE_OUT_OF_RANGE)
    created = await add_one(org, {"mobile": mobile, "registered_on": "2020-01-01 10:00:00"})
    updated = await add_one(org, {"mobile": mobile, "registered_on": "1990-01-01", "firstname": "Later"})
    assert updated["item_status"] == succeeded(UPDATED)
    assert updated["registered_on"] == created["registered_on"] == "2020-01-01 10:00:00"


async def test_an_unknown_type_on_an_update_keeps_the_customers_type(make_org):
    org = await make_org()
    mobile = new_mobile()
    await add_one(org, {"mobile": mobile, "type": "NON_LOYALTY"})
    updated = await add_one(org, {"mobile": mobile, "type": "LOYALY"})
    assert updated["type"] == "NON_LOYALTY"
    assert updated["item_status"] == succeeded(UPDATED, (Code.INVALID_FIELD_VALUE, "type"))


async def test_empty_xml_elements_say_nothing(make_org):
    org = await make_org()
    mobile = new_mobile()
    body = (
        f"<root><customer><mobile>{mobile}</mobile><email/><registered_on/><type/><source/>"
        "<fraud_status/><registered_till/></customer></root>"
    ).encode()
    response = await post(org, body, content_type="application/xml")
    assert response.status_code == 200
    assert "<code>1000</code>" in response.text and "<warning>" not in response.text


async def test_custom_and_extended_fields_keep_the_order_they_were_sent_in(make_org):
    org = await make_org()
    mobile = new_mobile()
    await add_one(org, {
        "mobile": mobile,
        "custom_fields": {"field": [{"name": "pwgConsumption", "value": "1.5"}, {"name": "City_name", "value": "Pune"}]},
        "extended_fields": {"field": [{"name": "zip", "value": "411001"}, {"name": "age", "value": "30"}]},
    })
    found = await fetch(org, mobile=mobile)
    assert [f["name"] for f in found["custom_fields"]["field"]] == ["pwgConsumption", "City_name"]
    assert [f["name"] for f in found["extended_fields"]["field"]] == ["zip", "age"]


async def test_audit_times_are_written_in_the_orgs_timezone(make_org, http):
    org = await make_org()
    created = await add_one(org, {"mobile": new_mobile(), "registered_on": "2024-07-29 11:11:11"})
    admin = org.till_named("till.admin." + str(org.id))
    response = await http.get(
        "/api_gateway/v2/audits", params={"entityType": "CUSTOMER", "entityId": created["user_id"]}, headers=org.basic(admin)
    )
    (record,) = response.json()["data"]
    registered = next(e for e in record["events"] if e["updatedField"] == "registered_on")
    assert registered["additionalFields"]["currentValue"] == "2024-07-29 11:11:11"


async def test_user_context_headers_in_utf8_are_stored_as_sent(make_org, http):
    org = await make_org()
    mobile = new_mobile()
    body = orjson.dumps({"root": {"customer": [{"mobile": mobile}]}})
    headers = {**org.basic(), "Content-Type": "application/json", "USER-CONTEXT-ENTITY-SOURCE-ID": "tkt 99 ü café".encode()}
    created = item(await http.post("/v1.1/customer/add", content=body, headers=headers))
    admin = org.till_named("till.admin." + str(org.id))
    response = await http.get(
        "/api_gateway/v2/audits",
        params={"entityType": "CUSTOMER", "entityId": created["user_id"], "includeUserContext": "true"},
        headers=org.basic(admin),
    )
    assert response.json()["data"][0]["userContextDetails"]["entitySourceId"] == "tkt 99 ü café"


async def test_more_lookup_values_than_the_batch_limit_is_400(make_org):
    org = await make_org(BATCH_LIMIT=3)
    response = await org.get(mobile=",".join(new_mobile() for _ in range(4)))
    assert response.status_code == 400


async def test_an_invalid_format_is_answered_in_the_format_of_the_path_suffix(make_org):
    org = await make_org()
    response = await org.http.get("/v1.1/customer/get.xml", params={"format": "yaml", "mobile": new_mobile()}, headers=org.basic())
    assert response.status_code == 400 and response.headers["content-type"].startswith("application/xml")
