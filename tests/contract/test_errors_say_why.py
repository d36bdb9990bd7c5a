"""Errors that say why (#30 item 6), through the API: the answer stays the API family's, and the
request's log line says which rule refused or ignored a value, and what would pass it."""

from __future__ import annotations

from support.api import item, new_mobile
from test_console import a_customer
from test_observability import line_of, lines  # noqa: F401 - the fixture that captures the lines

from patron.codes import ITEM_ERRORS, Code


async def test_a_national_mobile_gets_the_familys_answer_and_its_line_names_the_missing_country_code(org, lines):
    response = await org.add({"mobile": "9876543210"})
    status = item(response)["item_status"]
    assert (status["code"], status["message"]) == (str(int(Code.INVALID_MOBILE)), ITEM_ERRORS[Code.INVALID_MOBILE])
    assert "country code" not in response.text
    (hint,) = line_of(lines, response)["hints"]
    assert "without a country code" in hint and "CONF_CLIENT_DEFAULT_COUNTRYCODE_PASSED = true" in hint


async def test_an_unknown_key_and_a_skipped_custom_field_are_named_in_the_line_not_the_answer(org, lines):
    response = await org.add({
        "mobile": new_mobile(), "first_name": "Asha",
        "custom_fields": {"field": [{"name": "City_nmae", "value": "Pune"}]},
    })
    assert item(response)["item_status"]["warnings"]["warning"] == [str(int(Code.INVALID_CUSTOM_FIELD))]
    assert "first_name" not in response.text and "did you mean" not in response.text
    assert line_of(lines, response)["hints"] == [
        "item key 'first_name' is not read and was ignored; did you mean 'firstname'?",
        "1017: custom field 'City_nmae' is not one of the org file's [[custom_fields]]; did you mean 'City_name'?",
    ]


async def test_a_request_with_nothing_to_explain_has_no_hints_in_its_line(org, lines):
    response = await org.add({"mobile": new_mobile(), "firstname": "Asha"})
    assert "hints" not in line_of(lines, response)


async def test_the_console_says_why_a_national_mobile_is_refused_as_a_new_value(browser, org):
    customer = await a_customer(org)
    await browser.as_user(org, "ravi")
    page = f"/console/customers/{customer}"
    refused = await browser.post(f"{page}/identity", {"identifier": "mobile", "new_value": "9876543210", "reason": "r"}, page)
    assert refused.status_code == 400
    assert "without a country code" in refused.text and "CONF_CLIENT_DEFAULT_COUNTRYCODE_PASSED = true" in refused.text
