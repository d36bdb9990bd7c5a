"""Registering a batch of items: each item atomic and independent, resolved again on a race."""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from patron.codes import REGISTERED, UPDATED, USER_UPDATED, Code, item_error_message
from patron.customers import external_ids, fields, resolution
from patron.customers.identity_requests import ID_SUPERSEDED, UPDATED_REASON, IdentityRequest
from patron.customers.model import (
    IDENTIFIER_LABELS,
    IDENTIFIERS,
    LOYALTY,
    NON_LOYALTY,
    Caller,
    Change,
    Customer,
    CustomerFields,
    CustomerInput,
    IdentifierTaken,
    ItemRejected,
    LookAlike,
    NewCustomer,
    StorageUnavailable,
    Warnings,
)
from patron.customers.ports import CustomerRepository, Repositories, Storage
from patron.customers.reading import read_item
from patron.events import build
from patron.events.model import Event
from patron.loyalty import rules
from patron.loyalty.model import POINTS, LedgerEntry, Membership, SideEffect
from patron.orgs.model import OrgSettings
from patron.orgs.policy import Configs

log = logging.getLogger("patron.customers")

# A lost race is resolved again as if the item had arrived second; a second loss in a row
# would need a third writer on the same identifiers, so a few attempts are plenty.
MAX_ATTEMPTS = 5


def looks_alike(customer: CustomerFields, others: Sequence[LookAlike]) -> bool:
    """Whether the customer's external id looks like another customer's but differs from it by a
    letter of another script (external_ids.across_scripts): warned of, never merged."""
    key, skeleton = customer.external_id_key, customer.external_id_skeleton
    return key is not None and any(
        other.skeleton == skeleton and other.customer_id != customer.stored_id and external_ids.across_scripts(key, other.external_id_key)
        for other in others
    )


@dataclass
class ItemResult:
    code: Code
    message: str
    warnings: Warnings
    customer: Customer | None = None
    created: bool = False
    sent: dict[str, Any] = field(default_factory=dict)
    memberships: list[Membership] = field(default_factory=list)
    side_effects: list[SideEffect] = field(default_factory=list)
    # An existing customer the item would leave as stored: nothing was written (answered as an update).
    unchanged: bool = False

    @property
    def success(self) -> bool:
        return self.code == Code.ITEM_OK


async def register(
    raw_items: list[Any],
    caller: Caller,
    storage: Storage,
    now: datetime,
    *,
    batch_limit: int | None = None,
    updating: bool = False,
) -> list[ItemResult]:
    """Process items in order; each is atomic and independent, and a later item sees what an
    earlier one wrote. `updating` (customer/update): an item only ever updates the customer it
    names, never creates one (1012), and needs none of the identifiers a registration requires.

    Most registrations are of new customers, so the items that would create one whatever else the
    batch holds (no referral, no identifier shared with another item) are written first, all in one
    statement that writes each only if none of its identifiers is taken: exactly when identity
    resolution would create it. Those left, and every other item, are then resolved in order. As
    an item written early touches no identifier that another item names, the order is unchanged
    in effect.
    """
    limit = batch_limit or caller.org.configs.BATCH_LIMIT
    results: list[ItemResult | None] = [None] * len(raw_items)
    readings: dict[int, tuple[CustomerInput, Warnings]] = {}
    for position, raw in enumerate(raw_items):
        try:
            if position >= limit:
                raise ItemRejected(Code.BATCH_LIMIT_EXCEEDED)
            readings[position] = read_item(raw, caller.org, caller.till_code, now, registering=not updating)
        except ItemRejected as rejected:
            results[position] = _failure(raw, rejected.code, field=rejected.field)
        except Exception:  # noqa: BLE001 - a fault of Patron's fails this item alone
            results[position] = _not_processed(raw, caller, position, "reading")

    independent = [] if updating else _independent_new(readings, caller.org.configs)
    if independent:
        created = await _create_if_new({p: readings[p] for p in independent}, raw_items, caller, storage, now)
        for position, result in created.items():
            results[position] = result

    for position, (item, warnings) in readings.items():
        if results[position] is None:
            results[position] = await _resolve_and_write(
                position, raw_items[position], item, warnings, caller, storage, now, updating
            )
    return [result for result in results if result is not None]


async def update_customer_by_id(
    customer_id: int, raw_fields: Any, caller: Caller, storage: Storage, now: datetime
) -> ItemResult:
    """The console's edit (member-care.md §4): customer/update's rules applied to exactly the
    customer of this id, locked as it is now, whatever its identifiers hold or the org's rules
    for them say today; 1012 when there is no such customer (any more). The item needs no
    identifier; one it sends is applied as an update applies it."""
    try:
        item, warnings = read_item(raw_fields, caller.org, caller.till_code, now, registering=False, naming=False)
    except ItemRejected as rejected:
        return _failure(raw_fields, rejected.code, field=rejected.field)
    return await _resolve_and_write(0, raw_fields, item, warnings, caller, storage, now, True, customer_id)


def _independent_new(readings: dict[int, tuple[CustomerInput, Warnings]], configs: Configs) -> list[int]:
    """Positions of items that create a customer if their identifiers are free: no referral, a
    valid registration date, and no identifier value that another item also names (as the
    unique indexes compare them: two case variants of an external id, where they are one)."""
    keys = {
        position: [
            (name, resolution.identifier_key(name, value, configs))
            for name in IDENTIFIERS
            if (value := item.identifier(name)) is not None
        ]
        for position, (item, _) in readings.items()
    }
    named = Counter(key for item_keys in keys.values() for key in item_keys)
    return [
        position
        for position, (item, _) in readings.items()
        if item.referral_code is None
        and not item.registered_on_out_of_range
        and all(named[key] == 1 for key in keys[position])
    ]


async def _create_if_new(
    readings: dict[int, tuple[CustomerInput, Warnings]],
    raw_items: list[Any],
    caller: Caller,
    storage: Storage,
    now: datetime,
) -> dict[int, ItemResult]:
    """Write the items as new customers where none of their identifiers is taken; the results of
    those written, and of those that could not be planned. When the statement that writes them
    together fails, none is written, and each is left to be resolved and written on its own."""
    # The items of a request mostly join on one day, and all in the same programmes.
    welcomes: dict[date, rules.Joining] = {}
    results: dict[int, ItemResult] = {}
    planned: dict[int, NewCustomer] = {}
    for position, (item, warnings) in readings.items():
        try:
            planned[position] = _plan_new(item, caller, now, welcomes)
            planned[position].warnings = warnings.codes
        except Exception:  # noqa: BLE001 - a fault of Patron's fails this item alone
            results[position] = _not_processed(raw_items[position], caller, position, "planning")
    if not planned:
        return results
    answered = await _warned_of_look_alikes(planned, readings, caller, storage)
    try:
        new_ids = await storage.insert_new(list(planned.values()), caller, now)
    except StorageUnavailable:
        raise
    except Exception:  # noqa: BLE001 - the items go again one by one, so that only a faulty one fails
        log.warning(
            "request %s: writing %d new customers together failed; each is written on its own",
            caller.request_id, len(planned), exc_info=True,
        )
        return results
    for (position, new), new_id in zip(planned.items(), new_ids, strict=True):
        if new_id is None:
            continue
        for membership in new.memberships:
            membership.customer_id = new_id
        warnings = answered.get(position) or readings[position][1]
        results[position] = ItemResult(
            code=Code.ITEM_OK,
            message=warnings.message(REGISTERED),
            warnings=warnings,
            customer=new.customer.stored(new_id),
            created=True,
            memberships=new.memberships,
            side_effects=[rules.for_customer(effect, new_id) for effect in new.effects],
        )
    return results


async def _warned_of_look_alikes(
    planned: dict[int, NewCustomer], readings: dict[int, tuple[CustomerInput, Warnings]], caller: Caller,
    storage: Storage,
) -> dict[int, Warnings]:
    """The warnings of the new customers whose external id looks like another customer's in
    another script (EXTERNAL_ID_LOOKS_ALIKE), by position: one indexed look-up for the request,
    none when no item has an external id. Each item's own warnings are copied: should it not be
    written here, it is resolved again without this one."""
    skeletons = [skeleton for new in planned.values() if (skeleton := new.customer.external_id_skeleton) is not None]
    others = await storage.look_alikes(caller.org.org_id, skeletons) if skeletons else []
    answered: dict[int, Warnings] = {}
    for position, new in planned.items() if others else ():
        if looks_alike(new.customer, others):
            warnings = readings[position][1]
            answered[position] = dataclasses.replace(warnings, items=list(warnings.items))
            answered[position].add(Code.EXTERNAL_ID_LOOKS_ALIKE, IDENTIFIER_LABELS["external_id"])
            new.warnings = answered[position].codes
    return answered


def _plan_new(
    item: CustomerInput,
    caller: Caller,
    now: datetime,
    welcomes: dict[date, rules.Joining],
    referrer_memberships: list[Membership] | None = None,
) -> NewCustomer:
    """The customer the item creates, enrolled and rewarded (and its referrer, when referred and
    given); its id comes from the database. `welcomes`: what an unreferred new member gets, by the
    day it joins, worked out once for a request."""
    customer = resolution.create(caller.org.org_id, item, caller.till_code, now, caller.org.configs)
    writer = caller.writer(now)
    if customer.type != LOYALTY:
        new = NewCustomer(customer, resolution.changes(None, customer, caller.org.tz), [], [], [])
    else:
        joining = _joining(customer, caller, fields.local_date(customer.registered_on, caller.org.tz), welcomes,
                           referrer_memberships)
        new = NewCustomer(
            customer, resolution.changes(None, customer, caller.org.tz), joining.new_memberships(),
            list(joining.entries), list(joining.effects), joining.unpaid,
        )
    new.events = [build.customer_added(customer, writer), *_points_events(customer, new.entries, new.memberships, writer)]
    customer.event_sequence = len(new.events)
    return new


def _points_events(
    customer: CustomerFields, entries: list[LedgerEntry], memberships: list[Membership], writer: build.Writer
) -> list[Event]:
    """pointsIssued for each of the customer's own entries (none of a referrer's), with the points
    of its membership after them."""
    balances = {m.program_id: m.loyalty_points for m in memberships}
    return [
        build.points_issued(customer, entry, balances.get(entry.program_id), writer)
        for entry in entries
        if entry.customer_id in (None, customer.stored_id) and entry.amount
    ]


def _joining(
    customer: CustomerFields,
    caller: Caller,
    joined_on: date,
    welcomes: dict[date, rules.Joining],
    referrer_memberships: list[Membership] | None,
) -> rules.Joining:
    """A customer becomes a member: its referral code, and what it gets on joining on that day."""
    org = caller.org
    customer.referral_code = rules.new_referral_code()
    if referrer_memberships is not None:
        return rules.Joining.of(org.definition, org.programs, org.org_id, joined_on, caller.all_programmes,
                                referrer_memberships)
    welcome = welcomes.get(joined_on)
    if welcome is None:
        welcome = welcomes[joined_on] = rules.Joining.of(
            org.definition, org.programs, org.org_id, joined_on, caller.all_programmes
        )
    return welcome


async def _resolve_and_write(
    position: int,
    raw: Any,
    item: CustomerInput,
    warnings: Warnings,
    caller: Caller,
    storage: Storage,
    now: datetime,
    updating: bool = False,
    customer_id: int | None = None,
) -> ItemResult:
    try:
        for _ in range(MAX_ATTEMPTS):
            try:
                copied = dataclasses.replace(warnings, items=list(warnings.items))
                return await _write(item, copied, caller, storage, now, updating, customer_id)
            except IdentifierTaken:
                continue
            except ItemRejected as rejected:
                return _failure(raw, rejected.code, rejected.matched, rejected.field)
        raise RuntimeError(f"identity resolution lost {MAX_ATTEMPTS} races in a row")
    except StorageUnavailable:
        raise
    except Exception:  # noqa: BLE001 - the unit of work rolled back: this item alone fails
        return _not_processed(raw, caller, position, "writing")


async def _write(
    item: CustomerInput, warnings: Warnings, caller: Caller, storage: Storage, now: datetime, updating: bool = False,
    customer_id: int | None = None,
) -> ItemResult:
    org = caller.org
    item = dataclasses.replace(item)
    sent = {name: value for name in IDENTIFIERS if (value := item.identifier(name)) is not None}
    keys = resolution.identifier_keys(sent, org.configs)
    async with storage.unit_of_work() as repositories:
        customers, loyalty = repositories.customers, repositories.loyalty
        if customer_id is None:
            holders = await customers.holders(org.org_id, keys)
            target = resolution.resolve(item, holders, org.configs, warnings)
        else:
            target, holders = await _named_by_id(repositories, org.org_id, customer_id, keys)
        joining: rules.Joining | None = None
        referrer: Customer | None = None
        if target is None and updating:
            raise ItemRejected(Code.CUSTOMER_NOT_FOUND)
        if target is None:
            joins = resolution.new_type(item) == LOYALTY
            referrer = await _referrer(repositories, caller, item, None, now, warnings) if joins else None
            new = _plan_new(item, caller, now, {}, await _memberships_of(repositories, caller, referrer))
            await _warn_of_look_alikes(customers, org.org_id, None, new.customer, warnings)
            customer = await customers.insert(new.customer, now)
            for event in new.events:
                event.customer_id = customer.id
            await repositories.events.append_new(caller.written(now), new.events)
            if referrer is not None:
                await loyalty.record_referral(org.org_id, customer.id, referrer.id, now)
            if new.memberships:
                joining = rules.Joining(tuple(new.memberships), tuple(new.entries), tuple(new.effects), new.unpaid)
            changes, event_type, message = new.changes, "CREATE", REGISTERED
        else:
            customer = resolution.update(target, item, holders, org.configs, now, warnings)
            await _warn_of_look_alikes(customers, org.org_id, target, customer, warnings)
            if target.type == NON_LOYALTY and customer.type == LOYALTY:
                referrer = await _referrer(repositories, caller, item, target, now, warnings)
                referrer_memberships = await _memberships_of(repositories, caller, referrer)
                joining = _joining(customer, caller, fields.local_date(now, org.tz), {}, referrer_memberships)
            event_type, message = "UPDATE", USER_UPDATED if updating else UPDATED
            if changes_nothing(target, customer, joining):
                # Decided on the customer as this unit read it, locked: a concurrent change is either
                # in it already or waits for this unit, which writes nothing.
                return ItemResult(
                    code=Code.ITEM_OK,
                    message=warnings.message(message),
                    warnings=warnings,
                    customer=target,
                    memberships=await loyalty.memberships(org.org_id, target.id),
                    unchanged=True,
                )
            await customers.update(customer, now)
            changes = resolution.changes(target, customer, caller.org.tz)
            await emit(repositories, caller, now, [build.customer_updated(customer, changes, caller.writer(now))])
            await _supersede_changed(repositories, caller, target, customer, now)
        if joining is not None and joining.unpaid:
            warnings.add(Code.POINTS_NOT_AWARDED)
        await customers.record_audit(caller, customer, event_type, changes, now, warnings.codes)
        if joining is not None:
            memberships, entries, effects = joining.for_member(customer.id)
            await loyalty.join(memberships, now)
            await loyalty.append(entries, caller.request_id, now)
            writer = caller.writer(now)
            # A new customer's own points were in its events already; an existing one joining now gets them here.
            issued = [] if target is None else _points_events(customer, entries, memberships, writer)
            # The only other customer a joining credits is its referrer.
            for entry in entries:
                if referrer is not None and entry.customer_id == referrer.id and entry.currency == POINTS:
                    balance = await loyalty.credit(org.org_id, referrer.id, entry.program_id, entry.amount)
                    if entry.amount:
                        issued.append(build.points_issued(referrer, entry, balance, writer))
            await emit(repositories, caller, now, issued)
        else:
            memberships, effects = await loyalty.memberships(org.org_id, customer.id), []
    return ItemResult(
        code=Code.ITEM_OK,
        message=warnings.message(message),
        warnings=warnings,
        customer=customer,
        created=target is None,
        memberships=memberships,
        side_effects=effects,
    )


def changes_nothing(before: Customer, after: Customer, joining: rules.Joining | None) -> bool:
    """Whether an update's plan writes nothing: the customer as stored in every value but updated_on
    (resolution.unchanged), and no programme joined, so no membership, reward or referral either.
    Then there is no UPDATE, no audit record and no event, and updated_on keeps its value."""
    return joining is None and resolution.unchanged(before, after)


async def emit(repositories: Repositories, caller: Caller, now: datetime, events: Sequence[Event | None]) -> None:
    """Write the unit's events of existing customers in it (an update that changed nothing has none)."""
    await repositories.events.append(caller.written(now), [event for event in events if event is not None])


async def _warn_of_look_alikes(
    customers: CustomerRepository, org_id: int, before: Customer | None, after: CustomerFields, warnings: Warnings
) -> None:
    """Warn (EXTERNAL_ID_LOOKS_ALIKE) when the external id the item gives the customer looks like
    another customer's in another script; found by the skeleton's index, not by a scan."""
    skeleton = after.external_id_skeleton
    if skeleton is None or (before is not None and before.external_id_key == after.external_id_key):
        return
    if looks_alike(after, await customers.look_alikes(org_id, [skeleton])):
        warnings.add(Code.EXTERNAL_ID_LOOKS_ALIKE, IDENTIFIER_LABELS["external_id"])


async def _named_by_id(
    repositories: Repositories, org_id: int, customer_id: int, keys: dict[str, str]
) -> tuple[Customer, dict[str, Customer]]:
    """The customer of this id, locked (1012 when there is none), and the holders of the
    identifiers the item sends (by their keys). Those are read, not locked: locking them after the
    customer could deadlock with a unit locking both in id order, and they only tell whether a
    value is taken, which the unique indexes settle again when the update is written."""
    target = await repositories.customers.locked(org_id, customer_id)
    if target is None:
        raise ItemRejected(Code.CUSTOMER_NOT_FOUND)
    holders = {}
    for name, value in keys.items():
        holder = target if target.key(name) == value else await repositories.customers.find(org_id, name, value)
        if holder is not None:
            holders[name] = holder
    return target, holders


async def _supersede_changed(
    repositories: Repositories, caller: Caller, before: Customer, after: Customer, now: datetime
) -> None:
    """An identifier an update changed leaves a pending request to change it from its former
    value nothing to do: it is superseded in the same unit."""
    for name in IDENTIFIERS:
        if before.identifier(name) != after.identifier(name):
            await supersede_pending(repositories, caller, after, name, UPDATED_REASON, now)


async def supersede_pending(
    repositories: Repositories, caller: Caller, customer: Customer, identifier: str, reason: str, now: datetime
) -> None:
    """Mark the customer's PENDING request for this identifier, if it has one, SUPERSEDED with
    this reason, audited as ID_SUPERSEDED with the request's values. The customer is locked by
    the unit already: every path locks the customer before its requests."""
    superseded = await repositories.identity_requests.supersede(caller.org.org_id, customer.id, identifier, now, reason)
    because = dataclasses.replace(caller, reason=reason)
    for request in superseded:
        asked: list[Change] = [{"field": identifier, "previous": request.old_value, "current": request.new_value}]
        await repositories.customers.record_audit(because, customer, ID_SUPERSEDED, asked, now)
    await emit(repositories, caller, now, [request_event(customer, request, caller, now) for request in superseded])


def request_event(customer: Customer, request: IdentityRequest, caller: Caller, now: datetime) -> Event:
    """requestUpdated for an identity change request as it now stands."""
    return build.request_updated(
        customer, request_id=request.id or 0, status=request.status, identifier=request.identifier,
        old_value=request.old_value, new_value=request.new_value,
        reason=request.decision_reason or request.reason, decided_by=request.decided_by, writer=caller.writer(now),
    )


async def _memberships_of(repositories: Repositories, caller: Caller, customer: Customer | None) -> list[Membership] | None:
    return await repositories.loyalty.memberships(caller.org.org_id, customer.id) if customer else None


async def _referrer(
    repositories: Repositories, caller: Caller, item: CustomerInput, target: Customer | None, now: datetime,
    warnings: Warnings,
) -> Customer | None:
    """The customer whose referral code the joining item names, when it is rewarded for it: it
    exists, it is not the item's own customer, and (for an existing customer) this is its first
    referral. A new customer's referral is recorded once it has an id."""
    if item.referral_code is None:
        return None
    org = caller.org
    referrer = await repositories.customers.find(org.org_id, "referral_code", item.referral_code)
    if referrer is None or (target is not None and referrer.id == target.id):
        warnings.add(Code.REFERRER_NOT_FOUND)
        return None
    if target is not None and not await repositories.loyalty.record_referral(org.org_id, target.id, referrer.id, now):
        return None
    return referrer


def _failure(raw: Any, code: Code, matched: Customer | None = None, field: str | None = None) -> ItemResult:
    # Identifiers are echoed as sent when they are plain values; anything else is echoed as null,
    # so that the answer can always be written, in JSON and in XML alike.
    sent = {name: _echoable(raw.get(name)) for name in IDENTIFIERS} if isinstance(raw, dict) else {}
    message = item_error_message(code, field or "")
    return ItemResult(code=code, message=message, warnings=Warnings(), customer=matched, sent=sent)


def _not_processed(raw: Any, caller: Caller, position: int, stage: str) -> ItemResult:
    """The item failed through a fault of Patron's: logged with its cause, answered with its own code."""
    log.error("request %s: customer %d failed while %s", caller.request_id, position + 1, stage, exc_info=True)
    return _failure(raw, Code.ITEM_NOT_PROCESSED)


def _echoable(value: Any) -> Any:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    return fields.text(value)


def batch_status(results: list[ItemResult]) -> Code:
    return batch_code(sum(result.success for result in results), len(results))


def batch_code(succeeded: int, items: int) -> Code:
    """A batch's status: 200 when every item succeeded, 201 when some did, 500 when none did."""
    if succeeded == items:
        return Code.SUCCESS
    return Code.PARTIAL_SUCCESS if succeeded else Code.ALL_FAILED
