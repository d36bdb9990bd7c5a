"""Every XML answer says what its JSON twin says, element for element (issue 30, item 1): a list is
its repeated elements, so an empty list inside a wrapper is an empty wrapper (`<warnings/>`, no
phantom `<warning/>`), while an empty list that is a field of its own is one empty element
(`<commChannels/>`). Held on add, get, update, update_identity and search, on every backend.

The audits (`/api_gateway/v2/audits`) are gateway documents, answered in JSON only: they have no
XML twin to hold."""

from __future__ import annotations

from typing import Any
from xml.etree.ElementTree import Element, fromstring

import httpx
import orjson
import pytest

from support.api import Org, item, new_mobile
from patron.api.xml import render
from patron.codes import Code

# Values that differ between two answers to the same request: the moment each was written.
_MOMENTS = {"updated_on", "requested_on", "decided_on"}


def assert_mirrors(element: Element, value: Any, where: str = "") -> None:
    """`element` is the XML form of the JSON `value`, read back as an XML client reads it."""
    where = where or element.tag
    if isinstance(value, dict):
        wrapper = len(value) == 1
        expected_tags: list[str] = []
        for key, child in value.items():
            found = element.findall(key)
            if isinstance(child, list):
                if not child:
                    # A wrapper's only child that is an empty list: nothing to count. A field of its
                    # own that is an empty list: there, and empty.
                    assert len(found) == (0 if wrapper else 1), f"{where}/{key}: {len(found)} elements for []"
                    if found:
                        assert len(found[0]) == 0 and not (found[0].text or "").strip(), f"{where}/{key}"
                        expected_tags.append(key)
                    continue
                assert len(found) == len(child), f"{where}/{key}: {len(found)} elements for {len(child)} items"
                for index, (one, part) in enumerate(zip(found, child, strict=True)):
                    assert_mirrors(one, part, f"{where}/{key}[{index}]")
                expected_tags += [key] * len(child)
            else:
                assert len(found) == 1, f"{where}/{key}: {len(found)} elements for one value"
                assert_mirrors(found[0], child, f"{where}/{key}")
                expected_tags.append(key)
        assert sorted(child.tag for child in element) == sorted(expected_tags), where
    elif value is None:
        assert len(element) == 0 and not element.text, where
    elif isinstance(value, bool):
        assert element.text == ("true" if value else "false"), where
    elif element.tag in _MOMENTS:
        assert element.text, where
    else:
        assert len(element) == 0 and (element.text or "") == str(value), (where, element.text, value)


def assert_same_answer(as_json: httpx.Response, as_xml: httpx.Response) -> None:
    assert as_json.status_code == as_xml.status_code, (as_json.text, as_xml.text)
    assert as_xml.headers["content-type"].startswith("application/xml"), as_xml.headers
    document = orjson.loads(as_json.content)
    root = fromstring(as_xml.content)
    assert root.tag == "response"
    assert_mirrors(root, document["response"])


def warnings_counted(as_xml: httpx.Response, path: str) -> list[int]:
    """The warnings an XML client counts on each item: its `warning` elements."""
    return [len(one.findall("item_status/warnings/warning")) for one in fromstring(as_xml.content).findall(path)]


# ------------------------------------------------------------ the rendering rule, in isolation


def test_an_empty_list_inside_a_wrapper_is_an_empty_wrapper():
    written = render({"response": {"warnings": {"warning": []}, "side_effects": {"effect": []}, "code": 1000}})
    root = fromstring(written)
    assert root.find("warnings") is not None and len(root.find("warnings")) == 0
    assert root.findall("warnings/warning") == [] and root.findall("side_effects/effect") == []


def test_an_empty_list_that_is_a_field_of_its_own_is_one_empty_element():
    root = fromstring(render({"customer": {"mobile": "919800000000", "commChannels": []}}))
    (channels,) = root.findall("commChannels")
    assert len(channels) == 0 and not channels.text


def test_a_list_is_its_repeated_elements():
    root = fromstring(render({"response": {"warnings": {"warning": [1017, 1024]}}}))
    assert [one.text for one in root.findall("warnings/warning")] == ["1017", "1024"]


# ------------------------------------------------------------ every answer, JSON beside XML


async def post(org: Org, path: str, body: dict[str, Any], *, xml: bool) -> httpx.Response:
    """A JSON request, answered in XML where its Accept asks for it."""
    headers = {"Content-Type": "application/json", **org.basic(), **({"Accept": "application/xml"} if xml else {})}
    return await org.http.post(path, content=orjson.dumps({"root": body}), headers=headers)


async def post_both(org: Org, path: str, body: dict[str, Any]) -> tuple[httpx.Response, httpx.Response]:
    """The same request answered in JSON and then in XML."""
    return await post(org, path, body, xml=False), await post(org, path, body, xml=True)


async def get_both(org: Org, path: str, **params: Any) -> tuple[httpx.Response, httpx.Response]:
    as_json = await org.http.get(path, params=params, headers=org.basic())
    as_xml = await org.http.get(path, params={**params, "format": "xml"}, headers=org.basic())
    return as_json, as_xml


async def registered(org: Org, **fields: Any) -> dict[str, Any]:
    fields.setdefault("mobile", new_mobile())
    added = item(await org.add(fields))
    assert added["item_status"]["success"] == "true", added
    return added


async def test_add_answers_alike_and_a_success_without_warnings_counts_none(org):
    known, other = await registered(org), await registered(org)
    resent = {"customer": [{"mobile": known["mobile"]}, {"mobile": other["mobile"], "email": "not an email"}]}
    as_json, as_xml = await post_both(org, "/v1.1/customer/add", resent)
    assert_same_answer(as_json, as_xml)
    assert warnings_counted(as_xml, "customers/customer") == [0, 1]
    assert [w.text for w in fromstring(as_xml.content).findall("customers/customer/item_status/warnings/warning")] == [
        str(int(Code.INVALID_EMAIL))
    ]


async def test_a_new_customer_answers_alike_side_effects_and_all(org):
    first, second = new_mobile(), new_mobile()
    as_json = await post(org, "/v1.1/customer/add", {"customer": {"mobile": first}}, xml=False)
    as_xml = await post(org, "/v1.1/customer/add", {"customer": {"mobile": second}}, xml=True)
    twin = orjson.loads(as_json.content)
    registered_as = item(as_json)
    assert registered_as["side_effects"]["effect"], registered_as
    user_id = str(registered_as["user_id"])
    other_id = fromstring(as_xml.content).findtext("customers/customer/user_id")
    # The second customer's answer is the first's, but for who it is.
    renamed = orjson.loads(orjson.dumps(twin).replace(first.encode(), second.encode()).replace(
        f'"{user_id}"'.encode(), f'"{other_id}"'.encode()).replace(f":{user_id},".encode(), f":{other_id},".encode()))
    assert_mirrors(fromstring(as_xml.content), renamed["response"])


async def test_get_answers_alike_with_empty_wrappers_and_empty_fields(org):
    customer = await registered(org)
    as_json, as_xml = await get_both(org, "/v1.1/customer/get", mobile=customer["mobile"])
    assert_same_answer(as_json, as_xml)
    got = item(as_json)
    assert got["commChannels"] == [] and got["item_status"]["warnings"]["warning"] == []
    answer = fromstring(as_xml.content)
    assert len(answer.findall("customers/customer/commChannels")) == 1
    assert warnings_counted(as_xml, "customers/customer") == [0]


async def test_update_answers_alike(org):
    customer = await registered(org)
    body = {"customer": {"mobile": customer["mobile"], "firstname": "Asha"}}
    as_json, as_xml = await post_both(org, "/v1.1/customer/update", body)
    assert_same_answer(as_json, as_xml)
    assert warnings_counted(as_xml, "customers/customer") == [0]


async def test_update_identity_answers_alike(org):
    customer = await registered(org)
    body = {"customer": [
        {"identifier": "mobile", "old_value": customer["mobile"], "new_value": customer["mobile"]},
        {"identifier": "mobile", "old_value": new_mobile(), "new_value": new_mobile()},
    ]}
    as_json, as_xml = await post_both(org, "/v1.1/customer/update_identity", body)
    assert_same_answer(as_json, as_xml)


async def test_search_answers_alike_found_or_not(org):
    customer = await registered(org, firstname="Xmlmirror")
    for q in ("firstname:EQUALS:Xmlmirror", f"mobile:EQUALS:{new_mobile()}"):
        as_json, as_xml = await get_both(org, "/v1.1/customer/search", q=q)
        assert_same_answer(as_json, as_xml)
    found = orjson.loads((await get_both(org, "/v1.1/customer/search", q="firstname:EQUALS:Xmlmirror"))[0].content)
    assert [one["user_id"] for one in found["response"]["customer"]["results"]["item"]] == [customer["user_id"]]


@pytest.mark.parametrize("path", ["/v1.1/customer/get", "/v1.1/customer/search"])
async def test_a_refusal_answers_alike(org, path):
    as_json, as_xml = await get_both(org, path, q="nonsense", mobile="1")
    assert as_json.status_code >= 400
    assert_same_answer(as_json, as_xml)
