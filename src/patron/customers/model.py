"""Plain data of registration: the customer as stored, an item as read, who registers it, what a new
customer's write holds, and an item's outcome."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, TypedDict

from patron.codes import Code, item_error_message, warning_text
from patron.customers import external_ids
from patron.events.model import Event, Origin, Writer, Written
from patron.loyalty.model import LedgerEntry, Membership, SideEffect
from patron.orgs.model import OrgSettings

IDENTIFIERS = ("mobile", "email", "external_id")

# How the API names each identifier inside messages.
IDENTIFIER_LABELS = {"mobile": "Mobile", "email": "Email", "external_id": "External id"}

LOYALTY = "LOYALTY"
NON_LOYALTY = "NON_LOYALTY"


@dataclass
class CustomerFields:
    """A customer's values, all but the id the database gives it: a new customer's as a
    registration plans it, before it is written. Times are naive UTC."""

    org_id: int
    mobile: str | None
    email: str | None
    external_id: str | None
    firstname: str
    lastname: str
    type: str
    source: str
    account_id: str | None
    fraud_status: str
    registered_on: datetime
    updated_on: datetime
    registered_till: str | None
    associated_with: str | None
    referral_code: str | None
    custom_fields: dict[str, str] = field(default_factory=dict)
    extended_fields: dict[str, str] = field(default_factory=dict)
    subscriptions: list[dict[str, Any]] = field(default_factory=list)
    comm_channels: list[dict[str, Any]] = field(default_factory=list)
    # The external id as the org's unique index compares it (external_ids.key): set with the
    # external id by every rule that sets one (resolution.keyed); by default the external id
    # itself, as an org that matches external ids as stored keeps it.
    external_id_key: str | None = None
    # The sequence of its latest event (events.md §1): read, written with a new customer, and
    # moved on only by the store's append of events, never by an update of the customer.
    event_sequence: int = 0

    def __post_init__(self) -> None:
        if self.external_id_key is None:
            self.external_id_key = self.external_id

    def identifier(self, name: str) -> str | None:
        value: str | None = getattr(self, name)
        return value

    def key(self, name: str) -> str | None:
        """An identifier as the org's unique index compares it."""
        return self.external_id_key if name == "external_id" else self.identifier(name)

    @property
    def external_id_skeleton(self) -> str | None:
        """What the external id looks like (external_ids.skeleton): stored, indexed, never read back."""
        return external_ids.skeleton(self.external_id_key)

    @property
    def stored_id(self) -> int | None:
        """Its id once stored; None before."""
        return None

    def stored(self, customer_id: int) -> Customer:
        """The customer as stored under the id the database gave it."""
        return Customer(id=customer_id, **{each.name: getattr(self, each.name) for each in fields(CustomerFields)})


@dataclass
class Customer(CustomerFields):
    """One customer of one org, as stored."""

    id: int = field(kw_only=True)

    @property
    def stored_id(self) -> int:
        return self.id


@dataclass
class CustomerInput:
    """What one item asks for, read and validated. None means "not sent": it changes nothing."""

    mobile: str | None = None
    email: str | None = None
    external_id: str | None = None
    firstname: str | None = None
    lastname: str | None = None
    type: str | None = None
    source: str | None = None
    account_id: str | None = None
    fraud_status: str | None = None
    registered_on: datetime | None = None
    updated_on: datetime | None = None
    registered_till: str | None = None
    associated_with: str | None = None
    referral_code: str | None = None
    custom_fields: dict[str, str] = field(default_factory=dict)
    extended_fields: dict[str, str] = field(default_factory=dict)
    subscriptions: list[dict[str, Any]] | None = None
    comm_channels: list[dict[str, Any]] | None = None
    # A registered_on outside the allowed window: fails a registration, is ignored by an update.
    registered_on_out_of_range: bool = False

    def identifier(self, name: str) -> str | None:
        value: str | None = getattr(self, name)
        return value


@dataclass
class Warnings:
    """Warning codes of one item: once per code, in the order they arose."""

    items: list[tuple[Code, str]] = field(default_factory=list)

    def add(self, code: Code, field_name: str = "") -> None:
        if all(existing != code for existing, _ in self.items):
            self.items.append((code, warning_text(code, field_name)))

    @property
    def codes(self) -> list[Code]:
        return [code for code, _ in self.items]

    def message(self, base: str) -> str:
        return ", ".join([base, *(text for _, text in self.items)])


class StorageUnavailable(Exception):
    """The storage cannot be reached: no item is decided, and the request as a whole is answered
    503 (safe to retry). Every other failure while registering an item fails that item alone."""


class ItemRejected(Exception):
    """The item fails with an item-level error code; nothing of it is written."""

    def __init__(self, code: Code, matched: Customer | None = None, field: str | None = None) -> None:
        # The answer's message is the endpoint's to choose (codes.ITEM_ERRORS, IDENTITY_ERRORS).
        super().__init__(f"item rejected with {int(code)}")
        self.code = code
        # The existing customer the item was matched to, echoed back as user_id.
        self.matched = matched
        # The field the error is about, for a message that names it (`{field}`).
        self.field = field

    @property
    def message(self) -> str:
        return item_error_message(self.code, self.field or "")


class Change(TypedDict):
    """One field's change, as the audit log keeps it: a JSON object, built as one (a registration
    writes one per field a new customer has)."""

    field: str
    previous: Any
    current: Any


class IdentifierTaken(Exception):
    """A unique identifier was written by a concurrent request first."""


@dataclass(frozen=True)
class LookAlike:
    """A customer's external id as the look-alike check reads it: its key and skeleton."""

    customer_id: int
    external_id_key: str
    skeleton: str


@dataclass(frozen=True)
class Caller:
    """Who is registering: the org, the till (and API client) and the user-context headers."""

    org: OrgSettings
    # None for a member-care user in the console, who acts at no till.
    till_code: str | None
    api_client_key: str | None
    request_id: str
    user_context: dict[str, str | None] = field(default_factory=dict)
    # mlp_single_enroll=true: a new member joins every programme, not only the default one.
    all_programmes: bool = False
    # A member-care user acting in the console, and why (member-care.md §4); None for the API.
    console_user: str | None = None
    reason: str | None = None
    # What its events say made the change (events.md §1): the API, the console, an import.
    origin: Origin = "api"

    @property
    def acting_as(self) -> Origin:
        """What made the change: a console user acts in the console, whatever road reached here."""
        return "console" if self.console_user is not None else self.origin

    def writer(self, at: datetime) -> Writer:
        """Who its events say made a change at `at`."""
        return Writer(self.org, self.till_code, self.console_user, at, self.acting_as)

    def written(self, at: datetime) -> Written:
        return Written(self.org.org_id, at, self.request_id, self.acting_as, self.console_user)


@dataclass
class NewCustomer:
    """Everything a registration writes for a customer that does not exist yet."""

    customer: CustomerFields
    changes: list[Change]
    memberships: list[Membership]
    entries: list[LedgerEntry]
    effects: list[SideEffect]
    # A referrer was owed points in a programme it does not belong to.
    unpaid: bool = False
    # The warnings the item is answered with, kept on its audit record.
    warnings: list[Code] = field(default_factory=list)
    # Its events, numbered from 1 in this order (customer.event_sequence is their count).
    events: list[Event] = field(default_factory=list)
