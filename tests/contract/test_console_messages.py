"""The console says what happened and in people's words (issue 30, items 2 and 7), through HTTP on
every backend: green only when all was done, amber naming a value not saved (field, value, rule),
red for a refusal; fields by their org-file label, mobiles grouped, tills by name, "never"."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from sqlalchemy import update

from support.api import Org, item, new_mobile
from support.orgs import org_document
from test_console import a_customer
from test_identity_change import apply_document
from patron.console.labels import mobile as grouped
from patron.store.schema import customers


def flash(page: str) -> tuple[str, str]:
    """The page's result message: its class and its text."""
    found = re.search(r'<div class="(flash[^"]*)" role="(?:status|alert)">(.*?)</div>', page, re.S)
    assert found, page[:3000]
    return found.group(1), html.unescape(found.group(2))


@pytest.fixture
async def org(app: Any, http: Any) -> Org:
    """retail.toml's org with a labelled pincode that must be six digits."""
    document = org_document("retail")
    document["custom_fields"].append(
        {"name": "pincode", "label": "PIN code", "type": "string", "max_length": 6, "regex": "^[0-9]{6}$"}
    )
    return await apply_document(app, http, document)


async def a_member(org: Org) -> int:
    return await a_customer(org, custom_fields={"field": [{"name": "pincode", "value": "560001"}]})


def custom_fields(found: Any) -> dict[str, str]:
    return {f["name"]: f["value"] for f in item(found)["custom_fields"]["field"]}


async def test_an_edit_that_saves_every_value_is_green_and_names_what_was_saved(browser, org):  # noqa: F811
    customer = await a_member(org)
    await browser.as_user(org, "ravi")
    page = f"/console/customers/{customer}"
    edited = await browser.post(
        f"{page}/profile", {"firstname": "Ashwini", "custom.pincode": "560002", "reason": "Customer called in"}, page
    )
    assert edited.status_code == 303, edited.text
    kind, text = flash((await browser.http.get(edited.headers["location"])).text)
    assert kind == "flash"
    assert text == "User Successfully Updated. Saved: First name, PIN code."


async def test_a_value_not_saved_is_amber_naming_its_field_value_and_rule_and_the_form_shows_it_marked(
    browser, org  # noqa: F811
):
    customer = await a_member(org)
    await browser.as_user(org, "ravi")
    page = f"/console/customers/{customer}"
    edited = await browser.post(
        f"{page}/profile", {"firstname": "Ashwini", "custom.pincode": "56001x", "reason": "Customer called in"}, page
    )
    assert edited.status_code == 200, edited.text
    kind, text = flash(edited.text)
    assert kind == "flash warn"
    assert "Provided Custom Field is invalid" in text and "User Successfully Updated.," not in text
    assert text.startswith("User Successfully Updated. Saved: First name. ")
    why = (
        "PIN code was not saved: “56001x” is not text of at most 6 characters matching ^[0-9]{6}$ "
        "(warning 1017: Provided Custom Field is invalid); it keeps “560001”."
    )
    assert why in text
    # The form again, the value typed marked and explained beside it, the reason kept.
    marked = re.search(r'<input id="(f-\d+)" name="custom.pincode"[^>]*>', edited.text).group(0)
    assert 'value="56001x"' in marked and 'class="not-saved"' in marked and 'aria-invalid="true"' in marked
    field_id = re.search(r'id="(f-\d+)"', marked).group(1)
    assert f'<p class="warning" id="{field_id}-warning">{html.escape(why, quote=False)}</p>' in edited.text
    assert 'value="Customer called in"' in edited.text
    found = await org.get(id=customer, format="json")
    assert item(found)["firstname"] == "Ashwini" and custom_fields(found)["pincode"] == "560001"


async def test_a_name_not_saved_says_the_rule_of_names(browser, org):  # noqa: F811
    customer = await a_member(org)
    await browser.as_user(org, "ravi")
    page = f"/console/customers/{customer}"
    edited = await browser.post(f"{page}/profile", {"lastname": "Rao!", "reason": "Typo"}, page)
    kind, text = flash(edited.text)
    assert kind == "flash warn"
    assert text.startswith("Nothing was saved. Last name was not saved: “Rao!” is not letters of any script")
    assert "(warning 1024: Invalid value for Last name, ignoring it); it keeps “Rao”." in text


async def test_a_reviewer_approving_their_own_request_is_refused_in_red(browser, org):  # noqa: F811
    customer = await a_member(org)
    await browser.as_user(org, "priya")
    page = f"/console/customers/{customer}"
    asked = await browser.post(
        f"{page}/identity", {"identifier": "mobile", "new_value": new_mobile(), "reason": "Lost phone"}, page
    )
    assert asked.status_code == 303
    shown = (await browser.http.get(page)).text
    assert flash(shown) == ("flash", "Customer Identity change request added successfully")
    request_id = re.search(r"/console/identity-requests/(\d+)/decision", shown).group(1)
    approved = await browser.post(
        f"/console/identity-requests/{request_id}/decision", {"decision": "approve", "reason": "ok", "back": page}, page
    )
    after = (await browser.http.get(approved.headers["location"])).text
    kind, text = flash(after)
    assert kind == "flash refused" and 'role="alert"' in after
    assert text.startswith(f"Request {request_id} was not decided: ")


async def test_an_approval_turned_into_a_rejection_is_red(browser, other_browser, org):  # noqa: F811
    customer = await a_member(org)
    await other_browser.as_user(org, "ravi")
    page = f"/console/customers/{customer}"
    await other_browser.post(
        f"{page}/identity", {"identifier": "mobile", "new_value": new_mobile(), "reason": "Lost phone"}, page
    )
    async with org.engine.begin() as conn:  # the mobile changed around Patron meanwhile
        await conn.execute(
            update(customers).where(customers.c.org_id == org.id, customers.c.id == customer).values(mobile=new_mobile())
        )
    await browser.as_user(org, "priya")
    shown = (await browser.http.get(page)).text
    request_id = re.search(r"/console/identity-requests/(\d+)/decision", shown).group(1)
    approved = await browser.post(
        f"/console/identity-requests/{request_id}/decision", {"decision": "approve", "reason": "ok", "back": page}, page
    )
    kind, text = flash((await browser.http.get(approved.headers["location"])).text)
    assert kind == "flash refused"
    assert text.startswith(f"Request {request_id} could not be approved and is rejected: Mobile changed since")


async def test_a_rejection_asked_for_is_green(browser, other_browser, org):  # noqa: F811
    customer = await a_member(org)
    await other_browser.as_user(org, "ravi")
    page = f"/console/customers/{customer}"
    await other_browser.post(
        f"{page}/identity", {"identifier": "mobile", "new_value": new_mobile(), "reason": "Lost phone"}, page
    )
    await browser.as_user(org, "priya")
    request_id = re.search(r"/console/identity-requests/(\d+)/decision", (await browser.http.get(page)).text).group(1)
    rejected = await browser.post(
        f"/console/identity-requests/{request_id}/decision", {"decision": "reject", "reason": "No ID", "back": page},
        page,
    )
    assert flash((await browser.http.get(rejected.headers["location"])).text) == (
        "flash", f"Request {request_id} rejected: No ID"
    )


async def test_the_customer_page_speaks_labels_grouped_mobiles_till_names_and_never(browser, org):  # noqa: F811
    mobile = new_mobile()
    response = await org.add(
        {"mobile": mobile, "firstname": "Asha", "custom_fields": {"field": [
            {"name": "pincode", "value": "560001"}, {"name": "City_name", "value": "Pune"},
            {"name": "pwgConsumption", "value": "2.5"},
        ]}},
        user_id="true",
    )
    customer = item(response)["user_id"]
    await browser.as_user(org, "priya")
    page = (await browser.http.get(f"/console/customers/{customer}")).text
    assert "<dt>PIN code</dt>" in page and "<dt>City name</dt>" in page and "<dt>Pwg consumption</dt>" in page
    assert '<label for="f-1">City name</label>' in page and ">pincode<" not in page and "City_name<" not in page
    assert f"<dd>{grouped(mobile)}</dd>" in page and grouped(mobile).startswith("+91 ") and mobile not in page
    till = org.till()
    assert f"at Till One ({till}), Store One</dd>" in page
    assert f"Till One ({till}), Store One" in page.split("Audit timeline")[1]
    # The Base slab has no validity: it never expires (the API family's registration + 100 years).
    assert "<td>never</td>" in page and "<td>21" not in page
    # The audit timeline names the changed fields and the custom fields by label.
    assert "<td>Custom fields</td>" in page and "<td>First name</td>" in page
    assert "PIN code: 560001" in page


async def test_the_review_queue_shows_mobiles_grouped_and_tills_by_name(browser, org):  # noqa: F811
    old, new = new_mobile(), new_mobile()
    await org.add({"mobile": old})
    body = {"root": {"customer": {"identifier": "mobile", "old_value": old, "new_value": new}}}
    asked = await org.http.post(
        "/v1.1/customer/update_identity", json=body, headers=org.basic(org.till_named(f"till.two.{org.id}"))
    )
    assert asked.status_code == 200, asked.text
    await browser.as_user(org, "priya")
    queue = (await browser.http.get("/console/identity-requests")).text
    assert f"<dd>{grouped(old)}</dd>" in queue and f"<strong>{grouped(new)}</strong>" in queue
    assert f"by Till Two (till.two.{org.id}), Store One" in queue

