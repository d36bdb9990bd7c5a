"""The events' bodies and envelope (events.md §1, patron.events.build): one test per rule, on plain data."""

from __future__ import annotations

from dataclasses import fields, replace
from datetime import datetime
from typing import Any

from patron.customers.model import Change, Customer, CustomerFields
from patron.events import build
from patron.events.model import StoredEvent
from patron.events.names import EventName
from patron.orgs.file import parse_org_document
from patron.orgs.model import OrgSettings

ORG_ID = 7
AT = datetime(2024, 8, 1, 8, 28, 32, 412000)
ORG = OrgSettings.from_file(parse_org_document({
    "org": {"id": ORG_ID, "name": "Acme", "base_country": "IN"},
    "access_groups": [{"name": "pos", "customer": "write"}],
    "stores": [{"code": "s1", "name": "Store 1", "access_group": "pos", "tills": [{"code": "t1", "name": "Till 1"}]}],
}, stored=True))
ASHA = Customer(
    org_id=ORG_ID, id=42, mobile="919876532218", email="asha@example.com", external_id="EX-1", firstname="Asha",
    lastname="Rao", type="LOYALTY", source="INSTORE", account_id=None, fraud_status="NONE", registered_on=AT,
    updated_on=AT, registered_till="t1", associated_with="t1", referral_code=None,
    custom_fields={"city": "Pune"}, extended_fields={"gender": "Female"},
)
WRITER = build.Writer(ORG, "t1", None, AT, "api")


def stored(data: dict[str, Any], **fields: Any) -> StoredEvent:
    event: dict[str, Any] = {
        "org_id": ORG_ID, "position": 1, "event_id": "e-1", "customer_id": 42, "sequence": 3,
        "name": EventName.CUSTOMER_ADDED.value, "created_at": AT, "request_id": "req-1", "origin": "api",
        "console_user": None, "data": data,
    }
    return StoredEvent(**{**event, **fields})


def added_data() -> dict[str, Any]:
    return build.customer_added(ASHA, WRITER).data


# --- updated_fields ---


def test_updated_fields_leaves_out_updated_on():
    fields = build.updated_fields([
        {"field": "updated_on", "previous": "2024-08-01 08:28:32", "current": "2024-08-02 09:00:00"},
        {"field": "firstname", "previous": "Asha", "current": "Ashwini"},
    ])
    assert [field["fieldName"] for field in fields] == ["firstname"]


def test_updated_fields_splits_custom_and_extended_fields_per_key_with_their_field_type():
    fields = build.updated_fields([
        {"field": "custom_fields", "previous": {"city": "Pune", "tier": "A"}, "current": {"city": "Mysuru", "tier": "A", "pet": "cat"}},
        {"field": "extended_fields", "previous": {"gender": "Female"}, "current": {}},
    ])
    assert fields == [
        {"fieldName": "city", "previousValue": "Pune", "currentValue": "Mysuru", "fieldType": "CustomField"},
        {"fieldName": "pet", "previousValue": None, "currentValue": "cat", "fieldType": "CustomField"},
        {"fieldName": "gender", "previousValue": "Female", "currentValue": None, "fieldType": "ExtendedField"},
    ]


def test_updated_fields_types_identifiers_as_identifier_and_the_rest_as_profile():
    fields = build.updated_fields([
        {"field": name, "previous": "a", "current": "b"} for name in ("mobile", "email", "external_id", "lastname", "type")
    ])
    assert {field["fieldName"]: field["fieldType"] for field in fields} == {
        "mobile": "Identifier", "email": "Identifier", "external_id": "Identifier", "lastname": "Profile", "type": "Profile",
    }


# --- customer_updated ---


def test_customer_updated_is_none_when_nothing_reportable_changed():
    assert build.customer_updated(ASHA, [], WRITER) is None
    only_time: list[Change] = [{"field": "updated_on", "previous": "2024-08-01 08:28:32", "current": "2024-08-02 09:00:00"}]
    assert build.customer_updated(ASHA, only_time, WRITER) is None
    same_custom: list[Change] = [{"field": "custom_fields", "previous": {"city": "Pune"}, "current": {"city": "Pune"}}]
    assert build.customer_updated(ASHA, same_custom, WRITER) is None


def test_customer_updated_names_the_changes_of_the_customer_after_them():
    after = replace(ASHA, firstname="Ashwini")
    event = build.customer_updated(after, [{"field": "firstname", "previous": "Asha", "current": "Ashwini"}], WRITER)
    assert event is not None
    assert (event.name, event.customer_id) == (EventName.CUSTOMER_UPDATED, 42)
    assert event.data["updatedFields"] == [
        {"fieldName": "firstname", "previousValue": "Asha", "currentValue": "Ashwini", "fieldType": "Profile"}]


# --- thin ---


def test_thin_nulls_the_identifiers_and_keeps_the_customer_id():
    thinned = build.thin(EventName.CUSTOMER_ADDED, added_data())
    assert thinned["customerIdentifiers"] == {"customerId": 42, "instore": {"mobile": None, "email": None, "externalId": None}}


def test_thin_nulls_the_names():
    thinned = build.thin(EventName.CUSTOMER_ADDED, added_data())
    assert (thinned["firstName"], thinned["lastName"]) == (None, None)


def test_thin_nulls_the_values_of_identifiers_and_names_in_updated_fields_and_keeps_their_names():
    event = build.customer_updated(ASHA, [
        {"field": "mobile", "previous": "919876532218", "current": "919845012345"},
        {"field": "lastname", "previous": "Rao", "current": "Rao-Kumar"},
        {"field": "custom_fields", "previous": {"city": "Pune"}, "current": {"city": "Mysuru"}},
        {"field": "type", "previous": "NON_LOYALTY", "current": "LOYALTY"},
    ], WRITER)
    assert event is not None
    thinned = build.thin(EventName.CUSTOMER_UPDATED, event.data)
    assert thinned["updatedFields"] == [
        {"fieldName": "mobile", "previousValue": None, "currentValue": None, "fieldType": "Identifier"},
        {"fieldName": "lastname", "previousValue": None, "currentValue": None, "fieldType": "Profile"},
        {"fieldName": "city", "previousValue": "Pune", "currentValue": "Mysuru", "fieldType": "CustomField"},
        {"fieldName": "type", "previousValue": "NON_LOYALTY", "currentValue": "LOYALTY", "fieldType": "Profile"},
    ]


def test_thin_nulls_a_requests_old_and_new_values():
    event = build.request_updated(
        ASHA, request_id=5, status="PENDING", identifier="mobile", old_value="919876532218",
        new_value="919845012345", reason="lost phone", decided_by=None, writer=WRITER)
    thinned = build.thin(EventName.REQUEST_UPDATED, event.data)
    assert (thinned["oldValue"], thinned["newValue"]) == (None, None)
    assert (thinned["identifier"], thinned["status"], thinned["reason"]) == ("mobile", "PENDING", "lost phone")


def test_thin_keeps_every_key_and_every_other_value():
    data = added_data()
    thinned = build.thin(EventName.CUSTOMER_ADDED, data)
    assert thinned.keys() == data.keys()
    personal = {"customerIdentifiers", "firstName", "lastName"}
    assert {key: value for key, value in thinned.items() if key not in personal} == {
        key: value for key, value in data.items() if key not in personal}
    assert thinned["customFields"] == [{"key": "city", "value": "Pune"}]


def test_thin_leaves_the_body_it_was_given_untouched():
    data = added_data()
    build.thin(EventName.CUSTOMER_ADDED, data)
    assert data == added_data()


# --- envelope ---


def test_envelope_fills_the_customer_id_and_ref_id_from_the_stored_customer_id():
    # A new customer's body is built before the database gives its id.
    new = build.customer_added(CustomerFields(**{each.name: getattr(ASHA, each.name) for each in fields(CustomerFields)}), WRITER)
    body = build.envelope(stored(new.data, customer_id=991), pii=True)
    assert body["data"]["customerIdentifiers"]["customerId"] == 991
    assert body["refId"] == f"{ORG_ID}_991"


def test_envelope_names_the_api_request_id_only_for_origin_api():
    assert build.envelope(stored(added_data()), pii=True)["apiRequestId"] == "req-1"
    console = stored(added_data(), origin="console", console_user="priya")
    imported = stored(added_data(), origin="import", request_id="import-abc")
    assert build.envelope(console, pii=True)["apiRequestId"] is None
    assert build.envelope(imported, pii=True)["apiRequestId"] is None


def test_envelope_names_the_console_user_for_a_console_change_only():
    assert build.envelope(stored(added_data(), origin="console", console_user="priya"), pii=True)["consoleUser"] == "priya"
    assert "consoleUser" not in build.envelope(stored(added_data()), pii=True)


def test_envelope_says_source_import_for_an_import_only():
    assert build.envelope(stored(added_data(), origin="import"), pii=True)["source"] == "import"
    assert "source" not in build.envelope(stored(added_data()), pii=True)


def test_envelope_gives_created_at_in_unix_milliseconds():
    assert build.envelope(stored(added_data()), pii=True)["createdAt"] == 1722500912412


def test_envelope_carries_the_event_id_name_org_and_sequence():
    body = build.envelope(stored(added_data()), pii=True)
    assert (body["eventId"], body["eventName"], body["orgId"], body["sequence"]) == ("e-1", "customerAdded", ORG_ID, 3)


def test_envelope_is_thin_without_pii():
    body = build.envelope(stored(added_data()), pii=False)
    assert body["data"]["customerIdentifiers"] == {"customerId": 42, "instore": {"mobile": None, "email": None, "externalId": None}}
    assert body["data"]["firstName"] is None
