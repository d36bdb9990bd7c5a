"""What every engine's store gives a unit of work: its repositories, on one connection."""

from __future__ import annotations

from dataclasses import dataclass

from patron.customers.model import Customer
from patron.loyalty.model import Membership
from patron.store.console import ConsoleStore
from patron.store.customers import CustomerStore
from patron.store.event_ops import EventOperations
from patron.store.events import EventStore
from patron.store.identity_requests import IdentityRequestStore
from patron.store.loyalty import LoyaltyStore
from patron.store.relay import DeliveryStore

# A look-up's answer: each value's customer and memberships, for the values held by a customer.
Found = dict[str | int, tuple[Customer, list[Membership]]]


@dataclass
class StoreUnit:
    """The repositories of one unit of work (one engine's, on one connection)."""

    customers: CustomerStore
    loyalty: LoyaltyStore
    identity_requests: IdentityRequestStore
    events: EventStore
    # The relay's: leases, sinks' progress, retries, attempts (store.relay).
    deliveries: DeliveryStore
    # Operators': sinks' health and backlog, dead letters, replays (store.event_ops).
    event_ops: EventOperations
    # The member-care console's: sessions, a customer page's ledger and referrals, the overview (store.console).
    console: ConsoleStore

