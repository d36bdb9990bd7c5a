"""Plain data of loyalty: memberships, ledger entries and the side effects a registration shows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum

POINTS = "points"


class EntryKind(StrEnum):
    """Why points or an alternate currency were credited; one ledger row each."""

    REGISTRATION = "REGISTRATION"
    REFEREE = "REFEREE"
    REFERRER = "REFERRER"


@dataclass
class Membership:
    """A customer's place in one programme: the slab, when it expires, the points balances.

    Balances are kept with the membership in the same transaction as each ledger row, so that a
    read costs one row; the ledger remains the record they can always be recomputed from.
    """

    org_id: int
    customer_id: int | None  # None until the database has assigned a new customer's id
    program_id: int
    slab_serial: int
    tier_expires_on: date
    lifetime_points: int = 0
    loyalty_points: int = 0


@dataclass(frozen=True)
class LedgerEntry:
    org_id: int
    customer_id: int | None  # None: the customer being registered, before it has an id
    program_id: int
    kind: EntryKind
    currency: str  # POINTS, or an alternate currency's identifier
    amount: int


@dataclass(frozen=True)
class PointsEffect:
    customer_id: int | None  # None: the customer being registered, before it has an id
    awarded_points: int
    total_points: int | None  # shown for the registering customer, not for a referrer
    is_referrer: bool = False


@dataclass(frozen=True)
class CurrencyEffect:
    identifier: str
    name: str
    awarded_value: int


SideEffect = PointsEffect | CurrencyEffect
