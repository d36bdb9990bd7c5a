"""A NUL character (U+0000) in any free text, refused alike on every backend (issue 29): the API's
add, update and update_identity fail the item with 1098 naming the field, an import reports the
row with it, and the console shows a refusal naming the field; nothing of it is written.

PostgreSQL cannot store NUL in text or jsonb, SQLite can: without one rule before the store, the
same input was a database fault (1099) on one and stored on the other. NUL is the only such
character; the other control characters are stored as sent everywhere (XML answers replace them).
"""

from __future__ import annotations

import csv
import re
from typing import Any

import orjson
import pytest

from conftest import item, new_mobile
from patron.codes import Code, item_error_message
from test_console import a_customer
from test_console_forms import browser  # noqa: F401 - the fixture
from test_customer_update import update
from test_identity_change import change, registered
from test_import import _applied
from test_openapi import assert_documented_answer
from test_registration import audit_log, fetch, missing

NUL = "\u0000"


def assert_refused_for_nul(answered: dict[str, Any], field: str) -> None:
    status = answered["item_status"]
    assert (status["success"], status["code"]) == ("false", str(int(Code.TEXT_WITH_NUL)))
    assert status["message"] == item_error_message(Code.TEXT_WITH_NUL, field)
    assert status["message"] == f"Unable to register. {field} holds a NUL character (U+0000), which is not allowed."


FIELDS_WITH_NUL = [
    ("firstname", {"firstname": f"Asha{NUL}"}),
    ("lastname", {"lastname": f"{NUL}"}),
    ("custom_fields.City_name", {"custom_fields": {"field": [{"name": "City_name", "value": f"Pune{NUL}"}]}}),
    ("custom_fields", {"custom_fields": {"field": [{"name": f"City{NUL}name", "value": "Pune"}]}}),
    ("extended_fields.city", {"extended_fields": {"field": [{"name": "city", "value": f"Pune{NUL}"}]}}),
    ("email", {"email": f"a{NUL}@example.com"}),
    ("external_id", {"external_id": f"ext{NUL}"}),
    ("accountId", {"accountId": f"acc{NUL}"}),
    ("type", {"type": f"loyalty{NUL}"}),
    ("source", {"source": f"instore{NUL}"}),
    ("fraud_status", {"fraud_status": {"status": NUL}}),
    ("updated_on", {"updated_on": f"2024-01-01{NUL}"}),
    ("registered_till", {"registered_till": f"till{NUL}"}),
    ("referral_code", {"referral_code": f"R{NUL}"}),
    ("commChannels", {"commChannels": [{"type": "email", "value": f"a{NUL}@b.co"}]}),
    ("commChannels", {"commChannels": [{"type": "email", "value": "a@b.co", "meta": {"note": f"a{NUL}b"}}]}),
    ("subscriptions", {"subscriptions": {"subscription": [{"channel": "sms", "priority": "trans", "scope": NUL}]}}),
]


# --- customer/add -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("field", "sent"), FIELDS_WITH_NUL, ids=[str(sent) for _, sent in FIELDS_WITH_NUL])
async def test_nul_in_any_field_of_an_added_customer_fails_the_item_naming_the_field(org, field, sent):
    mobile = new_mobile()
    response = await org.add({"mobile": mobile, **sent})
    assert response.status_code == Code.ALL_FAILED, response.text
    assert_documented_answer(response, "/v1.1/customer/add", "post")
    assert_refused_for_nul(item(response), field)
    assert await missing(org, mobile=mobile)


async def test_nul_in_the_primary_identifier_fails_the_item_naming_it(org):
    response = await org.add({"mobile": new_mobile() + NUL})
    assert_refused_for_nul(item(response), "mobile")
    # The answer echoes no NUL: the identifier is null, as any value that is not text.
    assert item(response)["mobile"] is None


async def test_only_the_item_holding_nul_fails_in_a_batch(org):
    kept, refused = new_mobile(), new_mobile()
    response = await org.add({"mobile": kept, "firstname": "Asha"}, {"mobile": refused, "firstname": f"Ravi{NUL}"})
    assert response.status_code == Code.PARTIAL_SUCCESS
    assert item(response, 0)["item_status"]["code"] == "1000"
    assert_refused_for_nul(item(response, 1), "firstname")
    assert (await fetch(org, mobile=kept))["firstname"] == "Asha"
    assert await missing(org, mobile=refused)


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
    ("field", "sent"),
    [FIELDS_WITH_NUL[0], FIELDS_WITH_NUL[2], FIELDS_WITH_NUL[4]],
    ids=["firstname", "custom_field", "extended_field"],
)
async def test_nul_in_an_update_fails_it_naming_the_field_and_changes_nothing(org, field, sent):
    customer = await registered(org, firstname="Asha")
    response = await update(org, {"mobile": customer["mobile"], "lastname": "Rao", **sent})
    assert response.status_code == Code.ALL_FAILED, response.text
    assert_documented_answer(response, "/v1.1/customer/update", "post")
    assert_refused_for_nul(item(response), field)
    after = await fetch(org, mobile=customer["mobile"])
    assert (after["firstname"], after["lastname"]) == ("Asha", customer["lastname"])
    assert len(await audit_log(org, customer["user_id"])) == 1  # its registration alone


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
        ({"custom.City_name": f"Pune{NUL}", "reason": "asked by phone"}, "City_name holds a NUL"),
        ({"extended.age_group": f"{NUL}", "reason": "asked by phone"}, "age_group (extended) holds a NUL"),
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
    assert f"Request {request_id}: the reason holds a NUL character (U+0000), which is not allowed" in shown.text
    assert f"/console/identity-requests/{request_id}/decision" in shown.text  # still waiting
    assert len(await audit_log(org, customer["user_id"])) == 2  # the registration and the request


# --- import ---------------------------------------------------------------------------------------------------------


def test_an_imported_row_holding_nul_is_reported_with_1098_and_the_others_are_written(patron, tmp_path):
    document = _applied(patron, tmp_path, "retail")
    mobiles = [new_mobile() for _ in range(3)]
    rows = [{"mobile": m, "firstname": "Asha"} for m in mobiles]
    rows[1]["custom_fields"] = {"field": [{"name": "City_name", "value": f"Pune{NUL}"}]}
    path = tmp_path / "customers.jsonl"
    path.write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in rows))
    result = patron("customer", "import", str(path), "--org", str(document["org"]["id"]))
    assert result.exit_code == 0, result.output
    assert "2 created, 0 updated, 1 rejected" in result.output
    with open(tmp_path / "customers.jsonl.rejected.csv", newline="") as report:
        (header, rejected) = list(csv.reader(report))
    assert header[:3] == ["row", "code", "message"]
    assert rejected[:3] == ["2", "1098", item_error_message(Code.TEXT_WITH_NUL, "custom_fields.City_name")]
