"""What must hold in the database after a scenario, read with plain SQL (PostgreSQL or SQLite).

Two kinds of check:
- the org-wide invariants (`patron check` proves the same: no identifier on two customers,
  balances equal to the ledger, every customer audited), plus "nothing half-written" and
  "every reward once" for the stress org's programme rules;
- what the clients were told: every item answered 1000 is in the database exactly once, whole,
  with its referral when it sent a referral code.
"""

from __future__ import annotations

import asyncio
import sqlite3
import tomllib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

IDENTIFIERS = ("mobile", "email", "external_id")


async def fetch(url: str, sql: str) -> list[tuple]:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1]

        def run() -> list[tuple]:
            conn = sqlite3.connect(path, timeout=30)
            try:
                return [tuple(row) for row in conn.execute(sql).fetchall()]
            finally:
                conn.close()

        return await asyncio.to_thread(run)
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        return [tuple(row) for row in await conn.fetch(sql)]
    finally:
        await conn.close()


@dataclass(frozen=True)
class Rules:
    """Points of the org's programmes: {program_id: (registration, referrer, referee)}."""

    programs: dict[int, tuple[int, int, int]]
    default_program: int

    @classmethod
    def of(cls, org_file: Path) -> Rules:
        data = tomllib.loads(org_file.read_text())
        programs = {
            p["id"]: (p.get("registration_points", 0), p.get("referrer_points", 0), p.get("referee_points", 0))
            for p in data.get("programs", [])
        }
        default = next((p["id"] for p in data.get("programs", []) if p.get("default")), next(iter(programs), 0))
        return cls(programs, default)


@dataclass
class Report:
    customers: int = 0
    duplicates: int = 0  # identifier values held by more than one customer (beyond the first)
    double_rewards: int = 0  # reward entries or balances above what the rules allow
    problems: dict[str, int] = field(default_factory=dict)  # every other violation, by kind
    samples: list[str] = field(default_factory=list)

    def add(self, kind: str, count: int = 1, sample: str | None = None) -> None:
        if count:
            self.problems[kind] = self.problems.get(kind, 0) + count
            if sample and len(self.samples) < 12:
                self.samples.append(f"{kind}: {sample}")

    @property
    def ok(self) -> bool:
        return not self.duplicates and not self.double_rewards and not self.problems

    def summary(self) -> str:
        if self.ok:
            return f"PASS ({self.customers} customers: identifiers unique, balances = ledger, all audited, nothing half-written, each reward once)"
        parts = [f"duplicates={self.duplicates}", f"double_rewards={self.double_rewards}"]
        parts += [f"{kind}={count}" for kind, count in sorted(self.problems.items())]
        return "FAIL " + ", ".join(parts)


async def check_org(url: str, org_id: int, rules: Rules) -> tuple[Report, dict[str, Any]]:
    """The org-wide invariants; also returns the rows read, for `check_answered`."""
    report = Report()
    o = int(org_id)
    for name in IDENTIFIERS:
        rows = await fetch(
            url,
            f"SELECT {name}, count(*) FROM customers WHERE org_id = {o} AND {name} IS NOT NULL "
            f"GROUP BY {name} HAVING count(*) > 1",
        )
        for value, count in rows:
            report.duplicates += count - 1
            if len(report.samples) < 12:
                report.samples.append(f"duplicate {name} {value!r} on {count} customers")

    customers = await fetch(url, f"SELECT id, mobile, email, external_id, type FROM customers WHERE org_id = {o}")
    report.customers = len(customers)
    ids = {row[0] for row in customers}
    loyalty = {row[0] for row in customers if row[4] == "LOYALTY"}
    memberships = await fetch(
        url, f"SELECT customer_id, program_id, lifetime_points, loyalty_points FROM memberships WHERE org_id = {o}"
    )
    ledger = await fetch(
        url,
        f"SELECT customer_id, program_id, kind, count(*), sum(amount) FROM points_ledger "
        f"WHERE org_id = {o} AND currency = 'points' GROUP BY customer_id, program_id, kind",
    )
    other_ledger = await fetch(
        url, f"SELECT DISTINCT customer_id FROM points_ledger WHERE org_id = {o} AND currency <> 'points'"
    )
    audits = await fetch(
        url, f"SELECT customer_id, event_type, count(*) FROM customer_audits WHERE org_id = {o} GROUP BY customer_id, event_type"
    )
    referrals = await fetch(url, f"SELECT referee_id, referrer_id FROM referrals WHERE org_id = {o}")

    # Nothing half-written: no part without its customer, no customer without its parts.
    member_of: dict[int, set[int]] = defaultdict(set)
    for customer_id, program_id, *_ in memberships:
        member_of[customer_id].add(program_id)
    orphans = [f"membership of {c}" for c in member_of if c not in ids]
    orphans += [f"ledger of {row[0]}" for row in ledger if row[0] not in ids]
    orphans += [f"ledger of {row[0]}" for row in other_ledger if row[0] not in ids]
    orphans += [f"audit of {row[0]}" for row in audits if row[0] not in ids]
    orphans += [f"referral {row}" for row in referrals if row[0] not in ids or row[1] not in ids]
    report.add("orphan_rows", len(orphans), orphans[0] if orphans else None)
    unenrolled = [c for c in loyalty if c not in member_of] if rules.programs else []
    report.add("loyalty_customer_without_membership", len(unenrolled), str(unenrolled[:1]))

    # Every customer audited, created once.
    audit_kinds: dict[int, Counter] = defaultdict(Counter)
    for customer_id, event_type, count in audits:
        audit_kinds[customer_id][event_type] += count
    unaudited = [c for c in ids if not audit_kinds.get(c)]
    report.add("customer_without_audit", len(unaudited), str(unaudited[:3]))
    creates = [c for c in ids if audit_kinds.get(c) and audit_kinds[c]["CREATE"] != 1]
    report.add("customer_without_exactly_one_create_audit", len(creates), str(creates[:3]))

    # Balances equal to the ledger, and each reward once.
    entries: dict[tuple[int, int], dict[str, tuple[int, int]]] = defaultdict(dict)
    for customer_id, program_id, kind, count, total in ledger:
        entries[(customer_id, program_id)][kind] = (int(count), int(total))
    referees_of: Counter = Counter(referrer for _, referrer in referrals)
    referred = {referee for referee, _ in referrals}
    for customer_id, program_id, lifetime, points in memberships:
        kinds = entries.get((customer_id, program_id), {})
        ledger_total = sum(total for _, total in kinds.values())
        if lifetime != ledger_total or points != ledger_total:
            report.add(
                "balance_not_equal_to_ledger", 1,
                f"customer {customer_id} programme {program_id}: lifetime {lifetime}, loyalty {points}, ledger {ledger_total}",
            )
        registration, referrer_points, referee_points = rules.programs.get(program_id, (0, 0, 0))
        is_default = program_id == rules.default_program
        expected = {
            "REGISTRATION": 1 if registration else 0,
            "REFEREE": 1 if referee_points and is_default and customer_id in referred else 0,
            "REFERRER": referees_of[customer_id] if referrer_points and is_default else 0,
        }
        amount = {"REGISTRATION": registration, "REFEREE": referee_points, "REFERRER": referrer_points}
        doubled = False
        for kind, want in expected.items():
            have, total = kinds.get(kind, (0, 0))
            if have > want or total > want * amount[kind]:
                doubled = True
                report.double_rewards += 1
                if len(report.samples) < 12:
                    report.samples.append(f"double reward: customer {customer_id} has {have} {kind} entries ({total} points), expected {want}")
            elif have < want:
                report.add("missing_reward", 1, f"customer {customer_id} has {have} {kind} entries, expected {want}")
        should = sum(want * amount[kind] for kind, want in expected.items())
        if points > should and not doubled:
            report.double_rewards += 1
            if len(report.samples) < 12:
                report.samples.append(f"double reward: customer {customer_id} holds {points} points, rules say {should}")
        elif points < should:
            report.add(
                "balance_below_rules", 1,
                f"customer {customer_id}: {points} points, rules say {should} "
                f"(referees {referees_of[customer_id]}, referred {customer_id in referred})",
            )
    stray = [key for key in entries if key[1] not in member_of.get(key[0], set()) and key[0] in ids]
    report.add("ledger_without_membership", len(stray), str(stray[:1]))
    rows = {"customers": customers, "referrals": referrals, "audits": audit_kinds, "member_of": member_of, "entries": entries}
    return report, rows


def check_answered(report: Report, rows: dict[str, Any], answered: dict[str, str | None], code_owner: dict[str, str]) -> None:
    """Every item answered 1000 is there once, whole; an item sent with a referral code is
    referred by that code's owner. `answered`: mobile -> referral code sent (or None);
    `code_owner`: referral code -> mobile of its owner."""
    by_mobile: dict[str, list[int]] = defaultdict(list)
    for customer_id, mobile, *_ in rows["customers"]:
        if mobile is not None:
            by_mobile[mobile].append(customer_id)
    referrer_of = dict(rows["referrals"])
    id_of = {mobile: ids[0] for mobile, ids in by_mobile.items()}
    with_entries = {key[0] for key in rows["entries"]}
    for mobile, code in answered.items():
        found = by_mobile.get(mobile, [])
        if not found:
            report.add("answered_item_not_in_database", 1, mobile)
            continue
        if len(found) > 1:
            continue  # counted among the duplicates of the org-wide check
        customer_id = found[0]
        if not rows["audits"].get(customer_id):
            report.add("answered_item_without_audit", 1, mobile)
        if not rows["member_of"].get(customer_id):
            report.add("answered_item_without_membership", 1, mobile)
        if customer_id not in with_entries:
            report.add("answered_item_without_ledger", 1, mobile)
        if code is not None:
            want = id_of.get(code_owner.get(code, ""))
            got = referrer_of.get(customer_id)
            if got is None:
                report.add("answered_referral_not_recorded", 1, f"{mobile} sent {code}")
            elif got != want:
                report.add("answered_referral_wrong_referrer", 1, f"{mobile} sent {code}: referrer {got}, want {want}")

