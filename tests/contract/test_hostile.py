"""Hostile and broken input through HTTP: every answer is the envelope, never a traceback, never an
unexpected 5xx; what can be stored is stored verbatim and answered escaped."""

from __future__ import annotations

from typing import Any
from xml.etree.ElementTree import fromstring

import httpx
import orjson
import pytest

from support.api import item, new_mobile
from support.envelope import answer
from patron.codes import Code

JSON = {"Content-Type": "application/json"}
XML = {"Content-Type": "application/xml"}


def on_postgresql(org: Any) -> bool:
    return org.engine.dialect.name == "postgresql"


async def add_raw(
    client: httpx.AsyncClient, org: Any, body: bytes, headers: dict[str, Any] | None = None, **params: Any
) -> httpx.Response:
    headers = {**JSON, **org.basic(), **(headers or {})}
    return await client.post("/v1.1/customer/add", content=body, params=params, headers=headers)


async def add(client: httpx.AsyncClient, org: Any, *customers: dict[str, Any], **params: Any) -> httpx.Response:
    return await add_raw(client, org, orjson.dumps({"root": {"customer": list(customers)}}), **params)


async def get(client: httpx.AsyncClient, org: Any, **params: Any) -> httpx.Response:
    return await client.get("/v1.1/customer/get", params=params, headers=org.basic())


def item_code(response: httpx.Response, index: int = 0) -> str:
    return item(response, index)["item_status"]["code"]


def warnings_of(response: httpx.Response, index: int = 0) -> list[str]:
    return item(response, index)["item_status"]["warnings"]["warning"]


# Bodies that are not what they claim to be.


async def test_a_json_body_that_is_not_utf8_is_400(client, org):
    status = answer(await add_raw(client, org, b'{"root":{"customer":{"mobile":"\xff\xfe"}}}'))
    assert status["code"] == Code.INVALID_INPUT and "UTF-8" in status["detail"]


async def test_an_xml_body_that_is_not_utf8_is_400_in_xml(client, org):
    body = b"<root><customer><mobile>\xff\xfe</mobile></customer></root>"
    response = await add_raw(client, org, body, headers=XML)
    assert response.headers["content-type"].startswith("application/xml")
    assert answer(response)["code"] == Code.INVALID_INPUT


async def test_a_body_of_random_bytes_is_400(client, org):
    for body in (bytes(range(256)), b"\x00" * 64, b"\xef\xbb\xbf", b"null", b"[]", b'"root"', b"{}"):
        assert answer(await add_raw(client, org, body))["code"] == Code.INVALID_INPUT, body


# NUL: PostgreSQL refuses it in text and jsonb, so Patron refuses it as an invalid value first.


async def test_nul_in_the_primary_identifier_is_an_invalid_mobile(client, org):
    response = await add(client, org, {"mobile": new_mobile() + "\u0000"})
    answer(response)
    assert item_code(response) == str(int(Code.INVALID_MOBILE))


async def test_nul_in_a_secondary_identifier_drops_it_with_its_warning(client, org):
    mobile = new_mobile()
    response = await add(client, org, {"mobile": mobile, "email": "a\u0000@example.com", "external_id": "ext\u0000"})
    assert answer(response)["code"] == Code.SUCCESS
    assert warnings_of(response) == [str(int(Code.INVALID_EMAIL)), str(int(Code.INVALID_EXTERNAL_ID))]
    assert (item(response)["email"], item(response)["external_id"]) == (None, None)


@pytest.mark.parametrize(
    ("field", "value", "warning"),
    [
        ("firstname", "Asha\u0000", Code.INVALID_FIELD_VALUE),
        ("accountId", "acc\u0000", Code.INVALID_FIELD_VALUE),
        ("type", "loyalty\u0000", Code.INVALID_FIELD_VALUE),
        ("source", "instore\u0000", Code.INVALID_FIELD_VALUE),
        ("fraud_status", "\u0000", Code.INVALID_FRAUD_STATUS),
        ("updated_on", "2024-01-01\u0000", Code.INVALID_FIELD_VALUE),
        ("registered_till", "till\u0000", Code.INVALID_REGISTERED_TILL),
        ("custom_fields", {"field": [{"name": "City_name", "value": "Pune\u0000"}]}, Code.INVALID_CUSTOM_FIELD),
        ("custom_fields", {"field": [{"name": "City\u0000name", "value": "Pune"}]}, Code.INVALID_CUSTOM_FIELD),
        ("extended_fields", {"field": [{"name": "city", "value": "Pune\u0000"}]}, Code.INVALID_EXTENDED_FIELD),
        ("commChannels", [{"type": "email", "value": "a\u0000@example.com"}], Code.INVALID_FIELD_VALUE),
    ],
)
async def test_nul_in_a_field_skips_that_field_with_its_warning(client, org, field, value, warning):
    response = await add(client, org, {"mobile": new_mobile(), field: value})
    assert answer(response)["code"] == Code.SUCCESS
    assert warnings_of(response) == [str(int(warning))]


async def test_nul_in_a_lookup_value_finds_nobody(client, org):
    for key, value in (("external_id", "ext\u0000"), ("email", "a\u0000@example.com"), ("mobile", "91\u000098")):
        response = await get(client, org, **{key: value})
        assert answer(response)["code"] == Code.ALL_FAILED
        assert item_code(response) == str(int(Code.CUSTOMER_NOT_FOUND))


async def test_nul_in_comm_channel_meta_is_refused_not_a_database_error(client, org):
    meta = {"note": "a\u0000b"}
    response = await add(client, org, {"mobile": new_mobile(), "commChannels": [{"type": "email", "value": "a@b.co", "meta": meta}]})
    answer(response)


async def test_nul_in_a_user_context_header_is_refused_not_a_database_error(client, org):
    body = orjson.dumps({"root": {"customer": [{"mobile": new_mobile()}]}})
    response = await add_raw(client, org, body, headers={"USER-CONTEXT-ENTITY-ID": b"staff\x00one"})
    answer(response)


# Numbers no field can hold.


@pytest.mark.parametrize("place", ["mobile", "custom"])
async def test_a_json_number_beyond_a_double_is_400_naming_its_place(client, make_org, place):
    org = await make_org("fields")
    huge = b"1" + b"0" * 400
    customer = b'{"mobile":%s}' % huge if place == "mobile" else (
        b'{"mobile":"%s","custom_fields":{"field":[{"name":"visits","value":%s}]}}' % (new_mobile().encode(), huge)
    )
    response = await add_raw(client, org, b'{"root":{"customer":[%s]}}' % customer)
    status = answer(response)
    assert status["code"] == Code.INVALID_INPUT
    assert "line 1, column" in status["detail"]


async def test_a_huge_number_as_a_mobile_is_an_invalid_mobile(client, org):
    for mobile in (b"1e300", b"-1e300", b"18446744073709551615", b"-9223372036854775808", b"0.5"):
        response = await add_raw(client, org, b'{"root":{"customer":{"mobile":%s}}}' % mobile)
        answer(response)
        assert item_code(response) == str(int(Code.INVALID_MOBILE)), mobile


async def test_a_huge_number_in_xml_is_an_invalid_value_not_a_crash(client, make_org):
    org = await make_org("fields")
    huge = "1" + "0" * 400
    body = (
        f"<root><customer><mobile>{huge}</mobile></customer><customer><mobile>{new_mobile()}</mobile>"
        f"<custom_fields><field><name>visits</name><value>{huge}</value></field>"
        f"<field><name>pwgConsumption</name><value>{huge}e400</value></field></custom_fields>"
        f"<extended_fields><field><name>age</name><value>{huge}</value></field></extended_fields></customer></root>"
    ).encode()
    response = await add_raw(client, org, body, headers=XML)
    assert answer(response)["code"] == Code.PARTIAL_SUCCESS
    root = fromstring(response.content)
    first, second = root.findall("customers/customer")
    assert first.findtext("item_status/code") == str(int(Code.INVALID_MOBILE))
    assert [w.text for w in second.findall("item_status/warnings/warning")] == [
        str(int(Code.INVALID_CUSTOM_FIELD)), str(int(Code.INVALID_EXTENDED_FIELD)),
    ]


async def test_an_integer_beyond_64_bits_is_never_stored_with_other_digits(client, make_org):
    org = await make_org("fields")
    body = b'{"root":{"customer":{"mobile":"%s","custom_fields":{"field":[{"name":"visits","value":1%s}]}}}}' % (
        new_mobile().encode(), b"0" * 30,
    )
    response = await add_raw(client, org, body)
    answer(response)
    stored = {field["name"]: field["value"] for field in item(response)["custom_fields"]["field"]}
    assert stored.get("visits") in (None, "1" + "0" * 30)


# Nesting.


async def test_json_nested_beyond_the_parsers_depth_is_400(client, org):
    for body in (b"[" * 5000 + b"]" * 5000, b'{"root":{"customer":' + b'{"a":' * 3000 + b"1" + b"}" * 3002):
        assert answer(await add_raw(client, org, body))["code"] == Code.INVALID_INPUT


def nested(depth: int) -> bytes:
    """A JSON value `depth` levels deep, within the parser's limit (the encoder's is lower)."""
    return b'{"a":[' * (depth // 2) + b'"x"' + b"]}" * (depth // 2)


ITEM_FIELDS = (
    "mobile", "email", "external_id", "firstname", "lastname", "registered_on", "updated_on", "type", "source",
    "accountId", "fraud_status", "registered_till", "associated_with", "referral_code",
)
LIST_FIELDS = ("commChannels", "subscriptions", "custom_fields", "extended_fields")


# A deeply nested mobile fails the item, whose echo is the known bug further down.
@pytest.mark.parametrize("field", ITEM_FIELDS[1:] + LIST_FIELDS)
async def test_a_deeply_nested_value_in_any_field_is_an_invalid_value(client, org, field):
    body = b'{"root":{"customer":{"mobile":"%s","%s":%s}}}' % (new_mobile().encode(), field.encode(), nested(1000))
    status = answer(await add_raw(client, org, body))
    assert status["code"] in (Code.SUCCESS, Code.ALL_FAILED), status


@pytest.mark.parametrize("field", ["mobile", "email", "external_id"])
async def test_a_failed_item_echoes_a_deeply_nested_identifier_in_xml(client, org, field):
    body = b'{"root":{"customer":{"%s":%s}}}' % (field.encode(), nested(1000))
    response = await add_raw(client, org, body, headers={"Accept": "application/xml"})
    assert response.headers["content-type"].startswith("application/xml")
    assert answer(response)["code"] == Code.ALL_FAILED


@pytest.mark.parametrize("field", ["mobile", "email", "external_id"])
async def test_a_failed_item_echoes_a_deeply_nested_identifier_in_json(client, org, field):
    body = b'{"root":{"customer":{"%s":%s}}}' % (field.encode(), nested(300))
    assert answer(await add_raw(client, org, body))["code"] == Code.ALL_FAILED


@pytest.mark.parametrize("key", ["", "1a", "a b", "<x>"])
async def test_a_failed_item_echoing_an_object_answers_well_formed_xml(client, org, key):
    body = orjson.dumps({"root": {"customer": [{"mobile": {key: "x"}}]}})
    response = await add_raw(client, org, body, headers={"Accept": "application/xml"})
    assert answer(response)["code"] == Code.ALL_FAILED


async def test_xml_nested_beyond_its_depth_is_400(client, org):
    body = b"<root><customer>" + b"<a>" * 500 + b"x" + b"</a>" * 500 + b"</customer></root>"
    assert answer(await add_raw(client, org, body, headers=XML))["code"] == Code.INVALID_INPUT


# Sizes.


@pytest.mark.parametrize("field", ITEM_FIELDS)
async def test_a_very_long_string_in_any_field_is_refused_with_a_code_or_stored_whole(client, org, field):
    long = "9" * 20_000 if field == "mobile" else "x" * 20_000
    response = await add(client, org, {"mobile": new_mobile(), field: long})
    status, entry = answer(response), item(response)
    if status["code"] == Code.SUCCESS:
        assert entry.get(field) == long or entry["item_status"]["warnings"]["warning"], field
    else:
        assert entry["item_status"]["code"] != str(int(Code.ITEM_OK)), field


async def test_very_long_strings_in_lists_and_named_fields_are_refused_or_stored_whole(client, org):
    long = "x" * 12_000
    customer = {
        "mobile": new_mobile(),
        "custom_fields": {"field": [{"name": long, "value": "v"}, {"name": "City_name", "value": long}]},
        "extended_fields": {"field": [{"name": "city", "value": long}]},
        "commChannels": [{"type": "email", "value": long, "meta": {"k": long[:5000]}}],
        "subscriptions": {"subscription": [{"channel": "sms", "priority": "TRANS", "scope": long[:5000], "is_subscribed": 1}]},
    }
    response = await add(client, org, customer)
    assert answer(response)["code"] == Code.SUCCESS
    assert set(warnings_of(response)) == {str(int(Code.INVALID_CUSTOM_FIELD)), str(int(Code.INVALID_EXTENDED_FIELD))}
    assert item(response)["subscriptions"]["subscription"][0]["scope"] == long[:5000]


async def test_very_long_headers_are_refused_or_ignored(client, org):
    long = "x" * 8000
    body = orjson.dumps({"root": {"customer": [{"mobile": new_mobile()}]}})
    assert answer(await add_raw(client, org, body, headers={"USER-CONTEXT-ENTITY-TYPE": long}))["code"] == Code.INVALID_INPUT
    assert answer(await add_raw(client, org, body, headers={"Accept": long}))["code"] == Code.SUCCESS
    assert answer(await add_raw(client, org, body, headers={"Content-Type": long}))["code"] == Code.UNSUPPORTED_MEDIA_TYPE
    token = {"X-CAP-API-OAUTH-TOKEN": long}
    assert answer(await client.get("/v1.1/customer/get", params={"mobile": "1"}, headers=token))["code"] == Code.AUTHENTICATION_FAILED


async def test_a_2_mb_body_is_413(client, org):
    body = b'{"root":{"customer":[' + b'{"mobile":"919800000000"},' * 90_000 + b"{}]}}"
    assert len(body) > 2 * 1024 * 1024
    assert answer(await add_raw(client, org, body))["code"] == Code.BODY_TOO_LARGE
    xml = b"<root>" + b"<customer><mobile>919800000000</mobile></customer>" * 45_000 + b"</root>"
    assert answer(await add_raw(client, org, xml, headers=XML))["code"] == Code.BODY_TOO_LARGE


async def test_a_2_mb_body_without_a_length_is_413_once_it_passes_the_limit(client, org):
    async def chunks():
        for _ in range(64):
            yield b" " * 32 * 1024

    response = await client.post("/v1.1/customer/add", content=chunks(), headers={**JSON, **org.basic()})
    assert answer(response)["code"] == Code.BODY_TOO_LARGE


async def test_1000_items_under_a_batch_limit_of_100_are_900_times_1060(client, make_org):
    org = await make_org(BATCH_LIMIT=100)
    response = await add(client, org, *({"mobile": new_mobile()} for _ in range(1000)))
    status = answer(response)
    assert (status["code"], status["total"], status["success_count"]) == (Code.PARTIAL_SUCCESS, "1000", "100")
    codes = [entry["item_status"]["code"] for entry in response.json()["response"]["customers"]["customer"]]
    assert codes == ["1000"] * 100 + [str(int(Code.BATCH_LIMIT_EXCEEDED))] * 900


# Injection: stored verbatim, answered escaped.

HOSTILE_TEXT = (
    "'; DROP TABLE customers; --",
    "1' OR '1'='1",
    "\" OR \"\"=\"",
    "<script>alert('x')</script>",
    "\"><img src=x onerror=alert(1)>",
    "]]><!-- &amp; &lt; -->",
    "${jndi:ldap://x/a} {{7*7}} %s%n",
)


@pytest.mark.parametrize("hostile", HOSTILE_TEXT)
async def test_injection_strings_are_stored_verbatim_and_answered_escaped(client, org, hostile):
    mobile = new_mobile()
    customer = {
        "mobile": mobile,
        "external_id": hostile,
        "accountId": hostile,
        "custom_fields": {"field": [{"name": "City_name", "value": hostile}]},
        "extended_fields": {"field": [{"name": "city", "value": hostile}]},
        "commChannels": [{"type": "email", "value": hostile, "meta": {"note": hostile}}],
    }
    added = await add(client, org, customer)
    assert answer(added)["code"] == Code.SUCCESS, added.text

    found = await get(client, org, external_id=hostile)
    assert answer(found)["code"] == Code.SUCCESS
    stored = item(found)
    assert stored["mobile"] == mobile and stored["external_id"] == hostile
    assert stored["custom_fields"]["field"] == [{"name": "City_name", "value": hostile}]
    assert stored["extended_fields"]["field"] == [{"name": "city", "value": hostile}]
    assert stored["commChannels"][0]["value"] == hostile and stored["commChannels"][0]["meta"] == {"note": hostile}

    as_xml = await get(client, org, format="xml", mobile=mobile)
    assert answer(as_xml)["code"] == Code.SUCCESS
    root = fromstring(as_xml.content)
    assert root.findtext("customers/customer/external_id") == hostile
    assert root.findtext("customers/customer/custom_fields/field/value") == hostile
    if "<" in hostile:
        assert hostile.encode() not in as_xml.content  # escaped, never raw markup

    # The tables are all still there.
    assert answer(await add(client, org, {"mobile": new_mobile()}))["code"] == Code.SUCCESS


async def test_an_injection_string_in_a_lookup_matches_nobody(client, org):
    await add(client, org, {"mobile": new_mobile(), "external_id": f"ext-{new_mobile()}"})
    for key in ("external_id", "email", "mobile", "id"):
        for hostile in ("' OR '1'='1", "1 OR 1=1", "%", "_", "*"):
            response = await get(client, org, **{key: hostile})
            answer(response)
            assert item_code(response) == str(int(Code.CUSTOMER_NOT_FOUND)), (key, hostile)


async def test_a_name_with_injection_characters_is_refused_and_an_apostrophe_kept(client, org):
    response = await add(client, org, {"mobile": new_mobile(), "firstname": "Robert'); DROP TABLE customers;--", "lastname": "O'Brien"})
    assert answer(response)["code"] == Code.SUCCESS
    assert warnings_of(response) == [str(int(Code.INVALID_FIELD_VALUE))]
    assert (item(response)["firstname"], item(response)["lastname"]) == ("", "O'Brien")


async def test_xml_markup_sent_escaped_in_xml_is_stored_as_text(client, org):
    mobile = new_mobile()
    body = f"<root><customer><mobile>{mobile}</mobile><external_id>&lt;b&gt;x&amp;y&lt;/b&gt;</external_id></customer></root>"
    response = await add_raw(client, org, body.encode(), headers=XML)
    assert answer(response)["code"] == Code.SUCCESS
    assert b"&lt;b&gt;x&amp;y&lt;/b&gt;" in response.content
    assert item(await get(client, org, mobile=mobile))["external_id"] == "<b>x&y</b>"


# XML that tries to reach outside the document.

XML_ATTACKS = {
    "external entity": b'<?xml version="1.0"?><!DOCTYPE root [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    b"<root><customer><mobile>&xxe;</mobile></customer></root>",
    "external DTD": b'<?xml version="1.0"?><!DOCTYPE root SYSTEM "http://example.invalid/evil.dtd">'
    b"<root><customer><mobile>1</mobile></customer></root>",
    "parameter entity": b'<?xml version="1.0"?><!DOCTYPE root [<!ENTITY % p SYSTEM "http://example.invalid/p">%p;]>'
    b"<root/>",
    "billion laughs": b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + b"".join(
        b'<!ENTITY lol%d "%s">' % (n, (b"&lol%d;" % (n - 1) if n > 1 else b"&lol;") * 10) for n in range(1, 10)
    )
    + b"]><root><customer><firstname>&lol9;</firstname></customer></root>",
    "undeclared entity": b"<root><customer><mobile>&xxe;</mobile></customer></root>",
}


@pytest.mark.parametrize("attack", list(XML_ATTACKS))
async def test_xml_with_a_dtd_or_entities_is_refused_400(client, org, attack):
    response = await add_raw(client, org, XML_ATTACKS[attack], headers=XML)
    assert answer(response)["code"] == Code.INVALID_INPUT
    assert b"root:" not in response.content  # nothing of /etc/passwd


# Query strings.

ODD_GET_QUERIES = [
    "mobile=919800000001&mobile=919800000002",
    "mobile=1&email=a@b.co",
    "mobile",
    "mobile=",
    "mobile=,,,",
    "=&&=&",
    "%ff%fe=%ff",
    "mobile=%ff%fe",
    "mobile=%00",
    "email=%25",
    "id=-1",
    "id=1e5",
    "id=0x10",
    "id=" + "9" * 40,
    "id=1,,2,%20,3",
    "external_id=" + "x" * 5000,
    "mobile=" + ",".join(["919800000001"] * 200),
    "format=",
    "format=XML&mobile=1",
    "format=json&format=xml&mobile=1",
    "format=yaml&mobile=1",
    "user_id=maybe&mobile=1",
    "user_id=true&user_id=false&mobile=1",
    "mobile[]=1",
    "mobile=1;email=2",
    "mobile=%2B91%2098%20",
]


@pytest.mark.parametrize("query", ODD_GET_QUERIES)
async def test_odd_query_strings_on_get_are_answered_in_the_envelope(client, org, query):
    response = await client.get(f"/v1.1/customer/get?{query}", headers=org.basic())
    assert answer(response)["code"] in (Code.INVALID_INPUT, Code.SUCCESS, Code.PARTIAL_SUCCESS, Code.ALL_FAILED)


ODD_ADD_QUERIES = [
    "format=", "format=yaml", "format=xml&format=json", "mlp_single_enroll=maybe", "mlp_single_enroll=",
    "mlp_single_enroll=true&mlp_single_enroll=false", "user_id=2", "%ff=%fe", "=", "&&&", "x=" + "y" * 5000,
]


@pytest.mark.parametrize("query", ODD_ADD_QUERIES)
async def test_odd_query_strings_on_add_are_answered_in_the_envelope(client, org, query):
    body = orjson.dumps({"root": {"customer": [{"mobile": new_mobile()}]}})
    response = await client.post(f"/v1.1/customer/add?{query}", content=body, headers={**JSON, **org.basic()})
    assert answer(response)["code"] in (Code.INVALID_INPUT, Code.SUCCESS)


@pytest.mark.parametrize("entity_id", ["", "-1", "1e5", "9" * 40, "%00", "1,2", "abc"])
async def test_odd_audit_queries_are_answered_in_the_gateway_envelope(client, org, entity_id):
    admin = org.basic(org.till_named("till.admin." + str(org.id)))
    response = await client.get(f"/api_gateway/v2/audits?entityType=CUSTOMER&entityId={entity_id}", headers=admin)
    document = answer(response)
    assert response.status_code == Code.INVALID_INPUT and document["errors"][0]["code"] == Code.INVALID_INPUT


async def test_an_id_of_digits_int_cannot_read_finds_nobody(client, org):
    response = await get(client, org, id="\u00b2")
    answer(response)
    assert item_code(response) == str(int(Code.CUSTOMER_NOT_FOUND))


async def test_an_audit_entity_id_of_digits_int_cannot_read_is_400(client, org):
    admin = org.basic(org.till_named("till.admin." + str(org.id)))
    response = await client.get("/api_gateway/v2/audits", params={"entityId": "\u00b2"}, headers=admin)
    answer(response)
    assert response.status_code == Code.INVALID_INPUT


async def test_a_caller_that_hangs_up_mid_body_is_logged_499_and_nothing_is_written(app, org):
    mobile = new_mobile()
    headers = [(name.lower().encode(), value.encode()) for name, value in org.basic().items()]
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": "/v1.1/customer/add", "raw_path": b"/v1.1/customer/add", "query_string": b"", "root_path": "",
        "headers": [(b"content-type", b"application/json"), *headers], "client": ("127.0.0.1", 1),
        "server": ("patron.test", 80), "state": {},
    }
    arriving = iter([
        {"type": "http.request", "body": b'{"root":{"customer":{"mobile":"' + mobile.encode(), "more_body": True},
        {"type": "http.disconnect"},
    ])
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return next(arriving)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)  # handled: no exception reaches the server
    assert sent[0]["status"] == Code.CLIENT_CLOSED_REQUEST
    assert item(await org.get(mobile=mobile))["item_status"]["code"] != str(int(Code.ITEM_OK))
