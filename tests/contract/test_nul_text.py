"""A NUL character (U+0000) in free text, refused alike on every backend (issue 29). PostgreSQL
cannot store NUL in text or jsonb, SQLite can: without a rule before the store, the same input
was a database fault (1099) on one and stored on the other.

The API's add and update read NUL as they read any invalid value, by the spec's rule for each
field (customer-add.md): the primary identifier fails the item, any other field is skipped with
its warning (tests/contract/test_hostile.py holds each field the spec names); customer/update_identity,
whose items are identifiers to change, fails the item with 1098 naming the field; an import row
is read as add reads it; the console refuses it in red, naming the field. NUL is the only such
character: the other control characters are stored as sent everywhere (XML answers replace them).
"""

from __future__ import annotations

import re
from typing import Any

import orjson
import pytest

from support.api import item, new_mobile
from patron.codes import Code, item_error_message
from test_console import a_customer
from test_customer_update import update
from test_identity_change import change, registered
from test_import import _applied
from test_openapi import assert_documented_answer
from test_registration import audit_log, fetch

NUL = "\u0000"


def assert_refused_for_nul(answered: dict[str, Any], field: str) -> None:
    status = answered["item_status"]
    assert (status["success"], status["code"]) == ("false", str(int(Code.TEXT_WITH_NUL)))
    assert status["message"] == item_error_message(Code.TEXT_WITH_NUL, field)
    assert status["message"] == f"Unable to register. {field} holds a NUL character (U+0000), which is not allowed."


# Fields beside those tests/contract/test_hostile.py names, and the warning each is skipped with.
FIELDS_WITH_NUL = [
    ({"lastname": f"{NUL}"}, [Code.INVALID_FIELD_VALUE]),
    ({"referral_code": f"R{NUL}"}, []),
    ({"commChannels": [{"type": "email", "value": "a@b.co", "meta": {"note": f"a{NUL}b"}}]}, [Code.INVALID_FIELD_VALUE]),
    ({"subscriptions": {"subscription": [{"channel": "sms", "priority": "trans", "scope": NUL}]}}, [Code.INVALID_FIELD_VALUE]),
]


# --- customer/add -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("sent", "warned"), FIELDS_WITH_NUL, ids=[next(iter(sent)) for sent, _ in FIELDS_WITH_NUL])
async def test_nul_in_a_field_of_an_added_customer_skips_it_with_its_warning_and_stores_no_nul(org, sent, warned):
    mobile = new_mobile()
    response = await org.add({"mobile": mobile, **sent})
    assert response.status_code == Code.SUCCESS, response.text
    assert_documented_answer(response, "/v1.1/customer/add", "post")
    status = item(response)["item_status"]
    assert (status["code"], status["warnings"]["warning"]) == ("1000", [str(int(code)) for code in warned])
    assert NUL not in orjson.dumps(await fetch(org, mobile=mobile)).decode()


async def test_a_batch_is_written_whole_when_one_item_holds_nul_in_a_field(org):
    kept, other = new_mobile(), new_mobile()
    response = await org.add({"mobile": kept, "firstname": "Asha"}, {"mobile": other, "firstname": f"Ravi{NUL}"})
    assert response.status_code == Code.SUCCESS
    assert item(response, 1)["item_status"]["warnings"]["warning"] == [str(int(Code.INVALID_FIELD_VALUE))]
    assert (await fetch(org, mobile=kept))["firstname"] == "Asha"
    assert (await fetch(org, mobile=other))["firstname"] == ""


async def test_other_control_characters_are_stored_as_sent_on_every_backend(org):
    mobile = new_mobile()
    note = "line one\nline\ttwo\x01"
    response = await org.add(
        {"mobile": mobile, "custom_fields": {"field": [{"name": "City_name", "value": note}]}}
    )
    assert item(response)["item_status"]["code"] == "1000", response.text
    stored = (await fetch(org, mobile=mobile))["custom_fields"]["field"]
    assert {"name": "city_name", "value": note} in stored or {"name": "City_name", "value": note} in stored


# --- customer/update ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "warned"),
    [
        ({"firstname": f"Ravi{NUL}"}, Code.INVALID_FIELD_VALUE),
        ({"custom_fields": {"field": [{"name": "City_name", "value": f"Pune{NUL}"}]}}, Code.INVALID_CUSTOM_FIELD),
        ({"extended_fields": {"field": [{"name": "city", "value": f"Pune{NUL}"}]}}, Code.INVALID_EXTENDED_FIELD),
    ],
    ids=["firstname", "custom_field", "extended_field"],
)
async def test_nul_in_an_update_skips_that_field_with_its_warning_and_applies_the_rest(org, sent, warned):
    customer = await registered(org, firstname="Asha")
    response = await update(org, {"mobile": customer["mobile"], "lastname": "Rao", **sent})
    assert response.status_code == Code.SUCCESS, response.text
    assert_documented_answer(response, "/v1.1/customer/update", "post")
    assert item(response)["item_status"]["warnings"]["warning"] == [str(int(warned))]
    after = await fetch(org, mobile=customer["mobile"])
    assert (after["firstname"], after["lastname"]) == ("Asha", "Rao")
    assert NUL not in orjson.dumps(after).decode()


# --- customer/update_identity ----------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["identifier", "old_value", "new_value", "old_identifier", "new_identifier"])
async def test_nul_in_an_identity_change_fails_it_naming_the_field(org, field):
    customer = await registered(org)
    sent = {"identifier": "mobile", "old_value": customer["mobile"], "new_value": new_mobile()}
    if field.endswith("_identifier"):
        sent[field] = sent.pop(field.replace("_identifier", "_value"))
    sent[field] = sent[field][:3] + NUL + sent[field][3:]
    response = await change(org, sent)
    assert response.status_code == Code.ALL_FAILED, response.text
    assert_documented_answer(response, "/v1.1/customer/update_identity", "post")
    answered = item(response)
    assert_refused_for_nul(answered, field)
    assert NUL not in orjson.dumps(answered).decode()
    assert (await fetch(org, mobile=customer["mobile"]))["user_id"] == customer["user_id"]
    assert len(await audit_log(org, customer["user_id"])) == 1


# --- the console --------------------------------------------------------------------------------------------------


async def _customer_page_refusal(browser, org, form: str, data: dict[str, str]) -> tuple[int, Any]:  # noqa: F811
    customer = await a_customer(org)
    await browser.as_user(org, "priya")
    response = await browser.post(f"/console/customers/{customer}/{form}", data, token_from=f"/console/customers/{customer}")
    return customer, response


def red_errors(html: str) -> list[str]:
    return re.findall(r'<p class="error"[^>]*>([^<]*)</p>', html)


@pytest.mark.parametrize(
    ("data", "named"),
    [
        ({"firstname": "Asha", "lastname": "Rao", "reason": f"asked by{NUL} phone"}, "The reason holds a NUL"),
        ({"firstname": f"As{NUL}ha", "reason": "asked by phone"}, "First name holds a NUL"),
        ({"custom.City_name": f"Pune{NUL}", "reason": "asked by phone"}, "City name holds a NUL"),
        ({"extended.age_group": f"{NUL}", "reason": "asked by phone"}, "Age group holds a NUL"),
    ],
    ids=["reason", "firstname", "custom_field", "extended_field"],
)
async def test_nul_in_the_consoles_profile_form_is_refused_in_red_naming_the_field(browser, org, data, named):  # noqa: F811
    customer, response = await _customer_page_refusal(browser, org, "profile", data)
    assert response.status_code == 400, response.text[:300]
    assert any(error.startswith(named) and "(U+0000), which is not allowed." in error for error in red_errors(response.text))
    assert len(await audit_log(org, customer)) == 1


@pytest.mark.parametrize(
    ("data", "named"),
    [
        ({"identifier": "mobile", "new_value": new_mobile(), "reason": f"new{NUL}phone"}, "The reason holds a NUL"),
        ({"identifier": "mobile", "new_value": f"9198{NUL}", "reason": "new phone"}, "The new value holds a NUL"),
    ],
    ids=["reason", "new_value"],
)
async def test_nul_in_the_consoles_identity_change_form_is_refused_in_red_naming_the_field(browser, org, data, named):  # noqa: F811
    customer, response = await _customer_page_refusal(browser, org, "identity", data)
    assert response.status_code == 400, response.text[:300]
    assert any(error.startswith(named) for error in red_errors(response.text))
    assert len(await audit_log(org, customer)) == 1


async def test_nul_in_a_reviewers_reason_is_refused_and_the_request_stays_pending(browser, org):  # noqa: F811
    customer = await registered(org)
    asked = await change(org, {"identifier": "mobile", "old_value": customer["mobile"], "new_value": new_mobile()})
    assert item(asked)["item_status"]["code"] == str(int(Code.IDENTITY_CHANGE_REQUESTED))
    await browser.as_user(org, "priya")
    queue = await browser.http.get("/console/identity-requests")
    request_id = re.search(r"/console/identity-requests/(\d+)/decision", queue.text).group(1)
    response = await browser.post(
        f"/console/identity-requests/{request_id}/decision", {"decision": "reject", "reason": f"no{NUL}"},
        token_from="/console/identity-requests",
    )
    assert response.status_code == 303
    shown = await browser.http.get(response.headers["location"])
    assert f"Request {request_id} was not decided: the reason holds a NUL character (U+0000), which is not allowed." in shown.text
    assert f"/console/identity-requests/{request_id}/decision" in shown.text  # still waiting
    assert len(await audit_log(org, customer["user_id"])) == 2  # the registration and the request


# --- import ---------------------------------------------------------------------------------------------------------


def test_an_imported_row_holding_nul_in_a_field_is_written_without_that_field(patron, tmp_path):
    document = _applied(patron, tmp_path, "retail")
    mobiles = [new_mobile() for _ in range(3)]
    rows = [{"mobile": m, "firstname": "Asha"} for m in mobiles]
    rows[1]["custom_fields"] = {"field": [{"name": "City_name", "value": f"Pune{NUL}"}]}
    path = tmp_path / "customers.jsonl"
    path.write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in rows))
    result = patron("customer", "import", str(path), "--org", str(document["org"]["id"]))
    assert result.exit_code == 0, result.output
    assert "3 created, 0 updated, 0 rejected" in result.output
