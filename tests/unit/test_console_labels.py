"""How the console names things for people (console.labels, issue 30 item 7): field labels from the
org file or readable defaults, mobiles grouped for their country, tills by name, "never"."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from patron.console.labels import expiry, field_label, mobile, readable, till
from patron.orgs.file import load_org_file, parse_org_document
from patron.orgs.model import OrgSettings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def org() -> OrgSettings:
    return OrgSettings.from_file(load_org_file(ROOT / "examples" / "demo-org.toml"))


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("City_name", "City name"),
        ("pwgConsumption", "Pwg consumption"),
        ("comm_channels", "Communication channels"),
        ("age_group", "Age group"),
        ("preferred_store", "Preferred store"),
        ("ssnNumber", "SSN number"),
    ],
)
def test_a_field_without_a_label_is_named_by_its_name_made_readable(name, shown):
    assert readable(name) == shown


def test_a_field_is_named_by_its_org_file_label_first(org):
    assert field_label("City_name", org, "custom") == "City"
    assert field_label("city_name", org) == "City"  # names match any case, as items' do
    assert field_label("age_group", org, "extended") == "Age group"
    assert field_label("pwgConsumption", org, "custom") == "Pwg consumption"
    assert field_label("firstname", org) == "First name"
    assert field_label("comm_channels", org) == "Communication channels"


def test_a_label_is_refused_when_empty_or_over_100_characters():
    base = {"org": {"id": 1, "name": "L", "base_country": "IN", "timezone": "Asia/Kolkata"}}
    for label in ("", "x" * 101):
        with pytest.raises(Exception, match="label"):
            parse_org_document({**base, "custom_fields": [{"name": "a", "type": "string", "label": label}]})


@pytest.mark.parametrize(
    ("stored", "shown"),
    [
        ("919845012345", "+91 98450 12345"),
        ("447700900123", "+44 7700 900123"),
        ("971501234567", "+971 50 123 4567"),
        ("12345", "12345"),  # no number: as stored
    ],
)
def test_a_mobile_is_grouped_as_its_country_writes_it_internationally(stored, shown):
    assert mobile(stored) == shown


def test_a_tier_a_hundred_years_on_never_expires():
    today = date(2026, 12, 7)
    assert expiry(date(2126, 12, 7), today) == "never"
    assert expiry(date(2027, 12, 7), today) == "2027-12-07"
    assert expiry(None, today) == "—"


def test_a_till_is_shown_with_its_name_and_its_stores(org):
    named = next(t for t in org.tills.values() if t.name != t.code)
    assert till(named.code, org) == f"{named.name} ({named.code}), {named.store.name}"
    assert till("till.gone", org) == "till till.gone"
