"""Response items of customer/add, get and search, field for field as the v1.1 API shapes them."""

from __future__ import annotations

from datetime import date
from functools import lru_cache
from typing import Any, TypedDict, cast

from patron.api import answers
from patron.api.answers import code_text
from patron.codes import RETRIEVED, Code, item_error_message
from patron.customers.fields import local_text
from patron.customers.identity_review import IdentityOutcome
from patron.customers.model import IDENTIFIERS, Customer
from patron.customers.registration import ItemResult
from patron.loyalty.model import CurrencyEffect, Membership, SideEffect
from patron.loyalty.rules import next_slab
from patron.orgs.model import OrgSettings
from patron.orgs.policy import Program


def _fields(values: dict[str, str]) -> answers.FieldList:
    return {"field": [{"name": name, "value": value} for name, value in values.items()]}


def item_status(success: bool, code: Code, message: str, warnings: list[Code]) -> answers.ItemStatus:
    return {
        "success": "true" if success else "false",
        "code": code_text(code),
        "message": message,
        "warnings": {"warning": [code_text(warning) for warning in warnings]},
    }


@lru_cache(maxsize=1024)  # a batch's members share their expiry day
def _expiry(day: date) -> str:
    return f"{day.isoformat()} 23:59:59"


def _points_summary(membership: Membership, program: Program) -> answers.PointsSummary:
    slab = program.slabs[membership.slab_serial - 1]
    upcoming = next_slab(program, membership.slab_serial)
    return {
        "programId": str(program.id),
        "redeemed": "0",
        "expired": "0",
        "returned": "0",
        "adjusted": "0",
        "lifetimePoints": str(membership.lifetime_points),
        "loyaltyPoints": str(membership.loyalty_points),
        "cumulativePurchases": "0",
        "currentSlab": slab.name,
        "nextSlab": upcoming.name if upcoming else "",
        "nextSlabSerialNumber": str(upcoming.serial) if upcoming else "-1",
        "nextSlabDescription": upcoming.description if upcoming else "",
        "slabSNo": str(slab.serial),
        "slabExpiryDate": _expiry(membership.tier_expires_on),
        "totalPoints": "",
    }


class _Loyalty(TypedDict):
    """The points and tier a customer's answers show, of its default programme."""

    lifetime_points: int
    loyalty_points: int
    current_slab: str | None
    tier_expiry_date: str | None
    points_summaries: answers.PointsSummaries


def _loyalty(memberships: list[Membership], org: OrgSettings) -> _Loyalty:
    """Points and tier: the customer-level values are those of the default programme."""
    programs, default = org.programs, org.definition.default_program
    ordered = memberships
    if len(memberships) > 1:
        ordered = sorted(memberships, key=lambda m: (default is None or m.program_id != default.id, m.program_id))
    main = ordered[0] if ordered else None
    return {
        "lifetime_points": main.lifetime_points if main else 0,
        "loyalty_points": main.loyalty_points if main else 0,
        "current_slab": programs[main.program_id].slabs[main.slab_serial - 1].name if main else None,
        "tier_expiry_date": _expiry(main.tier_expires_on) if main else None,
        "points_summaries": {
            "points_summary": [_points_summary(m, programs[m.program_id]) for m in ordered if m.program_id in programs]
        },
    }


def _side_effect(effect: SideEffect) -> answers.PointsEffect | answers.AlternateCurrencyEffect:
    if isinstance(effect, CurrencyEffect):
        return {
            "alternate_currency_identifier": effect.identifier,
            "alternate_currency_name": effect.name,
            "awarded_value": str(effect.awarded_value),
            "type": "alternate_currency",
        }
    shown: dict[str, Any] = {"awarded_points": effect.awarded_points}
    if effect.total_points is not None:
        shown["total_points"] = effect.total_points
    shown["customer_id"] = str(effect.customer_id)
    if effect.is_referrer:
        shown["is_referrer"] = "true"
    shown["type"] = "points"
    # Built key by key, in the order the family's answers have them, the optional ones between.
    return cast(answers.PointsEffect, shown)


def customer_body(customer: Customer, memberships: list[Membership], org: OrgSettings) -> answers.CustomerBody:
    """What add and get both say of a customer (before their own extra keys)."""
    return {
        "user_id": customer.id,
        "firstname": customer.firstname,
        "lastname": customer.lastname,
        "mobile": customer.mobile,
        "email": customer.email,
        "external_id": customer.external_id,
        **_loyalty(memberships, org),
        "lifetime_purchases": 0,
        "registered_on": local_text(customer.registered_on, org.tz),
        "updated_on": local_text(customer.updated_on, org.tz),
        "type": customer.type,
        "source": customer.source.lower(),
        "fraud_status": customer.fraud_status,
        "reason": "",
        "custom_fields": _fields(customer.custom_fields),
        "extended_fields": _fields(customer.extended_fields),
        # The reader keeps each subscription in the answer's shape (reading._subscription).
        "subscriptions": {"subscription": cast(list[answers.Subscription], customer.subscriptions)},
    }


def added_item(result: ItemResult, org: OrgSettings) -> answers.AddedCustomer | answers.FailedItem:
    status = item_status(result.success, result.code, result.message, result.warnings.codes)
    if result.success and result.customer is not None:
        return {
            **customer_body(result.customer, result.memberships, org),
            "side_effects": {"effect": [_side_effect(effect) for effect in result.side_effects]},
            "item_status": status,
        }
    return _failed_item(result, status)


def _failed_item(result: ItemResult, status: answers.ItemStatus) -> answers.FailedItem:
    sent = result.sent
    if result.customer is None:
        return {"mobile": sent.get("mobile"), "email": sent.get("email"), "external_id": sent.get("external_id"),
                "item_status": status}
    return {"mobile": sent.get("mobile"), "email": sent.get("email"), "external_id": sent.get("external_id"),
            "user_id": result.customer.id, "item_status": status}


def retrieved_item(customer: Customer, memberships: list[Membership], org: OrgSettings) -> answers.RetrievedCustomer:
    registered = org.till(customer.registered_till) if customer.registered_till else None
    return {
        **customer_body(customer, memberships, org),
        "fraud_details": {"status": customer.fraud_status},
        "registered_till": {"code": customer.registered_till, "name": registered.name if registered else None},
        "registered_store": {
            "code": registered.store.code if registered else None,
            "name": registered.store.name if registered else None,
        },
        "associated_with": customer.associated_with,
        "referral_code": customer.referral_code,
        # The reader keeps each channel in the answer's shape (reading: type, value, primary, verified, meta).
        "commChannels": cast(list[answers.CommChannel], customer.comm_channels),
        "identifiers": [
            {"type": name, "value": value} for name in IDENTIFIERS if (value := customer.identifier(name)) is not None
        ],
        "item_status": item_status(True, Code.ITEM_OK, RETRIEVED, []),
    }


def updated_item(result: ItemResult, org: OrgSettings) -> answers.UpdatedCustomer | answers.FailedItem:
    """customer/update's item: the customer as customer/get shows it, with the update's status."""
    status = item_status(result.success, result.code, result.message, result.warnings.codes)
    if result.success and result.customer is not None:
        return {**retrieved_item(result.customer, result.memberships, org), "item_status": status}
    return _failed_item(result, status)


def identity_item(outcome: IdentityOutcome) -> answers.IdentityChangeItem:
    """customer/update_identity's item."""
    updated: answers.TrueFalse = "true" if outcome.updated else "false"
    status = item_status(outcome.success, outcome.code, outcome.message, [])
    if outcome.customer_id is None:
        return {"identifier": outcome.identifier, "old_value": outcome.old_value, "new_value": outcome.new_value,
                "updated": updated, "item_status": status}
    return {"user_id": outcome.customer_id, "identifier": outcome.identifier, "old_value": outcome.old_value,
            "new_value": outcome.new_value, "updated": updated, "item_status": status}


def found_item(customer: Customer, memberships: list[Membership], org: OrgSettings) -> answers.FoundCustomer:
    """A customer as customer/search lists it."""
    loyalty = _loyalty(memberships, org)
    return {
        "user_id": customer.id,
        "org_id": customer.org_id,
        "firstname": customer.firstname,
        "lastname": customer.lastname,
        "mobile": customer.mobile,
        "email": customer.email,
        "external_id": customer.external_id,
        "loyalty_points": loyalty["loyalty_points"],
        "lifetime_points": loyalty["lifetime_points"],
        "current_slab": loyalty["current_slab"],
        "registered_on": local_text(customer.registered_on, org.tz),
        "registered_by": customer.registered_till,
        "attributes": {"attribute": [{"name": name, "value": value} for name, value in customer.custom_fields.items()]},
    }


def missing_item(asked_by: str, value: str) -> answers.MissingCustomer:
    # Keyed by what it was asked by (one of LOOKUP_KEYS), which a TypedDict's literal cannot name.
    return cast(answers.MissingCustomer, {
        asked_by: value,
        "item_status": item_status(
            False, Code.CUSTOMER_NOT_FOUND, item_error_message(Code.CUSTOMER_NOT_FOUND), []
        ),
    })
