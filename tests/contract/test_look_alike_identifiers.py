"""Identifiers a person cannot tell apart are one identifier: they are read in Unicode's NFKC form,
and one holding an invisible or control character is invalid (docs/identity.md)."""

from __future__ import annotations

from typing import Any

import pytest

from support.api import item, new_mobile
from patron.codes import Code
from test_check import violations, write_creation_audit, write_customer
from patron import checks


def code_of(response: Any, index: int = 0) -> str:
    return item(response, index)["item_status"]["code"]


def warnings_of(response: Any, index: int = 0) -> list[str]:
    return item(response, index)["item_status"]["warnings"]["warning"]


@pytest.fixture
async def by_external_id(make_org: Any) -> Any:
    return await make_org(CONF_REGISTRATION_PRIMARY_KEY="external_id")


LOOK_ALIKES = [
    pytest.param("Caf\u00e9-{n}", "Cafe\u0301-{n}", id="composed-and-decomposed"),
    pytest.param("EXT-{n}", "\uff25\uff38\uff34\uff0d{n}", id="fullwidth"),
    pytest.param("\ufb01le-{n}", "file-{n}", id="ligature"),
]


@pytest.mark.parametrize(("first", "second"), LOOK_ALIKES)
async def test_look_alike_external_ids_name_one_customer(by_external_id, first, second):
    n = new_mobile()
    created = await by_external_id.add({"external_id": first.format(n=n), "mobile": n})
    again = await by_external_id.add({"external_id": second.format(n=n), "firstname": "Asha"})
    assert code_of(created) == code_of(again) == "1000"
    assert item(again)["user_id"] == item(created)["user_id"]
    assert item(again)["item_status"]["message"] == "Customer successfully updated"


@pytest.mark.parametrize(
    "invisible",
    ["\u200b", "\u200d", "\ufeff", "\u202e", "\u2066", "\u00ad", "\x01", "\x7f", "\u2028", "\ue000"],
    ids=["zero-width-space", "zero-width-joiner", "bom", "rtl-override", "ltr-isolate", "soft-hyphen",
         "control", "delete", "line-separator", "private-use"],
)
async def test_an_external_id_holding_an_invisible_or_control_character_is_invalid(by_external_id, invisible):
    n = new_mobile()
    as_primary = await by_external_id.add({"external_id": f"EXT{invisible}{n}", "mobile": n})
    assert code_of(as_primary) == str(int(Code.INVALID_EXTERNAL_ID))
    assert item(await by_external_id.get(mobile=n))["item_status"]["code"] == str(int(Code.CUSTOMER_NOT_FOUND))


async def test_an_invisible_character_in_a_secondary_identifier_drops_it_with_its_warning(org):
    mobile = new_mobile()
    response = await org.add({"mobile": mobile, "external_id": f"EXT\u200b{mobile}", "email": f"a\u200b{mobile}@x.com"})
    assert code_of(response) == "1000"
    assert warnings_of(response) == [str(int(Code.INVALID_EMAIL)), str(int(Code.INVALID_EXTERNAL_ID))]
    assert item(response)["external_id"] is None and item(response)["email"] is None


async def test_a_fullwidth_email_is_the_same_email(org):
    mobile = new_mobile()
    email = f"asha.{mobile}@example.com"
    fullwidth = "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in email)
    first = await org.add({"mobile": mobile, "email": email})
    # A new mobile with the email of a customer who has another: the update path on that customer.
    response = await org.add({"email": fullwidth, "mobile": new_mobile()})
    assert code_of(response) == "1000"
    assert warnings_of(response) == [str(int(Code.PRIMARY_IDENTIFIER_NOT_UPDATABLE))]
    assert item(response)["user_id"] == item(first)["user_id"]
    assert item(await org.get(email=fullwidth))["mobile"] == mobile


async def test_fullwidth_and_other_script_digits_are_the_same_mobile(org):
    mobile = new_mobile()
    await org.add({"mobile": mobile})
    fullwidth = "".join(chr(ord(c) + 0xFEE0) for c in mobile)
    arabic_indic = "".join(chr(0x0660 + int(c)) for c in mobile)
    for spelling in (fullwidth, arabic_indic):
        response = await org.add({"mobile": spelling, "firstname": "Asha"})
        assert item(response)["item_status"]["message"] == "Customer successfully updated"
        assert item(response)["mobile"] == mobile


async def test_get_finds_a_customer_by_any_spelling_of_its_external_id(by_external_id):
    n = new_mobile()
    await by_external_id.add({"external_id": f"Caf\u00e9-{n}", "mobile": n})
    found = await by_external_id.get(external_id=f"Cafe\u0301-{n}")
    assert item(found)["mobile"] == n


async def test_patron_check_reports_stored_identifiers_that_collide_after_normalisation(org):
    n = new_mobile()
    composed_id, decomposed_id, hidden_id = f"Caf\u00e9-{n}", f"Cafe\u0301-{n}", f"EXT\u200b{n}"
    composed = await org.add({"mobile": n, "external_id": composed_id})
    # Written straight into the database, as an older Patron could have stored them.
    decomposed = await write_customer(org, external_id=decomposed_id)
    hidden = await write_customer(org, external_id=hidden_id)
    for customer_id in (decomposed, hidden):
        await write_creation_audit(org, customer_id)
    found = [detail for rule, detail in await violations(org) if rule == checks.IDENTIFIER_IN_NORMAL_FORM]
    assert found == [
        f"external_id {decomposed_id!r} of customer {decomposed} is {composed_id!r} in normal form (NFKC),"
        f" which customers {item(composed)['user_id']} hold: one person may be two customers",
        f"external_id {hidden_id!r} of customer {hidden} holds an invisible or control character",
    ]
