"""The invariants of an org's data, checked against the database: what `patron check` reports."""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from patron.customers import external_ids
from patron.customers.fields import identifier_text
from patron.customers.model import IDENTIFIERS
from patron.orgs.apply import ignores_case
from patron.store.checks import CheckStore
from patron.store.db import transaction
from patron.store.external_ids import ExternalIdStore
from patron.store.orgs import OrgStore


class UnknownOrg(Exception):
    """No org has the id asked for."""


@dataclass(frozen=True)
class Violation:
    """One broken invariant: the rule's name and what breaks it, in words an operator can act on."""

    rule: str
    detail: str

    def line(self, org_id: int) -> str:
        return f"org {org_id}: {self.rule}: {self.detail}"


# The rules, by the names the report gives them.
UNIQUE_IDENTIFIER = "unique-identifier"
IDENTIFIER_IN_NORMAL_FORM = "identifier-in-normal-form"
EXTERNAL_ID_KEY = "external-id-key"
EXTERNAL_ID_LOOK_ALIKE = "external-id-look-alike"
POINTS_MATCH_LEDGER = "points-match-ledger"
LEDGER_HAS_OWNER = "ledger-has-owner"
MEMBERSHIP_HAS_CUSTOMER = "membership-has-customer"
CUSTOMER_HAS_CREATE_AUDIT = "customer-has-create-audit"
REFERRAL_IS_SOUND = "referral-is-sound"
REFERRED_ONCE = "referred-once"
NON_LOYALTY_HAS_NO_MEMBERSHIP = "non-loyalty-has-no-membership"


def _ids(ids: list[int]) -> str:
    return ", ".join(str(customer_id) for customer_id in ids)


def _ledger_problem(row: Any) -> str:
    if not row.customer_exists:
        return f"points_ledger row {row.id} names customer {row.customer_id}, which does not exist"
    return f"points_ledger row {row.id} names programme {row.program_id}, of which customer {row.customer_id} is not a member"


# The rules whose every violation is a row of one query of the store, with what it says of the row.
_ROW_RULES: tuple[tuple[str, Callable[[CheckStore, int], Awaitable[list[Any]]], Callable[[Any], str]], ...] = (
    (
        POINTS_MATCH_LEDGER, CheckStore.points_out_of_step,
        lambda row: f"customer {row.customer_id} in programme {row.program_id} holds {row.lifetime_points} lifetime"
        f" and {row.loyalty_points} loyalty points; its points ledger sums to {row.ledger_total}",
    ),
    (LEDGER_HAS_OWNER, CheckStore.ledger_rows_without_owner, _ledger_problem),
    (
        MEMBERSHIP_HAS_CUSTOMER, CheckStore.memberships_without_customer,
        lambda row: f"membership of programme {row.program_id} names customer {row.customer_id}, which does not exist",
    ),
    (
        CUSTOMER_HAS_CREATE_AUDIT, CheckStore.customers_without_creation_audit,
        lambda customer_id: f"customer {customer_id} has no CREATE audit record",
    ),
    (REFERRAL_IS_SOUND, CheckStore.broken_referrals, lambda row: _referral_problem(row)),
    (
        REFERRED_ONCE, CheckStore.referees_referred_again,
        lambda row: f"customer {row.referee_id} is the referee of {row.times} referrals",
    ),
    (
        NON_LOYALTY_HAS_NO_MEMBERSHIP, CheckStore.non_loyalty_members,
        lambda row: f"NON_LOYALTY customer {row.id} is a member of programme {row.program_id}",
    ),
)


async def check_org(engine: AsyncEngine, org_id: int) -> list[Violation]:
    """Every violation of the org's invariants, rule by rule; an empty list means the org is sound."""
    async with transaction(engine, readonly=True) as conn:
        store = CheckStore(conn)
        if not await store.org_exists(org_id):
            raise UnknownOrg(org_id)
        violations = [
            Violation(UNIQUE_IDENTIFIER, f"{name} {value!r} is held by customers {_ids(ids)}")
            for name, value, ids in await store.shared_identifiers(org_id)
        ]
        violations += await _identifiers_out_of_normal_form(store, org_id)
        violations += await _external_id_keys(conn, org_id)
        violations += await _look_alike_external_ids(conn, org_id)
        for rule, query, said in _ROW_RULES:
            violations += [Violation(rule, said(row)) for row in await query(store, org_id)]
    return violations


async def _identifiers_out_of_normal_form(store: CheckStore, org_id: int) -> list[Violation]:
    """Identifiers stored before they were normalised (docs/identity.md): a value holding a
    character no identifier may hold, or one whose normal form differs, and the other customers
    whose identifier it then collides with."""
    violations = []
    for name in IDENTIFIERS:
        # A value of printable ASCII is its own normal form; only the others need a look.
        odd = [
            (customer_id, value, identifier_text(value))
            async for customer_id, value in store.identifier_values(org_id, name)
            if not (value.isascii() and value.isprintable())
        ]
        normal_forms = [normal.lower() if name == "email" else normal for _, _, normal in odd if normal]
        holders = await store.holders_of(org_id, name, normal_forms) if normal_forms else {}
        for customer_id, value, normal in odd:
            if normal is None:
                detail = f"{name} {value!r} of customer {customer_id} holds an invisible or control character"
            elif normal == value:
                continue
            else:
                others = [i for i in holders.get(normal.lower() if name == "email" else normal, []) if i != customer_id]
                detail = f"{name} {value!r} of customer {customer_id} is {normal!r} in normal form (NFKC)"
                if others:
                    detail += f", which customers {_ids(others)} hold: one person may be two customers"
            violations.append(Violation(IDENTIFIER_IN_NORMAL_FORM, detail))
    return violations


async def _external_id_keys(conn: AsyncConnection, org_id: int) -> list[Violation]:
    """External ids kept under another key than the org's rule gives them (a worker wrote them
    before it saw the applied file), and the customers whose external ids are one under the rule."""
    ignore_case = ignores_case(await OrgStore(conn).definition(org_id))
    store = ExternalIdStore(conn)
    held = [row async for row in store.held(org_id)]
    changed, collisions = external_ids.rekeyed(held, ignore_case)
    setting = f"CONF_EXTERNAL_ID_CASE_INSENSITIVE = {str(ignore_case).lower()}"
    values = {customer_id: (external_id, stored) for customer_id, external_id, stored in held}
    violations = [
        Violation(
            EXTERNAL_ID_KEY,
            f"external_id {values[customer_id][0]!r} of customer {customer_id} is kept under the key"
            f" {values[customer_id][1]!r}, not {key!r} ({setting}): `patron org apply` mends it",
        )
        for customer_id, key, _ in changed
    ]
    violations += [
        Violation(
            EXTERNAL_ID_KEY,
            " and ".join(f"external_id {external_id!r} of customer {customer_id}" for customer_id, external_id in holders)
            + f" are one external id ({setting}): one person may be two customers",
        )
        for holders in collisions
    ]
    return violations


async def _look_alike_external_ids(conn: AsyncConnection, org_id: int) -> list[Violation]:
    """Pairs of customers whose external ids look alike but differ by a letter of another script
    (docs/identity.md): found by the skeletons' index, one group of a skeleton at a time."""
    rows = await ExternalIdStore(conn).shared_skeletons(org_id)
    violations = []
    for _, group in itertools.groupby(rows, key=lambda row: row.external_id_skeleton):
        alike = list(group)
        for index, first in enumerate(alike):
            for second in alike[index + 1 :]:
                if external_ids.across_scripts(first.external_id_key, second.external_id_key):
                    violations.append(
                        Violation(
                            EXTERNAL_ID_LOOK_ALIKE,
                            f"external_id {first.external_id!r} of customer {first.id} and {second.external_id!r} of"
                            f" customer {second.id} look alike but differ by a letter of another script:"
                            " one person may be two customers",
                        )
                    )
    return violations


def _referral_problem(row: Any) -> str:
    referee, referrer = row.referee_id, row.referrer_id
    problems = []
    if not row.referee_exists:
        problems.append(f"referee {referee} does not exist")
    if not row.referrer_exists:
        problems.append(f"referrer {referrer} does not exist")
    if referee == referrer:
        problems.append("the customer referred itself")
    return f"referral of customer {referee} by customer {referrer}: " + "; ".join(problems)
