"""The customer endpoints' examples: Patron's own reader and presenters (customers.reading,
api.present) run on the sample org and customers (samples), so that an example says what Patron
answers, to the letter, and changes when the answer does."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from patron.api import answers
from patron.api.codec import customers_document, search_document
from patron.api.openapi import samples
from patron.api.openapi.samples import ASHA, ASHA_ID, ORG, UNKNOWN_MOBILE
from patron.api.present import added_item, found_item, identity_item, missing_item, retrieved_item, updated_item
from patron.codes import IDENTITY_CHANGE_TAKEN, REGISTERED, USER_UPDATED, Code, identity_error_message, item_error_message
from patron.customers.identity_review import IdentityOutcome
from patron.customers.model import IDENTIFIER_LABELS, Customer, ItemRejected, Warnings
from patron.customers.reading import read_item
from patron.customers.registration import ItemResult
from patron.loyalty.model import Membership
from patron.orgs.model import OrgSettings

Examples = dict[str, dict[str, Any]]


def _example(summary: str, value: Any) -> dict[str, Any]:
    return {"summary": summary, "value": value}


def _batch(summary: str, code: Code, items: list[Any]) -> dict[str, Any]:
    """A named example of a batch answer: the envelope Patron builds, its success_count counted."""
    successes = sum(item["item_status"]["success"] == "true" for item in items)
    return _example(summary, customers_document(code, items, successes))


def asha_memberships() -> list[Membership]:
    memberships, _, _ = samples.joining(referred=True).for_member(ASHA_ID)
    return memberships


def read_warnings(item: Mapping[str, Any], org: OrgSettings, at: datetime) -> Warnings:
    """The warnings the reader answers the item with."""
    _, warnings = read_item(dict(item), org, samples.TILL, at)
    return warnings


def _registered(customer: Customer, item: Mapping[str, Any], org: OrgSettings, referred: bool) -> Any:
    assert customer.id is not None
    memberships, _, effects = samples.joining(referred).for_member(customer.id)
    warnings = read_warnings(item, org, customer.updated_on)
    result = ItemResult(
        Code.ITEM_OK, warnings.message(REGISTERED), warnings, customer, True, dict(item), memberships, effects
    )
    return added_item(result, org)


def _refused(item: dict[str, Any], *, updating: bool = False) -> Any:
    """The item the reader refuses, as add (or update) answers it."""
    try:
        read_item(item, ORG, samples.TILL, samples.REGISTERED_AT)
    except ItemRejected as rejected:
        result = ItemResult(rejected.code, rejected.message, Warnings(), sent=item)
        return updated_item(result, ORG) if updating else added_item(result, ORG)
    raise AssertionError(f"{item} is read without an error")


def _failed(code: Code, sent: dict[str, Any], *, updating: bool = False) -> Any:
    """An item that fails past the reader (resolution, the batch's limit), as add or update answers it."""
    result = ItemResult(code, item_error_message(code), Warnings(), sent=sent)
    return updated_item(result, ORG) if updating else added_item(result, ORG)


def add_examples() -> Examples:
    asha = _registered(ASHA, samples.ASHA_ITEM, ORG, referred=True)
    kiran = _registered(samples.KIRAN, samples.KIRAN_ITEM, samples.ORG_BY_EXTERNAL_ID, referred=False)
    return {
        "withMobileAndEmail": _batch(
            "Asha registers, referred by Ravi: both earn points, she earns gems; an undeclared custom field is skipped",
            Code.SUCCESS, [asha],
        ),
        "withExternalId": _batch(
            "Kiran registers by external id alone, backdated (an org whose primary identifier is the external id)",
            Code.SUCCESS, [kiran],
        ),
        "someFailed": _batch(
            "A batch of two: one registered, one with an invalid mobile",
            Code.PARTIAL_SUCCESS, [asha, _refused({"mobile": "12345"})],
        ),
        "allFailed": _batch("Every item failed", Code.ALL_FAILED, [_refused({"firstname": "Nobody"})]),
    }


def add_requests() -> Examples:
    return {
        "withMobileAndEmail": _example("Asha, referred by Ravi", {"root": {"customer": [samples.ASHA_ITEM]}}),
        "withExternalId": _example("Kiran, by external id", {"root": {"customer": [samples.KIRAN_ITEM]}}),
    }


def found() -> answers.RetrievedCustomer:
    return retrieved_item(ASHA, asha_memberships(), ORG)


def get_examples() -> Examples:
    missing = missing_item("mobile", UNKNOWN_MOBILE)
    return {
        "found": _batch("Found", Code.SUCCESS, [found()]),
        "oneOfTwoFound": _batch(
            f"mobile={ASHA.mobile},{UNKNOWN_MOBILE}: one found, one not", Code.PARTIAL_SUCCESS, [found(), missing]
        ),
        "noneFound": _batch(f"mobile={UNKNOWN_MOBILE}: not found", Code.ALL_FAILED, [missing]),
    }


def update_examples() -> Examples:
    warnings = read_warnings(samples.ASHA_UPDATE_ITEM, ORG, samples.UPDATED_AT)
    warnings.add(Code.IDENTIFIER_UPDATE_NOT_ALLOWED, IDENTIFIER_LABELS["email"])
    result = ItemResult(
        Code.ITEM_OK, warnings.message(USER_UPDATED), warnings, samples.ASHA_UPDATED, memberships=asha_memberships()
    )
    updated = updated_item(result, ORG)
    beyond = _failed(Code.BATCH_LIMIT_EXCEEDED, {"mobile": "919876500001"}, updating=True)
    missing = _failed(Code.CUSTOMER_NOT_FOUND, {"mobile": UNKNOWN_MOBILE}, updating=True)
    return {
        "updated": _batch("Updated; a new email was refused (CONF_ALLOW_EMAIL_UPDATE is off)", Code.SUCCESS, [updated]),
        "secondRefused": _batch(
            "A list of two: one customer is updated, the second item fails with 1060",
            Code.PARTIAL_SUCCESS, [updated, beyond],
        ),
        "notFound": _batch("No customer holds the mobile: update never creates one", Code.ALL_FAILED, [missing]),
    }


def _change(code: Code, identifier: str, old: str | None, new: str, customer_id: int | None = ASHA_ID) -> Any:
    taken = code in (Code.ITEM_OK, Code.IDENTITY_CHANGE_REQUESTED)
    message = IDENTITY_CHANGE_TAKEN if taken else identity_error_message(code, IDENTIFIER_LABELS[identifier])
    outcome = IdentityOutcome(code, message, identifier, old, new, code == Code.ITEM_OK, customer_id)
    return identity_item(outcome)


def identity_examples() -> Examples:
    pending = _change(Code.IDENTITY_CHANGE_REQUESTED, "mobile", ASHA.mobile, "919876500001")
    applied = _change(Code.ITEM_OK, "email", ASHA.email, "asha@example.org")
    occupied = _change(Code.IDENTIFIER_OCCUPIED, "mobile", ASHA.mobile, "919811111111")
    missing = _change(Code.CUSTOMER_NOT_FOUND, "mobile", UNKNOWN_MOBILE, "919800000001", None)
    elsewhere = _change(Code.PENDING_REQUEST_OF_ANOTHER_CALLER, "mobile", ASHA.mobile, "919876500002")
    capped = _change(
        Code.TOO_MANY_PENDING_REQUESTS, "external_id", samples.KIRAN.external_id, "ACME-000413", samples.KIRAN_ID
    )
    return {
        "pending": _batch("Taken for review (CONF_IDENTITY_CHANGE_APPROVAL on, the default)", Code.SUCCESS, [pending]),
        "applied": _batch("Applied at once (CONF_IDENTITY_CHANGE_APPROVAL off)", Code.SUCCESS, [applied]),
        "oneOccupied": _batch(
            "A batch of two: one taken, one whose new value another customer holds",
            Code.PARTIAL_SUCCESS, [pending, occupied],
        ),
        "notFound": _batch("No customer holds the old value", Code.ALL_FAILED, [missing]),
        "refused": _batch(
            "Another caller's request waits for the first mobile (1041), and this caller has"
            " CONF_IDENTITY_CHANGE_PENDING_PER_CALLER requests waiting already (1042)",
            Code.ALL_FAILED, [elsewhere, capped],
        ),
    }


def identity_requests() -> Examples:
    return {
        "current": _example("The current spelling", {"root": {"customer": [samples.MOBILE_CHANGE]}}),
        "older": _example(
            "An older client's spelling: the old value in `identifier`", {"root": {"customer": samples.EMAIL_CHANGE_OLDER}}
        ),
    }


SEARCH_QUERY = "firstname:STARTS:as&registered_date:RANGE:2026-10-01;2026-10-31"


def search_examples() -> Examples:
    match = found_item(ASHA, asha_memberships(), ORG)
    return {
        "found": _example(f"q={SEARCH_QUERY}, rows=10: one match", search_document(1, False, 0, 10, [match])),
        "none": _example(f"q=mobile:EQUALS:{UNKNOWN_MOBILE}: no match", search_document(0, False, 0, 10, [])),
    }
