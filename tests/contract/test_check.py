"""`patron check`: an org's data is sound after real traffic, and each kind of corruption is reported."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import pytest
from sqlalchemy import Table, func, insert, select, text

from support.api import item, new_mobile
from patron import checks
from patron.checks import check_org
from patron.customers import external_ids
from patron.store.db import is_sqlite, transaction
from patron.store.schema import customer_audits, customers, memberships, points_ledger, referrals

NOW = datetime(2025, 1, 1, 12, 0, 0)


async def write_row(org: Any, table: Table, **values: Any) -> int | None:
    """A row written straight into the database, past every rule of the application."""
    async with transaction(org.engine) as conn:
        has_id = "id" in table.c
        if has_id and "id" not in values and is_sqlite(conn):
            values["id"] = await conn.scalar(select(func.coalesce(func.max(table.c.id), 0) + 1))
        statement = insert(table).values(**values)
        if has_id:
            return await conn.scalar(statement.returning(table.c.id))
        await conn.execute(statement)
        return None


async def run_sql(org: Any, statement: str, **parameters: Any) -> None:
    async with transaction(org.engine) as conn:
        await conn.execute(text(statement), {"org_id": org.id, **parameters})


async def write_customer(org: Any, **values: Any) -> int:
    row = {
        "org_id": org.id,
        "type": "LOYALTY",
        "source": "INSTORE",
        "fraud_status": "NONE",
        "registered_on": NOW,
        "updated_on": NOW,
        "custom_fields": {},
        "extended_fields": {},
        "subscriptions": [],
        "comm_channels": [],
        "created_at": NOW,
        "modified_at": NOW,
        **values,
    }
    # The external id's key and skeleton, as migration 0009 fills them in for an org matching
    # external ids as stored.
    row.setdefault("external_id_key", row.get("external_id"))
    row.setdefault("external_id_skeleton", external_ids.skeleton(row["external_id_key"]))
    customer_id = await write_row(org, customers, **row)
    assert customer_id is not None
    return customer_id


async def write_creation_audit(org: Any, customer_id: int) -> None:
    await write_row(
        org, customer_audits, org_id=org.id, customer_id=customer_id, request_id="check-test",
        created_at=NOW, event_type="CREATE", changes=[],
    )


async def violations(org: Any) -> list[tuple[str, str]]:
    return [(violation.rule, violation.detail) for violation in await check_org(org.engine, org.id)]


async def register(org: Any, **fields: Any) -> dict[str, Any]:
    response = await org.add({"mobile": new_mobile(), **fields})
    assert response.status_code == 200, response.text
    return item(response)


async def test_an_org_is_sound_after_registrations_updates_conversions_and_referrals(make_org, patron):
    org = await make_org("rewards")
    referrer = await register(org, email=f"r.{new_mobile()}@example.com", external_id=f"ext-{new_mobile()}")
    referral_code = item(await org.get(id=referrer["user_id"]))["referral_code"]
    referee = await register(org, referral_code=referral_code)
    assert any(effect.get("is_referrer") == "true" for effect in referee["side_effects"]["effect"])
    await org.add({"mobile": referee["mobile"], "firstname": "Updated"})
    converted = await register(org, type="non_loyalty")
    await org.add({"mobile": converted["mobile"], "type": "loyalty"})
    await register(org, type="non_loyalty")
    everywhere = await org.add({"mobile": new_mobile()}, mlp_single_enroll="true")
    assert everywhere.status_code == 200

    assert await violations(org) == []
    result = await patron.in_thread("check", "--org", str(org.id))
    assert result.exit_code == 0, result.output
    assert result.output == f"org {org.id}: no violations\n"


async def test_a_case_variant_of_an_email_is_a_shared_identifier(org, patron):
    email = f"asha.{new_mobile()}@example.com"
    first = await register(org, email=email)
    # The unique index is on the exact value, so the database takes the variant.
    second = await write_customer(org, email=email.upper())
    await write_creation_audit(org, second)

    # Ids are listed in order; on Citus an id says nothing of when its customer came.
    holders = ", ".join(str(i) for i in sorted([first["user_id"], second]))
    assert await violations(org) == [(checks.UNIQUE_IDENTIFIER, f"email {email!r} is held by customers {holders}")]
    result = await patron.in_thread("check", "--org", str(org.id))
    assert result.exit_code == 1
    assert result.output.splitlines() == [f"org {org.id}: unique-identifier: email {email!r} is held by customers {holders}"]


async def test_balances_out_of_step_with_the_points_ledger_are_reported(org):
    customer = await register(org)
    await run_sql(
        org,
        "UPDATE memberships SET loyalty_points = loyalty_points + 5 WHERE org_id = :org_id AND customer_id = :customer_id",
        customer_id=customer["user_id"],
    )
    assert await violations(org) == [
        (
            checks.POINTS_MATCH_LEDGER,
            f"customer {customer['user_id']} in programme 469 holds 100 lifetime and 105 loyalty points;"
            " its points ledger sums to 100",
        )
    ]


async def test_a_ledger_row_of_a_missing_customer_or_membership_is_reported(org):
    customer = await register(org)
    ledger_row = {"org_id": org.id, "kind": "REGISTRATION", "currency": "points", "created_at": NOW, "request_id": "x"}
    ghost_row = await write_row(org, points_ledger, customer_id=999_999_999, program_id=469, amount=5, **ledger_row)
    stray_row = await write_row(org, points_ledger, customer_id=customer["user_id"], program_id=777, amount=5, **ledger_row)

    assert await violations(org) == [
        (checks.LEDGER_HAS_OWNER, f"points_ledger row {ghost_row} names customer 999999999, which does not exist"),
        (
            checks.LEDGER_HAS_OWNER,
            f"points_ledger row {stray_row} names programme 777, of which customer {customer['user_id']} is not a member",
        ),
    ]


async def test_a_membership_of_a_missing_customer_is_reported(org):
    await write_row(
        org, memberships, org_id=org.id, customer_id=999_999_998, program_id=469, slab_serial=1,
        tier_expires_on=date(2125, 1, 1), lifetime_points=0, loyalty_points=0, enrolled_at=NOW,
    )
    assert await violations(org) == [
        (
            checks.MEMBERSHIP_HAS_CUSTOMER,
            "membership of programme 469 names customer 999999998, which does not exist",
        )
    ]


async def test_a_customer_without_a_create_audit_record_is_reported(org):
    audited = await register(org)
    unaudited = await register(org)
    await run_sql(
        org, "DELETE FROM customer_audits WHERE org_id = :org_id AND customer_id = :customer_id",
        customer_id=unaudited["user_id"],
    )
    # An UPDATE record alone does not stand in for the CREATE.
    await org.add({"mobile": unaudited["mobile"], "firstname": "Later"})
    reported = await violations(org)
    assert reported == [(checks.CUSTOMER_HAS_CREATE_AUDIT, f"customer {unaudited['user_id']} has no CREATE audit record")]
    assert str(audited["user_id"]) not in str(reported)


async def test_self_referrals_and_referrals_of_missing_customers_are_reported(org):
    customer = await register(org)
    other = await register(org)
    user_id = customer["user_id"]
    await write_row(org, referrals, org_id=org.id, referee_id=user_id, referrer_id=user_id, created_at=NOW)
    await write_row(org, referrals, org_id=org.id, referee_id=999_999_997, referrer_id=other["user_id"], created_at=NOW)
    await write_row(org, referrals, org_id=org.id, referee_id=other["user_id"], referrer_id=999_999_996, created_at=NOW)

    assert sorted(await violations(org)) == sorted([
        (checks.REFERRAL_IS_SOUND, f"referral of customer {user_id} by customer {user_id}: the customer referred itself"),
        (
            checks.REFERRAL_IS_SOUND,
            f"referral of customer 999999997 by customer {other['user_id']}: referee 999999997 does not exist",
        ),
        (
            checks.REFERRAL_IS_SOUND,
            f"referral of customer {other['user_id']} by customer 999999996: referrer 999999996 does not exist",
        ),
    ])


async def test_a_non_loyalty_customer_with_a_membership_is_reported(org):
    customer = await register(org, type="non_loyalty")
    await write_row(
        org, memberships, org_id=org.id, customer_id=customer["user_id"], program_id=469, slab_serial=1,
        tier_expires_on=date(2125, 1, 1), lifetime_points=0, loyalty_points=0, enrolled_at=NOW,
    )
    assert await violations(org) == [
        (checks.NON_LOYALTY_HAS_NO_MEMBERSHIP, f"NON_LOYALTY customer {customer['user_id']} is a member of programme 469")
    ]


async def test_another_orgs_violations_are_not_reported(make_org, patron):
    mine, theirs = await make_org(), await make_org()
    await register(mine)
    broken = await register(theirs)
    await run_sql(
        theirs, "DELETE FROM customer_audits WHERE org_id = :org_id AND customer_id = :customer_id",
        customer_id=broken["user_id"],
    )
    assert await violations(mine) == []
    assert (await patron.in_thread("check", "--org", str(mine.id))).exit_code == 0
    assert (await patron.in_thread("check", "--org", str(theirs.id))).exit_code == 1


async def test_every_violation_is_one_line_and_the_exit_code_is_1(org, patron):
    for _ in range(2):
        customer = await register(org)
        await run_sql(
            org, "DELETE FROM customer_audits WHERE org_id = :org_id AND customer_id = :customer_id",
            customer_id=customer["user_id"],
        )
    result = await patron.in_thread("check", "--org", str(org.id))
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert len(lines) == 2
    assert all(line.startswith(f"org {org.id}: customer-has-create-audit: customer ") for line in lines)


async def test_checking_an_unknown_org_is_a_usage_error(patron):
    result = await patron.in_thread("check", "--org", "987654321")
    assert result.exit_code == 2
    assert "no org 987654321" in result.output and "Traceback" not in result.output

