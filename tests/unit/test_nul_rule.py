"""The NUL rule (issue 29) as pure functions: a field of an item holding U+0000 is an invalid value,
skipped with the spec's warning for that field; an identity change or a reviewer's reason holding
one is refused, naming the field; nothing else is."""

from __future__ import annotations

import re
import tomllib
from datetime import datetime
from pathlib import Path

import pytest

from patron.codes import Code
from patron.customers import fields
from patron.customers.identity_requests import NUL_REASON, decision_reason, read_change
from patron.customers.model import ItemRejected
from patron.customers.reading import read_item
from patron.orgs.file import parse_org_document
from patron.orgs.model import OrgSettings

ORG = OrgSettings.from_file(
    parse_org_document(tomllib.loads((Path(__file__).parent.parent / "orgs" / "retail.toml").read_text()), "retail.toml")
)
NOW = datetime(2026, 1, 1)


def test_nul_is_found_in_any_key_or_text_however_deep():
    assert fields.holds_nul({"a": [1, {"b": ["x", "y\x00"]}]})
    assert fields.holds_nul({"a\x00": 1})
    assert not fields.holds_nul({"a": ["\x01\t\n\x1f\x7f\ufffe", 1, None, True, 2.5]})
    deep: list = ["\x00"]
    for _ in range(100_000):  # far beyond Python's recursion limit
        deep = [deep]
    assert fields.holds_nul(deep)


@pytest.mark.parametrize(
    ("sent", "warned"),
    [
        ({"firstname": "A\x00"}, Code.INVALID_FIELD_VALUE),
        ({"custom_fields": {"field": [{"name": " City_name ", "value": "\x00"}]}}, Code.INVALID_CUSTOM_FIELD),
        ({"extended_fields": {"field": {"name": "city", "value": "\x00"}}}, Code.INVALID_EXTENDED_FIELD),
        ({"commChannels": {"commChannel": [{"type": "email", "value": "a@b.co", "meta": {"k": ["\x00"]}}]}},
         Code.INVALID_FIELD_VALUE),
    ],
)
def test_a_field_holding_nul_is_an_invalid_value_skipped_with_its_warning(sent, warned):
    item, warnings = read_item({"mobile": "919845012345", **sent}, ORG, None, NOW)
    assert item.mobile == "919845012345"
    assert warned in warnings.codes
    assert not fields.holds_nul([item.firstname, item.custom_fields, item.extended_fields, item.comm_channels])


def test_nul_in_a_key_the_item_does_not_read_is_no_reason_to_reject_it():
    item, _ = read_item({"mobile": "919845012345", "not\x00a field": "\x00"}, ORG, None, NOW)
    assert item.mobile == "919845012345"


def test_an_identity_change_holding_nul_is_rejected_naming_the_field_as_sent():
    with pytest.raises(ItemRejected) as rejected:
        read_change({"identifier": "mobile", "old_identifier": "9198\x0045012345", "new_value": "919845012346"}, ORG)
    assert (rejected.value.code, rejected.value.field) == (Code.TEXT_WITH_NUL, "old_identifier")


def test_a_reviewers_reason_holding_nul_is_refused_as_such_not_as_missing():
    with pytest.raises(ValueError, match=re.escape(NUL_REASON)):
        decision_reason("checked\x00")
    assert decision_reason(" checked\twith the customer ") == "checked\twith the customer"
