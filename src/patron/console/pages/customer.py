"""A customer's page, read in one snapshot: the profile, identifiers, referrals, memberships, ledger,
identity change requests and audit timeline; and its two forms, the profile's edit and an
identifier's change request."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from patron import limits
from patron.api.context import utc_now
from patron.codes import HOLDS_NUL
from patron.console import outcome
from patron.console.guards import action, page, pending_count
from patron.console.pages.identity_requests import own_requests
from patron.console.sessions import Flash, Signed
from patron.console.web import NOT_FOUND, Refused, flash_to, render, request_id, services
from patron.customers import hints, identity_review, lookup, registration
from patron.customers.audit import AuditRecord, audit_trail
from patron.customers.identity_requests import IdentityRequest
from patron.customers.model import IDENTIFIER_LABELS, IDENTIFIERS, Caller, Customer
from patron.customers.ports import ConsoleStorage, ConsoleUnit, LedgerLine, Referral
from patron.loyalty.model import Membership
from patron.orgs.model import OrgSettings
from patron.orgs.policy import CustomField, ExtendedField, Program, Slab

# Ledger rows and referrals a customer's page lists, newest first.
LISTED = 100
# A NUL is no text of any form: PostgreSQL cannot store one, so it is refused on every backend.
NUL_REFUSED = f"{HOLDS_NUL}."


@dataclass(frozen=True)
class CustomerRecord:
    """What a customer's page shows, all of one moment."""

    customer: Customer
    memberships: list[Membership]
    ledger: list[LedgerLine]
    referred_by: Referral | None
    referred: list[Referral]
    requests: list[IdentityRequest]
    audits: list[AuditRecord] | None  # None: the user's access group reads no audit trail


@dataclass(frozen=True)
class CustomerPage:
    page: CustomerRecord
    c: Customer
    programs: dict[int, tuple[Program | None, Slab | None]]  # each membership's programme and slab
    identifiers: tuple[str, ...]
    labels: dict[str, str]
    custom_fields: list[CustomField]
    extended_fields: list[ExtendedField]
    reason_limit: int
    own: set[int | None]  # the pending requests the user stands behind: Reject only
    # A refused form, as sent, with its errors by field; which form to show open.
    form: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    open_form: str = ""
    # Values the profile's edit sent but could not save, by form key: why, in a sentence.
    not_saved: dict[str, str] = field(default_factory=dict)


class _Lent:
    """One unit lent to the domain's readers as their storage: what they read, they read in it."""

    def __init__(self, unit: ConsoleUnit) -> None:
        self.unit = unit

    def unit_of_work(self, *, readonly: bool = False) -> AbstractAsyncContextManager[ConsoleUnit]:
        return nullcontext(self.unit)

    async def find_with_memberships(
        self, org_id: int, field: str, values: list[str | int]
    ) -> dict[str | int, tuple[Customer, list[Membership]]]:
        return await self.unit.customers.find_many_with_memberships(org_id, field, values)


async def read_customer(storage: ConsoleStorage, org: OrgSettings, customer_id: int, audits: bool) -> CustomerRecord | None:
    """The org's customer and all its page shows, in one snapshot; None when the org has no such customer."""
    org_id = org.org_id
    async with storage.snapshot() as unit:
        lent = _Lent(unit)
        # customer/get's look-up by user id: the customer and their memberships.
        (found,) = await lookup.look_up(org, "id", [str(customer_id)], lent)
        if found.customer is None:
            return None
        return CustomerRecord(
            customer=found.customer,
            memberships=found.memberships,
            ledger=await unit.console.ledger(org_id, customer_id, LISTED),
            referred_by=await unit.console.referred_by(org_id, customer_id),
            referred=await unit.console.referred(org_id, customer_id, LISTED),
            requests=await unit.identity_requests.of_customer(org_id, customer_id, identity_review.PAGE),
            audits=await audit_trail(org_id, customer_id, lent) if audits else None,
        )


def _customer_id(request: Request) -> int:
    raw: str = request.path_params["user_id"]
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise Refused(404, NOT_FOUND)
    return int(raw)


async def _record(request: Request, signed: Signed, customer_id: int) -> CustomerRecord:
    storage: ConsoleStorage = services(request).storage
    record = await read_customer(storage, signed.org, customer_id, signed.access.audit_trail)
    if record is None:
        raise Refused(404, NOT_FOUND)
    return record


def _programs(org: OrgSettings, memberships: list[Membership]) -> dict[int, tuple[Program | None, Slab | None]]:
    shown: dict[int, tuple[Program | None, Slab | None]] = {}
    for membership in memberships:
        program = org.programs.get(membership.program_id)
        slab = next((s for s in program.slabs if s.serial == membership.slab_serial), None) if program else None
        shown[membership.program_id] = (program, slab)
    return shown


async def _render(
    request: Request, signed: Signed, record: CustomerRecord, status: int = 200, form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None, open_form: str = "", not_saved: dict[str, str] | None = None,
    message: Flash | None = None,
) -> Response:
    org = signed.org
    data = CustomerPage(
        page=record, c=record.customer, programs=_programs(org, record.memberships), identifiers=IDENTIFIERS,
        labels=IDENTIFIER_LABELS, custom_fields=org.definition.custom_fields,
        extended_fields=org.definition.extended_fields, reason_limit=limits.REASON,
        own=own_requests(signed, record.requests), form=form or {}, errors=errors or {}, open_form=open_form,
        not_saved=not_saved or {},
    )
    pending = await pending_count(request, signed)
    return render(request, "customer.html", signed, data, status=status, pending=pending, message=message)


@page(requires="read")
async def customer_page(request: Request, signed: Signed) -> Response:
    return await _render(request, signed, await _record(request, signed, _customer_id(request)))


async def _submitted(
    request: Request, signed: Signed, form: dict[str, str]
) -> tuple[int, CustomerRecord, str, dict[str, str]]:
    """A form posted about a customer: its id, its record as it is now, the reason given, and the
    errors found so far (the reason's, if any)."""
    customer_id = _customer_id(request)
    record = await _record(request, signed, customer_id)
    errors: dict[str, str] = {}
    reason = _reason(form, errors)
    return customer_id, record, reason, errors


def _reason(form: dict[str, str], errors: dict[str, str]) -> str:
    reason = form.get("reason", "").strip()
    if "\x00" in reason:
        errors["reason"] = f"The reason {NUL_REFUSED}"
    elif not reason:
        errors["reason"] = "Give a reason: it is kept in the customer's audit trail."
    elif len(reason) > limits.REASON:
        errors["reason"] = f"The reason is longer than {limits.REASON} characters."
    return reason


def _profile_label(key: str, org: OrgSettings) -> str | None:
    """A field of the profile form as its label names it; None for any other key."""
    kind, _, name = key.partition(".")
    if key in ("firstname", "lastname") or (kind in ("custom", "extended") and name):
        return outcome.label_of(key, org)
    return None


def _caller(request: Request, signed: Signed, reason: str) -> Caller:
    return Caller(
        org=signed.org,
        till_code=None,
        api_client_key=None,
        request_id=request_id(request),
        console_user=signed.login,
        reason=reason,
    )


def _changed_fields(form: dict[str, str], customer: Customer, org: OrgSettings) -> dict[str, Any]:
    """The profile's fields the form changes, as customer/update's item names them."""
    item: dict[str, Any] = {}
    for name in ("firstname", "lastname"):
        if name in form and form[name].strip() != (getattr(customer, name) or ""):
            item[name] = form[name].strip()
    custom = [
        {"name": f.name, "value": form[f"custom.{f.name}"].strip()}
        for f in org.definition.custom_fields
        if f"custom.{f.name}" in form and form[f"custom.{f.name}"].strip() != customer.custom_fields.get(f.name, "")
    ]
    extended = [
        {"name": f.name, "value": form[f"extended.{f.name}"].strip()}
        for f in org.definition.extended_fields
        if f"extended.{f.name}" in form and form[f"extended.{f.name}"].strip() != customer.extended_fields.get(f.name, "")
    ]
    if custom:
        item["custom_fields"] = {"field": custom}
    if extended:
        item["extended_fields"] = {"field": extended}
    return item


@action(requires="write")
async def edit_profile(request: Request, signed: Signed, form: dict[str, str]) -> Response:
    customer_id, record, reason, errors = await _submitted(request, signed, form)
    holding = [key for key, value in form.items() if "\x00" in value and _profile_label(key, signed.org)]
    if holding:
        errors["profile"] = f"{_profile_label(holding[0], signed.org)} {NUL_REFUSED}"
    # The customer is named by its id, not by an identifier: the one on the page, whoever holds
    # its values now and whatever the org's rules for them say today.
    item = _changed_fields(form, record.customer, signed.org)
    if not item and not errors:
        errors["profile"] = "Nothing was changed."
    if errors:
        return await _render(request, signed, record, 400, form, errors, "profile")
    now = utc_now()
    result = await registration.update_customer_by_id(
        customer_id, item, _caller(request, signed, reason), services(request).storage, now
    )
    if not result.success:
        errors["profile"] = f"{result.message} (code {int(result.code)})"
        return await _render(request, signed, await _record(request, signed, customer_id), 400, form, errors, "profile")
    # A value the update skipped (its warning) is not saved: said in amber, and the form shown
    # again with what was typed, marked, the rest as now stored.
    skipped = outcome.not_saved(item, signed.org, now, result.customer or record.customer)
    said = outcome.message(item, skipped, result.warnings, signed.org)
    if not skipped:
        return flash_to(request, f"/console/customers/{customer_id}", said.text, said.level)
    typed = {**{s.key: s.value for s in skipped}, "reason": reason}
    return await _render(
        request, signed, await _record(request, signed, customer_id), 200, typed, None, "profile",
        {s.key: s.sentence() for s in skipped}, said,
    )


@action(requires="write")
async def request_identity_change(request: Request, signed: Signed, form: dict[str, str]) -> Response:
    customer_id, record, reason, errors = await _submitted(request, signed, form)
    name = form.get("identifier", "")
    new_value = form.get("new_value", "").strip()
    if name not in IDENTIFIERS:
        errors["identifier"] = "Choose which identifier changes."
    elif not record.customer.identifier(name):
        errors["identifier"] = (
            f"The customer has no {IDENTIFIER_LABELS[name].lower()} to change; one is added through the API's"
            " customer/update."
        )
    if "\x00" in new_value:
        errors["new_value"] = f"The new value {NUL_REFUSED}"
    elif not new_value:
        errors["new_value"] = "Give the new value."
    if errors:
        return await _render(request, signed, record, 400, form, errors, "identity")
    # By id: the old value is the customer's own as it is when the request is written.
    result = await identity_review.request_change_of(
        customer_id, name, new_value, _caller(request, signed, reason), services(request).storage, utc_now()
    )
    if not result.success:
        # With why, when the rule that refused the value said (a mobile without its country code).
        errors["new_value"] = " ".join([f"{result.message} (code {int(result.code)})", *hints.current()])
        return await _render(request, signed, await _record(request, signed, customer_id), 400, form, errors, "identity")
    return flash_to(request, f"/console/customers/{customer_id}", result.message)


ROUTES = [
    Route("/customers/{user_id}", customer_page, methods=["GET"]),
    Route("/customers/{user_id}/profile", edit_profile, methods=["POST"]),
    Route("/customers/{user_id}/identity", request_identity_change, methods=["POST"]),
]
