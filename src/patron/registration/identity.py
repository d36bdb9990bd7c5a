"""Identity change requests (member-care.md §2) as plain rules: reading an item, its request, its statuses."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from patron import limits
from patron.codes import Code
from patron.orgs.model import OrgSettings
from patron.registration import fields
from patron.registration.lookup import lookup_value
from patron.registration.model import IDENTIFIER_LABELS, IDENTIFIERS, Change, ItemRejected
from patron.registration.reading import INVALID_IDENTIFIER, stored_identifier

PENDING = "PENDING"
APPROVED = "APPROVED"
REJECTED = "REJECTED"
SUPERSEDED = "SUPERSEDED"
STATUSES = (PENDING, APPROVED, REJECTED, SUPERSEDED)

# The audit's event types of an identity change; the change itself is audited as an UPDATE.
ID_REQUESTED = "ID_REQUESTED"
ID_APPROVED = "ID_APPROVED"
ID_REJECTED = "ID_REJECTED"
ID_SUPERSEDED = "ID_SUPERSEDED"

SUPERSEDED_REASON = "Superseded by a newer request for the same identifier"
# A change made otherwise leaves a request for the value it replaced nothing to do.
APPLIED_REASON = "Superseded by a change of the identifier applied without review"
UPDATED_REASON = "Superseded by an update that changed the identifier"
GONE_REASON = "The customer no longer exists"


class PendingRequestRaced(Exception):
    """A PENDING request for the same customer and identifier was written by a concurrent unit
    first (the partial unique index refused this one): asked again, this one supersedes it."""


class DecisionRefused(Exception):
    """A decision that cannot be made as asked: no such request, no longer pending, no reason,
    a reviewer without identity_review, or the requester approving their own request."""


def taken_reason(identifier: str) -> str:
    """Why an approval was turned into a rejection: the value was taken since it was asked for."""
    return f"{IDENTIFIER_LABELS[identifier]} is now held by another customer"


def changed_reason(identifier: str, now: str | None) -> str:
    """Why an approval was turned into a rejection: the customer's value is no longer the one the
    request would replace."""
    return f"{IDENTIFIER_LABELS[identifier]} changed since the request (now {now or 'none'})"


def own_request(request_id: int, login: str) -> str:
    """Why an approval is refused: the four-eyes rule."""
    return f"request {request_id} was made by {login}: another reviewer must approve it"


@dataclass(frozen=True)
class IdentityChange:
    """One item of customer/update_identity, read: which identifier, from what, to what (stored forms)."""

    identifier: str
    old_value: str
    new_value: str

    def audited(self) -> list[Change]:
        return [{"field": self.identifier, "previous": self.old_value, "current": self.new_value}]


@dataclass(frozen=True)
class IdentityRequest:
    """A row of identity_change_requests: a change asked for, and what became of it."""

    org_id: int
    id: int | None
    customer_id: int
    identifier: str
    old_value: str | None
    new_value: str
    status: str
    requested_at: datetime
    request_id: str
    till_code: str | None = None
    api_client_key: str | None = None
    console_user: str | None = None
    reason: str | None = None
    decided_at: datetime | None = None
    decided_by: str | None = None
    decision_reason: str | None = None


class IdentityRequestRepository(Protocol):
    """The identity change requests of the orgs, inside a unit of work; every call names its org."""

    async def supersede(
        self, org_id: int, customer_id: int, identifier: str, at: datetime, reason: str
    ) -> list[IdentityRequest]:
        """Mark the customer's PENDING request for this identifier SUPERSEDED, if it has one; the
        requests so marked."""

    async def insert(self, request: IdentityRequest) -> IdentityRequest:
        """Write a new request; raises PendingRequestRaced when a PENDING one for the same customer
        and identifier was written by a concurrent unit first."""

    async def get(self, org_id: int, request_id: int) -> IdentityRequest | None: ...

    async def decide(
        self, org_id: int, request_id: int, status: str, at: datetime, decided_by: str, reason: str
    ) -> IdentityRequest | None:
        """Settle a PENDING request; None when it is not (or no longer) PENDING."""

    async def pending(self, org_id: int, limit: int, offset: int) -> list[IdentityRequest]: ...

    async def count_pending(self, org_id: int) -> int: ...

    async def of_customer(self, org_id: int, customer_id: int, limit: int) -> list[IdentityRequest]: ...


def echo(value: Any) -> str | None:
    """A value as a failed item echoes it: text as sent, anything else null."""
    return fields.text(value)


def read_change(raw: Any, org: OrgSettings) -> IdentityChange:
    """Read one item, in the current spelling (`identifier` naming the field, `old_value`,
    `new_value`) or the older ones (`old_identifier`/`new_identifier` for the values, or
    `identifier` holding the old value itself, its field read from the value); raises
    ItemRejected: 1007 when the field or the old value cannot be told, 1012 when no customer can
    hold the old value, 1001/1002/1003 when the new value breaks its field's rules."""
    if not isinstance(raw, dict):
        raise ItemRejected(Code.NO_VALID_IDENTIFIER)
    named = _present(raw, "identifier")
    old = _present(raw, "old_value", "old_identifier")
    new = _present(raw, "new_value", "new_identifier")
    name = named.strip().lower() if isinstance(named, str) else None
    if name not in IDENTIFIERS:
        if old is not None and named is not None:
            raise ItemRejected(Code.NO_VALID_IDENTIFIER)  # a field name Patron does not know
        old = named if old is None else old
        name = infer_identifier(old, org) if old is not None else None
    if name is None or old is None:
        raise ItemRejected(Code.NO_VALID_IDENTIFIER)
    old_value = lookup_value(name, old, org)
    if old_value is None:
        raise ItemRejected(Code.CUSTOMER_NOT_FOUND)
    new_value = stored_identifier(name, new, org) if new is not None else None
    if new_value is None:
        raise ItemRejected(INVALID_IDENTIFIER[name])
    return IdentityChange(name, str(old_value), new_value)


def sent_fields(raw: Any) -> dict[str, str | None]:
    """What a failed item echoes: the three fields as sent, older spellings included."""
    if not isinstance(raw, dict):
        return {"identifier": None, "old_value": None, "new_value": None}
    return {
        "identifier": echo(_present(raw, "identifier")),
        "old_value": echo(_present(raw, "old_value", "old_identifier")),
        "new_value": echo(_present(raw, "new_value", "new_identifier")),
    }


def infer_identifier(value: Any, org: OrgSettings) -> str:
    """The field an old value belongs to, read from the value: an `@` makes it an email, a valid
    mobile of the org's countries a mobile, anything else an external id."""
    as_text = fields.text(value) or ""
    if "@" in as_text:
        return "email"
    if lookup_value("mobile", as_text, org) is not None:
        return "mobile"
    return "external_id"


def _present(raw: dict[str, Any], *keys: str) -> Any:
    """The first of these keys that gives a value (null and blank text give none)."""
    for key in keys:
        value = raw.get(key)
        if value is not None and not (isinstance(value, str) and not value.strip()):
            return value
    return None


def decision_reason(reason: Any) -> str:
    """A reviewer's reason, as recorded: required, at most limits.REASON characters."""
    text = fields.text(reason)
    text = text.strip() if text else ""
    if not text:
        raise ValueError("a reason is required")
    if len(text) > limits.REASON:
        raise ValueError(f"the reason is longer than {limits.REASON} characters")
    return text


def may_review(org: OrgSettings, login: str) -> bool:
    """Whether this console user of the org belongs to an access group with identity_review."""
    user = next((user for user in org.definition.console_users if user.login == login), None)
    group = org.access_groups.get(user.access_group) if user else None
    return bool(group and group.identity_review)
