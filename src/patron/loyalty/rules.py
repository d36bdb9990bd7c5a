"""The rules of enrolment and registration rewards, as pure functions over the org's programmes."""

from __future__ import annotations

import calendar
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

from patron.loyalty.model import (
    POINTS,
    CurrencyEffect,
    EntryKind,
    LedgerEntry,
    Membership,
    PointsEffect,
    SideEffect,
)
from patron.orgs.policy import OrgFile, Program, Slab

# A slab without validity never expires; the API family writes that as registration + 100 years.
NEVER_EXPIRES_MONTHS = 1200


@lru_cache(maxsize=1024)  # a batch's members join on one day
def add_months(day: date, months: int) -> date:
    """The same day `months` later; a day the target month lacks becomes its last day."""
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def tier_expiry(registered_on: date, slab: Slab) -> date:
    return add_months(registered_on, slab.validity_months or NEVER_EXPIRES_MONTHS)


def programmes_to_join(org: OrgFile, all_programmes: bool) -> list[Program]:
    """The default programme, or every programme with mlp_single_enroll=true."""
    if all_programmes:
        return list(org.programs)
    default = org.default_program
    return [default] if default else []


def enrol(org: OrgFile, org_id: int, customer_id: int | None, registered_on: date, all_programmes: bool) -> list[Membership]:
    return [
        Membership(
            org_id=org_id,
            customer_id=customer_id,
            program_id=program.id,
            slab_serial=program.slabs[0].serial,
            tier_expires_on=tier_expiry(registered_on, program.slabs[0]),
        )
        for program in programmes_to_join(org, all_programmes)
    ]


def registration_rewards(
    programs: Mapping[int, Program],
    memberships: list[Membership],
    referrer_memberships: list[Membership] | None,
) -> tuple[list[LedgerEntry], list[SideEffect], bool]:
    """What a new LOYALTY member earns, and its referrer (when referred), in the programmes it
    joined (`programs`: the org's, by id).

    The flag is true when a referrer is owed points in a programme it does not belong to.
    """
    referred = referrer_memberships is not None
    referrer_in = {m.program_id: m for m in referrer_memberships or []}
    entries: list[LedgerEntry] = []
    effects: list[SideEffect] = []
    unpaid = False
    for membership in memberships:
        program = programs[membership.program_id]
        earned = 0
        for kind, amount in (
            (EntryKind.REGISTRATION, program.registration_points),
            (EntryKind.REFEREE, program.referee_points if referred else 0),
        ):
            if amount:
                entries.append(_entry(membership, kind, POINTS, amount))
                earned += amount
        if earned:
            effects.append(PointsEffect(membership.customer_id, earned, membership.loyalty_points + earned))
        for currency in program.alternate_currencies:
            if currency.registration_award:
                entries.append(
                    _entry(membership, EntryKind.REGISTRATION, currency.identifier, currency.registration_award)
                )
                effects.append(CurrencyEffect(currency.identifier, currency.name, currency.registration_award))
        if referred and program.referrer_points:
            referrer = referrer_in.get(program.id)
            if referrer is None:
                unpaid = True
                continue
            entries.append(_entry(referrer, EntryKind.REFERRER, POINTS, program.referrer_points))
            effects.append(PointsEffect(referrer.customer_id, program.referrer_points, None, is_referrer=True))
    return entries, effects, unpaid


@dataclass(frozen=True)
class Joining:
    """What a customer gets on joining the org's programmes on a day: its memberships, balances
    credited, the ledger entries and side effects of its rewards and, when referred, of its
    referrer's; `unpaid` when the referrer is owed points in a programme it does not belong to.
    The joining customer's own rows carry no customer id: it is set on them for each member
    (`for_member`), so that one Joining serves every unreferred member joining on that day."""

    memberships: tuple[Membership, ...]
    entries: tuple[LedgerEntry, ...]
    effects: tuple[SideEffect, ...]
    unpaid: bool = False

    @classmethod
    def of(
        cls,
        org: OrgFile,
        programs: Mapping[int, Program],
        org_id: int,
        joined_on: date,
        all_programmes: bool,
        referrer_memberships: list[Membership] | None = None,
    ) -> Joining:
        memberships = enrol(org, org_id, None, joined_on, all_programmes)
        entries, effects, unpaid = registration_rewards(programs, memberships, referrer_memberships)
        credit(memberships, entries)
        return cls(tuple(memberships), tuple(entries), tuple(effects), unpaid)

    def new_memberships(self) -> list[Membership]:
        """The memberships, for one new member: its id is set on them once it is written.
        Built directly: dataclasses.replace looks every field up again, for each new member."""
        return [
            Membership(m.org_id, None, m.program_id, m.slab_serial, m.tier_expires_on, m.lifetime_points, m.loyalty_points)
            for m in self.memberships
        ]

    def for_member(self, customer_id: int) -> tuple[list[Membership], list[LedgerEntry], list[SideEffect]]:
        """The memberships, entries and effects with the member's id where they await it."""
        memberships = self.new_memberships()
        for membership in memberships:
            membership.customer_id = customer_id
        entries = [
            entry if entry.customer_id is not None
            else LedgerEntry(entry.org_id, customer_id, entry.program_id, entry.kind, entry.currency, entry.amount)
            for entry in self.entries
        ]
        return memberships, entries, [for_customer(effect, customer_id) for effect in self.effects]


def _entry(membership: Membership, kind: EntryKind, currency: str, amount: int) -> LedgerEntry:
    return LedgerEntry(membership.org_id, membership.customer_id, membership.program_id, kind, currency, amount)


def credit(memberships: list[Membership], entries: list[LedgerEntry]) -> None:
    """Apply points entries to the balances of the memberships they belong to."""
    by_key = {(m.customer_id, m.program_id): m for m in memberships}
    for entry in entries:
        membership = by_key.get((entry.customer_id, entry.program_id))
        if membership is not None and entry.currency == POINTS:
            membership.lifetime_points += entry.amount
            membership.loyalty_points += entry.amount


def for_customer(effect: SideEffect, customer_id: int) -> SideEffect:
    """The effect with the new customer's id, once the database has assigned it."""
    if isinstance(effect, PointsEffect) and effect.customer_id is None:
        # Built directly: dataclasses.replace looks every field up again, for each new customer.
        return PointsEffect(customer_id, effect.awarded_points, effect.total_points, effect.is_referrer)
    return effect


def next_slab(program: Program, serial: int) -> Slab | None:
    return program.slabs[serial] if serial < len(program.slabs) else None


# Crockford's base32 without look-alikes; 10 characters are 50 bits, beyond guessing. Each random
# byte picks a letter (256 is a multiple of 32, so every letter is equally likely).
_REFERRAL_ALPHABET = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_BYTE_TO_LETTER = bytes(_REFERRAL_ALPHABET[byte % 32] for byte in range(256))


_CODE_BYTES = 10
# Random bytes drawn from the OS a few thousand at a time: one system call per 400 codes, not per
# code. A child process starts with none, so that no two processes hand out the same codes.
_random_pool = bytearray()
os.register_at_fork(after_in_child=_random_pool.clear)


def new_referral_code() -> str:
    if len(_random_pool) < _CODE_BYTES:
        _random_pool.extend(secrets.token_bytes(4000))
    drawn = bytes(_random_pool[-_CODE_BYTES:])
    del _random_pool[-_CODE_BYTES:]
    return drawn.translate(_BYTE_TO_LETTER).decode()
