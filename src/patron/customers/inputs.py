"""What a request item may send, declared once as types: the reader's field names, vocabularies
and lengths, which the OpenAPI document's request schemas are generated from (api.openapi.requests).

The item is read leniently (customers.reading, customers.identity_requests); these types say what it
reads and in which shapes, so that a field the reader reads and the document omits, or the other way
round, is a failing test (tests/unit/test_item_inputs.py) rather than a page that lies.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, WithJsonSchema
from typing_extensions import TypedDict

from patron import limits
from patron.customers.model import LOYALTY, NON_LOYALTY
from patron.orgs.policy import STANDARD_EXTENDED_FIELDS

# Each vocabulary maps the lower-cased spelling the reader accepts to the one it stores.
TYPES = {"loyalty": LOYALTY, "non_loyalty": NON_LOYALTY}
SOURCES = {
    name.lower(): name
    for name in (
        "INSTORE", "WEB_ENGAGE", "WECHAT", "FACEBOOK", "MARTJACK", "TMALL", "TAOBAO", "JD",
        "ECOMMERCE", "WEBSITE", "LINE", "MOBILE_APP",
    )
}
FRAUD_STATUSES = {
    name.lower(): name
    for name in (
        "NONE", "NORMAL", "OUTLIER", "FRAUD", "INTERNAL", "INVALID", "MARKED", "CONFIRMED",
        "RECONFIRMED", "NOT_FRAUD",
    )
}
SUBSCRIPTION_CHANNELS = {"sms": "sms", "email": "email"}
SUBSCRIPTION_PRIORITIES = {"trans": "TRANS", "bulk": "BULK"}

# Lenient shapes: what the reader turns into text or a flag.
LenientText = Annotated[
    str | int | float,
    WithJsonSchema({"type": ["string", "number"], "description": "Text; a JSON number is read as its digits."}),
]
LenientFlag = Annotated[
    str | bool | int,
    WithJsonSchema({
        "type": ["string", "boolean", "integer"],
        "description": "true/false, 1/0, yes/no in any case; a string is fine.",
    }),
]
FieldValue = Annotated[str | int | float | bool, WithJsonSchema({"type": ["string", "number", "boolean"]})]


def _described(description: str, **more: Any) -> Any:
    return Field(description=description, **more)


def _enumerated(values: list[Any]) -> Any:
    return Field(json_schema_extra={"enum": values})


class FieldInput(TypedDict):
    name: str
    value: FieldValue


class FieldsInput(TypedDict, total=False):
    """One field, or a list of them (XML: `<field><name/><value/></field>…`)."""

    field: list[FieldInput] | FieldInput


class FraudStatusInput(TypedDict, total=False):
    status: str


class CommChannelInput(TypedDict, total=False):
    """A way to reach the customer; one without a type or a value is skipped with warning 1024."""

    type: str
    value: LenientText
    primary: LenientFlag
    verified: LenientFlag
    meta: Annotated[dict[str, Any], _described("Kept and answered as sent; keys must be XML names.")]


class SubscriptionInput(TypedDict, total=False):
    """One channel's consent; one without a valid channel, priority or flag is skipped with warning 1024."""

    channel: Annotated[str, _enumerated(sorted(SUBSCRIPTION_CHANNELS.values()))]
    priority: Annotated[str, _enumerated(sorted(SUBSCRIPTION_PRIORITIES.values()))]
    scope: Annotated[str, _described("Default `all`.")]
    is_subscribed: LenientFlag


class SubscriptionsInput(TypedDict, total=False):
    subscription: list[SubscriptionInput]


class CustomerItem(TypedDict, total=False):
    """One customer. Parsed leniently (numbers for strings, strings for booleans, any case), validated
    strictly; what is invalid is skipped with a warning or fails the item with an error code (see the
    code table). Which identifiers are required depends on the org's configs
    (CONF_REGISTRATION_PRIMARY_KEY and friends). Unknown keys are ignored."""

    mobile: Annotated[
        LenientText,
        _described(
            "With the country code; `+`, spaces, dashes and brackets are stripped. Returned as E.164 digits "
            "without `+`.",
            examples=[917755876888, "+91 77558 76888"],
        ),
    ]
    email: Annotated[str, _described("Stored lower-cased.", max_length=limits.EMAIL)]
    external_id: Annotated[LenientText, _described(f"At most {limits.EXTERNAL_ID} characters; trimmed.")]
    firstname: Annotated[str, Field(max_length=limits.NAME)]
    lastname: Annotated[str, Field(max_length=limits.NAME)]
    registered_on: Annotated[
        str,
        _described(
            "`YYYY-MM-DD HH:MM:SS`, `YYYY-MM-DD` or ISO 8601; at most 24 h ahead and not before "
            "CONF_MIN_REGISTRATION_DATE (else 1034). Ignored on update."
        ),
    ]
    updated_on: Annotated[str, _described("Same formats; default now.")]
    type: Annotated[str, _described(f"Any case; default {TYPES['loyalty']}.", examples=sorted(TYPES.values()))]
    source: Annotated[str, _described("Any case; default INSTORE. One of: " + ", ".join(SOURCES.values()) + ".")]
    accountId: Annotated[str, _described("Stored with the source.", max_length=limits.ACCOUNT_ID)]
    fraud_status: Annotated[
        str | FraudStatusInput, _described("One of: " + ", ".join(FRAUD_STATUSES.values()) + " (any case).")
    ]
    registered_till: Annotated[str, _described("A till code of the org.", max_length=limits.TILL_CODE)]
    associated_with: Annotated[str, _described("A till code of the org.", max_length=limits.TILL_CODE)]
    referral_code: Annotated[str, _described("The referrer's referral_code (any case).")]
    commChannels: list[CommChannelInput]
    subscriptions: SubscriptionsInput
    custom_fields: Annotated[
        FieldsInput,
        _described("Fields the org declares (names case-insensitive); unknown or invalid: skipped, warning 1017."),
    ]
    extended_fields: Annotated[
        FieldsInput,
        _described(
            "Standard extended fields (" + ", ".join(field.name for field in STANDARD_EXTENDED_FIELDS.values())
            + ") or ones the org declares; unknown or invalid: skipped, warning 91015."
        ),
    ]


class IdentityChangeItem(TypedDict, total=False):
    """One identifier change. Older clients' spellings are read too: `old_identifier` and
    `new_identifier` for the values, and `identifier` holding the old value itself (then the field is
    read from it: an `@` makes it an email, a valid mobile of the org's countries a mobile, else an
    external id)."""

    identifier: Annotated[
        LenientText,
        _described(
            "mobile, email or external_id (any case); or, older spelling, the old value.",
            examples=["mobile", "email", "external_id"],
        ),
    ]
    old_value: Annotated[LenientText, _described("The value the customer holds now; none holds it: 1012.")]
    new_value: Annotated[
        LenientText, _described("Read by the field's rules (1001/1002/1003); held by another customer: 91007.")
    ]
    old_identifier: Annotated[LenientText, _described("Older spelling of old_value.")]
    new_identifier: Annotated[LenientText, _described("Older spelling of new_value.")]


# Every field of an item that reading.read_item reads, as the add API spells it.
ITEM_FIELDS = tuple(CustomerItem.__annotations__)
