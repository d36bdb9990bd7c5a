"""Response items of customer/add and customer/get, field for field as the v1.1 API shapes them."""

from __future__ import annotations

from typing import Any

from patron.codes import RETRIEVED, Code, item_error_message
from patron.orgs.model import OrgSettings
from patron.registration.fields import local_text
from patron.registration.model import IDENTIFIERS, Customer
from patron.registration.service import ItemResult


def _fields(values: dict[str, str]) -> dict[str, Any]:
    return {"field": [{"name": name, "value": value} for name, value in values.items()]}


def _item_status(success: bool, code: Code, message: str, warnings: list[Code]) -> dict[str, Any]:
    return {
        "success": "true" if success else "false",
        "code": str(int(code)),
        "message": message,
        "warnings": {"warning": [str(int(warning)) for warning in warnings]},
    }


def customer_body(customer: Customer, org: OrgSettings) -> dict[str, Any]:
    """What add and get both say of a customer (before their own extra keys)."""
    return {
        "user_id": customer.id,
        "firstname": customer.firstname,
        "lastname": customer.lastname,
        "mobile": customer.mobile,
        "email": customer.email,
        "external_id": customer.external_id,
        "lifetime_points": 0,
        "loyalty_points": 0,
        "current_slab": None,
        "tier_expiry_date": None,
        "points_summaries": {"points_summary": []},
        "lifetime_purchases": 0,
        "registered_on": local_text(customer.registered_on, org.tz),
        "updated_on": local_text(customer.updated_on, org.tz),
        "type": customer.type,
        "source": customer.source.lower(),
        "fraud_status": customer.fraud_status,
        "reason": "",
        "custom_fields": _fields(customer.custom_fields),
        "extended_fields": _fields(customer.extended_fields),
        "subscriptions": {"subscription": customer.subscriptions},
    }


def added_item(result: ItemResult, org: OrgSettings) -> dict[str, Any]:
    status = _item_status(result.success, result.code, result.message, result.warnings.codes)
    if result.success and result.customer is not None:
        return {**customer_body(result.customer, org), "side_effects": {"effect": []}, "item_status": status}
    failed: dict[str, Any] = {name: result.sent.get(name) for name in IDENTIFIERS}
    if result.customer is not None:
        failed["user_id"] = result.customer.id
    failed["item_status"] = status
    return failed


def retrieved_item(customer: Customer, org: OrgSettings) -> dict[str, Any]:
    registered = org.till(customer.registered_till) if customer.registered_till else None
    return {
        **customer_body(customer, org),
        "fraud_details": {"status": customer.fraud_status},
        "registered_till": {"code": customer.registered_till, "name": registered.name if registered else None},
        "registered_store": {
            "code": registered.store.code if registered else None,
            "name": registered.store.name if registered else None,
        },
        "associated_with": customer.associated_with,
        "referral_code": customer.referral_code,
        "commChannels": customer.comm_channels,
        "identifiers": [
            {"type": name, "value": customer.identifier(name)}
            for name in IDENTIFIERS
            if customer.identifier(name) is not None
        ],
        "item_status": _item_status(True, Code.ITEM_OK, RETRIEVED, []),
    }


def missing_item(asked_by: str, value: str) -> dict[str, Any]:
    return {
        asked_by: value,
        "item_status": _item_status(
            False, Code.CUSTOMER_NOT_FOUND, item_error_message(Code.CUSTOMER_NOT_FOUND), []
        ),
    }
