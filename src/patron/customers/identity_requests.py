"""Identity change requests (member-care.md §2) as plain rules: reading an item, its request, its statuses."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from patron import limits
from patron.codes import HOLDS_NUL, Code
from patron.customers import fields
from patron.customers.lookup import lookup_value
from patron.customers.model import IDENTIFIER_LABELS, IDENTIFIERS, Change, ItemRejected
from patron.customers.reading import INVALID_IDENTIFIER, stored_identifier
from patron.orgs.model import OrgSettings

PENDING = "PENDING"
APPROVED = "APPROVED"
REJECTED = "REJECTED"
SUPERSEDED = "SUPERSEDED"

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


def own_request(request_id: int, login: str, road: str = "in the console") -> str:
    """Why an approval is refused: the four-eyes rule, and the road by which the reviewer asked."""
    return f"request {request_id} was made by {login} {road}: another reviewer must approve it"


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
    # Who stands behind it (Requester): the caller's key, and the console users the org file tied
    # to that caller when it asked, separated by spaces (logins hold none).
    requester: str | None = None
    requester_users: str | None = None
    # The user-context headers of an API request, as sent.
    context_entity_type: str | None = None
    context_entity_id: str | None = None
    context_entity_source: str | None = None
    context_entity_source_id: str | None = None

    @property
    def asked_by(self) -> str:
        """The caller's key: of the request's own record, or, for a request written before it had
        one, of the till, API client or console user it names."""
        return self.requester or requester_key(self.console_user, self.api_client_key, self.till_code)

    @property
    def users(self) -> tuple[str, ...]:
        return tuple((self.requester_users or "").split())


def echo(value: Any) -> str | None:
    """A value as a failed item echoes it: text as sent, anything else null."""
    return fields.text(value)


# What read_change reads of an item, older spellings included.
CHANGE_FIELDS = ("identifier", "old_value", "old_identifier", "new_value", "new_identifier")


def read_change(raw: Any, org: OrgSettings) -> IdentityChange:
    """Read one item, in the current spelling (`identifier` naming the field, `old_value`,
    `new_value`) or the older ones (`old_identifier`/`new_identifier` for the values, or
    `identifier` holding the old value itself, its field read from the value); raises
    ItemRejected: 1007 when the field or the old value cannot be told, 1012 when no customer can
    hold the old value, 1001/1002/1003 when the new value breaks its field's rules; 1098, naming
    the field, when one holds NUL."""
    if not isinstance(raw, dict):
        raise ItemRejected(Code.NO_VALID_IDENTIFIER)
    for key in CHANGE_FIELDS:
        if fields.holds_nul(raw.get(key)):
            raise ItemRejected(Code.TEXT_WITH_NUL, field=key)
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


# Why a reason is refused that holds NUL, which PostgreSQL cannot store: the same on every backend.
NUL_REASON = f"the reason {HOLDS_NUL}"


def decision_reason(reason: Any) -> str:
    """A reviewer's reason, as recorded: required, at most limits.REASON characters."""
    if fields.holds_nul(reason):
        raise ValueError(NUL_REASON)
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


# Who asked (member-care.md §2): four eyes, superseding and the cap on pending requests.


def requester_key(console_user: str | None, api_client_key: str | None, till_code: str | None) -> str:
    """A caller as one key: the console user, else the API client (whatever till it names), else the till."""
    if console_user:
        return f"console:{console_user}"
    if api_client_key:
        return f"client:{api_client_key}"
    return f"till:{till_code or ''}"


@dataclass(frozen=True)
class Requester:
    """Who stands behind a request: the caller's key, the console users the org file ties to it,
    and whether the caller's access group has identity_review."""

    key: str
    users: tuple[str, ...]
    reviews: bool


def tied_users(
    org: OrgSettings, console_user: str | None, api_client_key: str | None, till_code: str | None,
    entity_id: str | None = None,
) -> tuple[str, ...]:
    """The console users behind a caller: the console user itself, those whose org-file entry
    names its till or API client (`tills`, `api_clients`), and the one whose login the
    user-context entity id names."""
    named = (entity_id or "").strip().casefold()
    return tuple(
        user.login
        for user in org.definition.console_users
        if user.login == console_user
        or (till_code is not None and till_code in user.tills)
        or (api_client_key is not None and api_client_key in user.api_clients)
        or (named and user.login.casefold() == named)
    )


def requester_of(
    org: OrgSettings, console_user: str | None, api_client_key: str | None, till_code: str | None,
    entity_id: str | None = None,
) -> Requester:
    if console_user:
        reviews = may_review(org, console_user)
    elif api_client_key:
        client = next((c for c in org.definition.api_clients if c.key == api_client_key), None)
        group = org.access_groups.get(client.access_group) if client else None
        reviews = bool(group and group.identity_review)
    else:
        group = org.access_group_of_till(till_code) if till_code else None
        reviews = bool(group and group.identity_review)
    users = tied_users(org, console_user, api_client_key, till_code, entity_id)
    return Requester(requester_key(console_user, api_client_key, till_code), users, reviews)


def may_supersede(pending: IdentityRequest, requester: Requester) -> bool:
    """Whether a newer request may supersede this pending one: it is the same caller's, or the
    same person's (a console user tied to both callers), or the caller may review requests."""
    return requester.reviews or pending.asked_by == requester.key or bool(set(pending.users) & set(requester.users))


def own_road(org: OrgSettings, request: IdentityRequest, login: str) -> str | None:
    """How the reviewer `login` stands behind `request`, or None when they do not: in the
    console, through a till or API client the org file ties to them (then or now), or named by
    the request's user-context entity id. An approval is refused for each (four eyes)."""
    if request.console_user == login:
        return "in the console"
    user = next((u for u in org.definition.console_users if u.login == login), None)
    if request.api_client_key and (user and request.api_client_key in user.api_clients):
        return f"through API client {request.api_client_key}"
    if request.till_code and (user and request.till_code in user.tills):
        return f"through till {request.till_code}"
    named = (request.context_entity_id or "").strip()
    if named.casefold() == login.casefold():
        return f"as user-context entity id {named}"
    if login in request.users:
        return f"as {request.asked_by}, which the org file tied to them when it asked"
    return None
