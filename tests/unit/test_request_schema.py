"""The request schemas against the reader: the document names every field an item is read by, and
no other; what it says of a length is what the reader holds to; its samples read as they are kept."""

from __future__ import annotations

from typing import Any

import pytest

from patron.api.openapi import DOCUMENT, samples
from patron.customers.identity_requests import read_change
from patron.customers.inputs import ITEM_FIELDS
from patron.customers.reading import read_item

SCHEMAS = DOCUMENT["components"]["schemas"]
REF = "#/components/schemas/"


class Recording(dict):  # type: ignore[type-arg]
    """An item that notes each key the reader looks up, by its path (lists add nothing to a path)."""

    def __init__(self, value: dict[str, Any], seen: set[str], path: str = "") -> None:
        super().__init__(value)
        self.seen, self.path = seen, path

    def _noted(self, key: str, value: Any) -> Any:
        self.seen.add(self.path + key)
        return recording(value, self.seen, f"{self.path}{key}.")

    def get(self, key: str, default: Any = None) -> Any:
        return self._noted(key, super().get(key, default))

    def __getitem__(self, key: str) -> Any:
        return self._noted(key, super().__getitem__(key))

    def __contains__(self, key: object) -> bool:
        self.seen.add(self.path + str(key))
        return super().__contains__(key)


def recording(value: Any, seen: set[str], path: str) -> Any:
    if isinstance(value, dict):
        return Recording(value, seen, path)
    if isinstance(value, list):
        return [recording(entry, seen, path) for entry in value]
    return value


def documented(schema: dict[str, Any], path: str = "") -> set[str]:
    """Every key path the schema names, through references, lists and alternatives."""
    if "$ref" in schema:
        return documented(SCHEMAS[schema["$ref"].removeprefix(REF)], path)
    found: set[str] = set()
    for alternative in schema.get("anyOf", []) + schema.get("oneOf", []):
        found |= documented(alternative, path)
    if "items" in schema:
        found |= documented(schema["items"], path)
    for key, child in schema.get("properties", {}).items():
        found |= {path + key} | documented(child, f"{path}{key}.")
    return found


# Every field an item may send, each in the shape that has the reader look inside it.
EVERY_FIELD = {
    **samples.ASHA_ITEM,
    "registered_on": "2026-10-04 18:30:00",
    "updated_on": "2026-10-05 07:28:32",
    "type": "loyalty",
    "accountId": "acme-app-7731",
    "fraud_status": {"status": "normal"},
    "registered_till": samples.TILL,
    "associated_with": samples.TILL,
}


def test_the_probe_sends_every_declared_field():
    assert set(EVERY_FIELD) == set(ITEM_FIELDS)


def test_the_customer_schema_names_every_field_the_reader_reads_and_no_other():
    seen: set[str] = set()
    read_item(Recording(EVERY_FIELD, seen), samples.ORG, samples.TILL, samples.REGISTERED_AT)
    assert seen == documented(SCHEMAS["CustomerInput"])


def test_the_identity_change_schema_names_every_field_the_reader_reads_and_no_other():
    seen: set[str] = set()
    read_change(Recording(dict(samples.MOBILE_CHANGE), seen), samples.ORG)
    assert seen == documented(SCHEMAS["IdentityChangeInput"])


def _too_long(name: str, length: int) -> str:
    return "a" * (length - len("@example.com")) + "@example.com" if name == "email" else "A" * length


@pytest.mark.parametrize(
    "name", [name for name, schema in SCHEMAS["CustomerInput"]["properties"].items() if "maxLength" in schema]
)
def test_a_value_one_past_its_documented_length_is_not_kept(name):
    limit = SCHEMAS["CustomerInput"]["properties"][name]["maxLength"]
    sent = {"mobile": "919876532218", name: _too_long(name, limit + 1)}
    _, warnings = read_item(sent, samples.ORG, samples.TILL, samples.REGISTERED_AT)
    assert warnings.codes, f"{name} of {limit + 1} characters was read without a warning"


def test_the_sample_customer_is_what_the_reader_reads_of_her_request():
    item, _ = read_item(dict(samples.ASHA_ITEM), samples.ORG, samples.TILL, samples.REGISTERED_AT)
    kept = samples.ASHA
    assert (item.mobile, item.email, item.external_id) == (kept.mobile, kept.email, kept.external_id)
    assert (item.firstname, item.lastname, item.source) == (kept.firstname, kept.lastname, kept.source)
    assert (item.custom_fields, item.extended_fields) == (kept.custom_fields, kept.extended_fields)
    assert (item.subscriptions, item.comm_channels) == (kept.subscriptions, kept.comm_channels)


def test_the_sample_update_is_what_the_reader_reads_of_it():
    item, _ = read_item(dict(samples.ASHA_UPDATE_ITEM), samples.ORG, samples.TILL, samples.UPDATED_AT)
    assert item.lastname == samples.ASHA_UPDATED.lastname
    assert {**samples.ASHA.custom_fields, **item.custom_fields} == samples.ASHA_UPDATED.custom_fields
