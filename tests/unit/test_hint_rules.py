"""Errors that say why (#30 item 6): a value refused or ignored is noted for the log line (customers.hints,
customers.why) with the rule that refused it; the item's answer stays the API family's."""

from __future__ import annotations

import tomllib
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from patron.codes import Code
from patron.customers import hints
from patron.customers.model import ItemRejected
from patron.customers.reading import read_item
from patron.orgs.file import parse_org_document
from patron.orgs.model import OrgSettings

ORGS = Path(__file__).resolve().parent.parent / "orgs"
NOW = datetime(2026, 12, 5, 10, 0)


def retail(**configs: Any) -> OrgSettings:
    data = tomllib.loads((ORGS / "retail.toml").read_text())
    data.setdefault("configs", {}).update(configs)
    return OrgSettings.from_file(parse_org_document(data, "tests/orgs/retail.toml"))


def read(raw: dict[str, Any], org: OrgSettings | None = None) -> tuple[Any, list[str]]:
    """The warnings (or the error code) of reading the item, and the hints noted meanwhile."""
    with hints.noting() as noted:
        try:
            _, warnings = read_item(raw, org or retail(), "till.one", NOW)
            outcome: Any = warnings.codes
        except ItemRejected as rejected:
            outcome = rejected.code
    return outcome, noted


def test_a_national_mobile_without_its_country_code_names_the_setting_that_would_supply_it():
    outcome, noted = read({"mobile": "9876543210"})
    assert outcome == Code.INVALID_MOBILE
    (hint,) = noted
    assert "without a country code" in hint and "+91" in hint and "IN" in hint
    assert "CONF_CLIENT_DEFAULT_COUNTRYCODE_PASSED = true" in hint
    assert "9876543210" not in hint  # a hint never quotes the number

    outcome, noted = read({"mobile": "9876543210"}, retail(CONF_CLIENT_DEFAULT_COUNTRYCODE_PASSED=True))
    assert (outcome, noted) == ([], [])


def test_a_mobile_of_a_country_the_org_does_not_take_names_that_country():
    outcome, noted = read({"mobile": "+1 202 555 0143", "email": "a@example.com"})  # a US number; IN, AE, GB taken
    assert outcome == Code.INVALID_MOBILE
    assert noted == ["mobile: a mobile of US, which is neither the org's base_country (IN) nor in its supported_countries (org file, [org])"]


def test_a_skipped_custom_field_names_the_field_and_the_rule_it_broke():
    outcome, noted = read({
        "mobile": "919876543210",
        "custom_fields": {"field": [{"name": "city_nmae", "value": "Pune"}, {"name": "pwgConsumption", "value": "lots"}]},
    })
    assert outcome == [Code.INVALID_CUSTOM_FIELD]
    assert noted == [
        "1017: custom field 'city_nmae' is not one of the org file's [[custom_fields]]; did you mean 'City_name'?",
        "1017: custom field 'pwgConsumption': the value is not a number of at most 250 characters",
    ]


def test_an_unknown_key_of_an_item_is_ignored_and_named_with_the_nearest_field():
    outcome, noted = read({"mobile": "919876543210", "first_name": "Asha", "colour": "blue"})
    assert outcome == []
    assert noted == [
        "item key 'first_name' is not read and was ignored; did you mean 'firstname'?",
        "item key 'colour' is not read and was ignored",
    ]


def test_hints_are_kept_only_while_someone_notes_them_and_only_a_few():
    hints.note("nobody is noting")  # the import and the console's own calls: dropped
    with hints.noting() as noted:
        for index in range(hints.MOST_HINTS + 3):
            hints.note(f"hint {index}")
        hints.note("hint 0")
    assert noted == [f"hint {index}" for index in range(hints.MOST_HINTS)]
