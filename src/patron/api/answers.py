"""The shapes of Patron's answers, as types: what the api builds, and what the OpenAPI document says.

Each answer is a TypedDict: at run time a plain dict, built once by api.present, api.codec and
api.gateway and serialized at the edge; for the OpenAPI document, pydantic reads the same classes
into JSON Schema (api.openapi.answer_schemas), so the document cannot drift from the code. The
annotations carry what a reader of the document needs: enums from the one code table, patterns,
and a word where a value is not what its name suggests.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, with_config
from typing_extensions import NotRequired, TypedDict

from patron.codes import IDENTITY_ERRORS, INVALID_CLIENT, ITEM_ERRORS, MESSAGES, WARNINGS, Code
from patron.customers.inputs import FRAUD_STATUSES, SOURCES, SUBSCRIPTION_CHANNELS, SUBSCRIPTION_PRIORITIES, TYPES
from patron.customers.model import IDENTIFIERS
from patron.customers.search.query import MAX_COUNTED, MAX_ROWS
from patron.events.names import EVENT_NAMES

# Every answer object is closed: a key the document does not name is a bug the tests catch.
CLOSED = ConfigDict(extra="forbid")
# The v1.1 answers' XML root element.
XML_RESPONSE = ConfigDict(extra="forbid", json_schema_extra={"xml": {"name": "response"}})

TrueFalse = Literal["true", "false"]


def _one_of(values: list[Any], description: str | None = None) -> Any:
    """Values from a table of Patron's, enumerated in the document."""
    return Field(description=description, json_schema_extra={"enum": values})


def code_text(code: Code) -> str:
    """An item-level code as the v1.1 answers spell it: its digits, as a string."""
    return str(int(code))


Timestamp = Annotated[
    str,
    Field(
        description="`YYYY-MM-DD HH:MM:SS` in the org's timezone.",
        pattern=r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$",
        examples=["2024-08-01 07:28:32"],
    ),
]
CountText = Annotated[str, Field(pattern="^[0-9]+$")]


# --- The v1.1 envelope -----------------------------------------------------------------------

_REQUEST_CODES = list(MESSAGES)


@with_config(CLOSED)
class RequestStatus(TypedDict):
    """The request-level outcome; `code` is also the HTTP status."""

    success: TrueFalse
    code: Annotated[int, _one_of([int(code) for code in _REQUEST_CODES])]
    message: Annotated[str, _one_of([MESSAGES[code] for code in _REQUEST_CODES])]
    total: NotRequired[Annotated[CountText, Field(description="Items in the batch (batch answers only).")]]
    success_count: NotRequired[Annotated[CountText, Field(description="Items that succeeded (batch answers only).")]]
    detail: NotRequired[Annotated[str, Field(description="What exactly was wrong (errors only).")]]


@with_config(CLOSED)
class StatusOnly(TypedDict):
    status: RequestStatus


@with_config(XML_RESPONSE)
class ErrorResponse(TypedDict):
    """A request-level failure of the v1.1 endpoints."""

    response: StatusOnly


@with_config(CLOSED)
class Warnings(TypedDict):
    warning: list[Annotated[str, _one_of([code_text(code) for code in WARNINGS])]]


@with_config(CLOSED)
class ItemStatus(TypedDict):
    success: TrueFalse
    code: Annotated[str, _one_of([code_text(code) for code in (Code.ITEM_OK, *ITEM_ERRORS)])]
    message: Annotated[str, Field(description="The code's message; for 1000 followed by each warning's text after `, `.")]
    warnings: Warnings


# --- What add and get say of a customer --------------------------------------------------------


@with_config(CLOSED)
class NamedValue(TypedDict):
    name: str
    value: str


@with_config(CLOSED)
class FieldList(TypedDict):
    field: list[NamedValue]


@with_config(CLOSED)
class PointsSummary(TypedDict):
    """One programme's points and tier; every value is a string. `nextSlabSerialNumber` is `-1` at the top slab."""

    programId: str
    redeemed: str
    expired: str
    returned: str
    adjusted: str
    lifetimePoints: str
    loyaltyPoints: str
    cumulativePurchases: str
    currentSlab: str
    nextSlab: str
    nextSlabSerialNumber: str
    nextSlabDescription: str
    slabSNo: str
    slabExpiryDate: str
    totalPoints: str


@with_config(CLOSED)
class PointsSummaries(TypedDict):
    points_summary: list[PointsSummary]


@with_config(CLOSED)
class Subscription(TypedDict):
    channel: Annotated[str, _one_of(sorted(SUBSCRIPTION_CHANNELS.values()))]
    priority: Annotated[str, _one_of(sorted(SUBSCRIPTION_PRIORITIES.values()))]
    scope: str
    is_subscribed: Literal["0", "1"]


@with_config(CLOSED)
class Subscriptions(TypedDict):
    subscription: list[Subscription]


@with_config(CLOSED)
class CommChannel(TypedDict):
    type: str
    value: str
    primary: TrueFalse
    verified: TrueFalse
    meta: dict[str, Any]


class CustomerIdentity(TypedDict):
    """Who a customer is, as every answer that shows one says it (add, get, search)."""

    user_id: Annotated[int, Field(description="The customer's id, unique in the installation.")]
    firstname: str
    lastname: str
    mobile: Annotated[str | None, Field(description="E.164 digits without `+`.")]
    email: str | None
    external_id: str | None


class CustomerBody(CustomerIdentity):
    """What add and get both say of a customer."""

    lifetime_points: Annotated[int, Field(description="Of the default programme.")]
    loyalty_points: Annotated[int, Field(description="Of the default programme.")]
    current_slab: Annotated[str | None, Field(description="null for NON_LOYALTY customers and orgs without programmes.")]
    tier_expiry_date: Timestamp | None
    points_summaries: PointsSummaries
    lifetime_purchases: int
    registered_on: Timestamp
    updated_on: Timestamp
    type: Annotated[str, _one_of(sorted(TYPES.values()))]
    source: Annotated[str, _one_of(sorted(name.lower() for name in SOURCES.values()))]
    fraud_status: Annotated[str, _one_of(list(FRAUD_STATUSES.values()))]
    reason: str
    custom_fields: FieldList
    extended_fields: FieldList
    subscriptions: Subscriptions


@with_config(CLOSED)
class PointsEffect(TypedDict):
    """Points awarded by a registration rule; `total_points` only for the registering customer,
    `is_referrer` only for the owner of the referral code."""

    awarded_points: int
    total_points: NotRequired[int]
    customer_id: str
    is_referrer: NotRequired[Literal["true"]]
    type: Literal["points"]


@with_config(CLOSED)
class AlternateCurrencyEffect(TypedDict):
    alternate_currency_identifier: str
    alternate_currency_name: str
    awarded_value: str
    type: Literal["alternate_currency"]


@with_config(CLOSED)
class SideEffects(TypedDict):
    effect: list[PointsEffect | AlternateCurrencyEffect]


@with_config(CLOSED)
class AddedCustomer(CustomerBody):
    """A successful add item: the customer as stored now."""

    side_effects: SideEffects
    item_status: ItemStatus


_AS_SENT = Field(description="As sent.")


@with_config(CLOSED)
class FailedItem(TypedDict):
    """A failed add item: the identifiers exactly as sent (null when absent), `user_id` when the
    item was matched to an existing customer, and the error."""

    mobile: Annotated[Any, _AS_SENT]
    email: Annotated[Any, _AS_SENT]
    external_id: Annotated[Any, _AS_SENT]
    user_id: NotRequired[int]
    item_status: ItemStatus


assert tuple(FailedItem.__annotations__)[:3] == IDENTIFIERS, "a failed item echoes every identifier"


@with_config(CLOSED)
class FraudDetails(TypedDict):
    status: str


@with_config(CLOSED)
class CodeAndName(TypedDict):
    code: str | None
    name: str | None


@with_config(CLOSED)
class Identifier(TypedDict):
    type: Annotated[str, _one_of(list(IDENTIFIERS))]
    value: str


@with_config(CLOSED)
class RetrievedCustomer(CustomerBody):
    fraud_details: FraudDetails
    registered_till: CodeAndName
    registered_store: CodeAndName
    associated_with: Annotated[str | None, Field(description="A till code.")]
    referral_code: Annotated[str | None, Field(description="null for NON_LOYALTY customers.")]
    commChannels: list[CommChannel]
    identifiers: list[Identifier]
    item_status: ItemStatus


@with_config(ConfigDict(extra="forbid", json_schema_extra={"minProperties": 2, "maxProperties": 2}))
class MissingCustomer(TypedDict):
    """Not found: the value asked for, under the key it was asked by, and 1012."""

    mobile: NotRequired[str]
    email: NotRequired[str]
    external_id: NotRequired[str]
    id: NotRequired[str]
    item_status: ItemStatus


@with_config(CLOSED)
class AddedCustomers(TypedDict):
    customer: Annotated[list[AddedCustomer | FailedItem], Field(description="One entry per item sent, in order.")]


@with_config(CLOSED)
class AddAnswer(TypedDict):
    status: RequestStatus
    customers: AddedCustomers


@with_config(XML_RESPONSE)
class AddResponse(TypedDict):
    response: AddAnswer


@with_config(CLOSED)
class RetrievedCustomers(TypedDict):
    customer: list[RetrievedCustomer | MissingCustomer]


@with_config(CLOSED)
class GetAnswer(TypedDict):
    status: RequestStatus
    customers: RetrievedCustomers


@with_config(XML_RESPONSE)
class GetResponse(TypedDict):
    response: GetAnswer


# --- customer/update and customer/update_identity (member-care.md §1, §2) ---------------------


@with_config(CLOSED)
class UpdatedCustomer(RetrievedCustomer):
    """A successful update item: the customer as stored now, in customer/get's shape, with the
    update's own item_status (1000, `User Successfully Updated.` and its warnings)."""


@with_config(CLOSED)
class UpdatedCustomers(TypedDict):
    customer: Annotated[
        list[UpdatedCustomer | FailedItem],
        Field(description="The customer sent; each item past the first fails with 1060."),
    ]


@with_config(CLOSED)
class UpdateAnswer(TypedDict):
    status: RequestStatus
    customers: UpdatedCustomers


@with_config(XML_RESPONSE)
class UpdateResponse(TypedDict):
    response: UpdateAnswer


@with_config(CLOSED)
class IdentityItemStatus(TypedDict):
    success: TrueFalse
    code: Annotated[
        str,
        _one_of(
            [code_text(code) for code in (Code.ITEM_OK, Code.IDENTITY_CHANGE_REQUESTED, *ITEM_ERRORS, *IDENTITY_ERRORS)]
        ),
    ]
    message: str
    warnings: Warnings


@with_config(CLOSED)
class IdentityChangeItem(TypedDict):
    """An identity change: 1040 taken for review (`updated` "false"), 1000 applied at once
    (`updated` "true"), or an error. The fields as read on success, as sent on failure."""

    user_id: NotRequired[Annotated[int, Field(description="The customer holding old_value, when found.")]]
    identifier: Annotated[str | None, Field(description="mobile, email or external_id (as sent on failure).")]
    old_value: str | None
    new_value: str | None
    updated: TrueFalse
    item_status: IdentityItemStatus


@with_config(CLOSED)
class IdentityChanges(TypedDict):
    customer: Annotated[list[IdentityChangeItem], Field(description="One entry per item sent, in order.")]


@with_config(CLOSED)
class IdentityAnswer(TypedDict):
    status: RequestStatus
    customers: IdentityChanges


@with_config(XML_RESPONSE)
class IdentityResponse(TypedDict):
    response: IdentityAnswer


# --- customer/search (member-care.md §3) -------------------------------------------------------


@with_config(CLOSED)
class Attributes(TypedDict):
    attribute: Annotated[list[NamedValue], Field(description="The customer's custom fields.")]


@with_config(CLOSED)
class FoundCustomer(CustomerIdentity):
    """A customer a search found; points and slab of the default programme, as customer/get shows them."""

    org_id: int
    loyalty_points: Annotated[int, Field(description="Of the default programme.")]
    lifetime_points: Annotated[int, Field(description="Of the default programme.")]
    current_slab: Annotated[str | None, Field(description="null for NON_LOYALTY customers and orgs without programmes.")]
    registered_on: Timestamp
    registered_by: Annotated[str | None, Field(description="The code of the till that registered the customer.")]
    attributes: Attributes


@with_config(CLOSED)
class FoundCustomers(TypedDict):
    item: Annotated[list[FoundCustomer], Field(description="Newest registration first (then the highest user_id).")]


@with_config(CLOSED)
class SearchPage(TypedDict):
    count: Annotated[int, Field(ge=0, le=MAX_COUNTED, description=f"Every customer that matches, on every page, counted up to {MAX_COUNTED:,}.")]
    count_capped: Annotated[bool, Field(description=f"More than {MAX_COUNTED:,} customers match: `count` says {MAX_COUNTED:,}, to be read as \"{MAX_COUNTED:,}+\"; pages reach only that far.")]
    start: Annotated[int, Field(ge=0, description="How many matches come before this page.")]
    rows: Annotated[int, Field(ge=0, le=MAX_ROWS, description="The page size asked for; `results` holds at most that many.")]
    results: FoundCustomers


@with_config(CLOSED)
class SearchAnswer(TypedDict):
    status: RequestStatus
    customer: SearchPage


@with_config(XML_RESPONSE)
class SearchResponse(TypedDict):
    response: SearchAnswer


# --- The event feed, GET /v1.1/events (events.md §3) -------------------------------------------


@with_config(CLOSED)
class FeedEvent(TypedDict):
    """An event, the same document a webhook or broker sink receives (events.md §1)."""

    eventId: Annotated[str, Field(description="Unique and the same wherever and however often it is sent: the consumer's idempotency key.")]
    eventName: Annotated[str, _one_of(list(EVENT_NAMES))]
    orgId: int
    refId: Annotated[str, Field(description="`<orgId>_<customerId>`.")]
    apiRequestId: Annotated[
        str | None,
        Field(description="The X-Cap-Requestid of the API request that made the change; null for a console user's"
              " (consoleUser) or an import's (source)."),
    ]
    createdAt: Annotated[int, Field(description="Unix milliseconds of the change.")]
    sequence: Annotated[
        int,
        Field(description="Per customer, strictly increasing with each of its events: orders them and shows a gap."),
    ]
    data: Annotated[
        dict[str, Any],
        Field(description="The event's body, by eventName: customerIdentifiers {customerId, instore {mobile, email,"
              " externalId}} and what the change was. Thin (identifiers, names and identifier values null) unless"
              " the caller may read customers."),
    ]
    consoleUser: NotRequired[Annotated[str, Field(description="The member-care console user who made the change.")]]
    source: NotRequired[Annotated[Literal["import"], Field(description="The change came from an import.")]]


@with_config(CLOSED)
class EventsResponse(TypedDict):
    events: Annotated[
        list[FeedEvent],
        Field(description="The org's events after the cursor, oldest first: each customer's in sequence order."),
    ]
    next: Annotated[
        str,
        Field(description="The cursor to pass as `after` next time: after the last event here, or the same cursor"
              " when there was none (poll again with it)."),
    ]


# --- The v2/v3 gateway's answers: {"data": ..., "errors": ...} -------------------------------------


@with_config(CLOSED)
class GatewayError(TypedDict):
    code: Annotated[int, _one_of([INVALID_CLIENT, *(int(code) for code in _REQUEST_CODES)])]
    message: str


@with_config(CLOSED)
class GatewayErrorResponse(TypedDict):
    data: None
    errors: Annotated[list[GatewayError], Field(min_length=1)]


@with_config(CLOSED)
class Token(TypedDict):
    accessToken: Annotated[str, Field(description="Send it in X-CAP-API-OAUTH-TOKEN.")]
    ttlSeconds: Annotated[int, Field(description="The token expires after this (then 498).")]


@with_config(CLOSED)
class TokenResponse(TypedDict):
    data: Token
    errors: None


@with_config(CLOSED)
class UserContextDetails(TypedDict):
    """Only with includeUserContext=true: the USER-CONTEXT-* headers as sent."""

    entityType: str | None
    entityId: str | None
    entitySource: str | None
    entitySourceId: str | None


@with_config(CLOSED)
class ChangedValues(TypedDict):
    previousValue: Any
    currentValue: Any


@with_config(CLOSED)
class AuditEvent(TypedDict):
    eventType: Annotated[
        Literal["CREATE", "UPDATE", "ID_REQUESTED", "ID_APPROVED", "ID_REJECTED", "ID_SUPERSEDED"],
        Field(
            description="ID_*: an identity change asked for, approved, rejected, or superseded (by a newer request or"
            " a change made otherwise; reason says which); its change is an UPDATE."
        ),
    ]
    updatedField: str
    additionalFields: ChangedValues


@with_config(CLOSED)
class AuditRecord(TypedDict):
    requestId: Annotated[str, Field(description="The X-Cap-Requestid of the request that wrote it.")]
    entityType: Literal["CUSTOMER"]
    entityId: Annotated[int, Field(description="The customer's user_id.")]
    createdOn: Timestamp
    updatedByMode: Annotated[
        Literal["API", "MEMBER_CARE"],
        Field(description="MEMBER_CARE: written by a user of the member-care console (consoleUser, reason)."),
    ]
    till: str | None
    apiClient: str | None
    consoleUser: NotRequired[Annotated[str, Field(description="The console user's login (MEMBER_CARE only).")]]
    reason: NotRequired[
        Annotated[
            str,
            Field(
                description="Why they acted, as they wrote it (MEMBER_CARE); on ID_SUPERSEDED, why the request was"
                " superseded, whoever caused it."
            ),
        ]
    ]
    userContextDetails: NotRequired[UserContextDetails]
    events: list[AuditEvent]


@with_config(CLOSED)
class AuditsResponse(TypedDict):
    data: Annotated[list[AuditRecord], Field(description="Newest first.")]
    errors: None


@with_config(CLOSED)
class Probe(TypedDict):
    status: Literal["up", "ready", "database unreachable"]


@with_config(CLOSED)
class ProbeResponse(TypedDict):
    data: Probe
    errors: None


# The answers the OpenAPI document names; every other shape is reached from these.
DOCUMENTED = (
    ErrorResponse,
    AddResponse,
    GetResponse,
    SearchResponse,
    UpdateResponse,
    IdentityResponse,
    GatewayErrorResponse,
    TokenResponse,
    AuditsResponse,
    EventsResponse,
    ProbeResponse,
)
