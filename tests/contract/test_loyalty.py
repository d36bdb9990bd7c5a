"""Loyalty enrolment and the side effects of a registration (spec §6), through HTTP."""

from __future__ import annotations

import asyncio
from datetime import date

import pytest
from sqlalchemy import func, select

from support.api import item, new_mobile
from patron.codes import REGISTERED, Code, warning_text
from patron.loyalty.rules import add_months
from patron.store.schema import memberships, points_ledger


async def test_a_new_loyalty_customer_joins_the_default_programme_at_slab_1(make_org):
    org = await make_org("rewards")
    added = item(await org.add({"mobile": new_mobile(), "registered_on": "2024-08-01 07:28:32"}))
    assert added["current_slab"] == "Base"
    assert added["tier_expiry_date"] == "2124-08-01 23:59:59"
    assert (added["lifetime_points"], added["loyalty_points"]) == (100, 100)
    assert added["points_summaries"]["points_summary"] == [
        {
            "programId": "469", "redeemed": "0", "expired": "0", "returned": "0", "adjusted": "0",
            "lifetimePoints": "100", "loyaltyPoints": "100", "cumulativePurchases": "0",
            "currentSlab": "Base", "nextSlab": "Bronze", "nextSlabSerialNumber": "2",
            "nextSlabDescription": "Tier 2", "slabSNo": "1", "slabExpiryDate": "2124-08-01 23:59:59",
            "totalPoints": "",
        }
    ]


async def test_registration_rewards_show_as_side_effects(make_org):
    org = await make_org("rewards")
    added = item(await org.add({"mobile": new_mobile()}))
    assert added["side_effects"]["effect"] == [
        {"awarded_points": 100, "total_points": 100, "customer_id": str(added["user_id"]), "type": "points"},
        {"alternate_currency_identifier": "rgpws7", "alternate_currency_name": "ac1", "awarded_value": "110", "type": "alternate_currency"},
    ]


async def test_a_re_add_awards_nothing_and_shows_no_side_effects(make_org):
    org = await make_org("rewards")
    mobile = new_mobile()
    await org.add({"mobile": mobile})
    again = item(await org.add({"mobile": mobile, "firstname": "Again"}))
    assert again["side_effects"]["effect"] == []
    assert again["lifetime_points"] == 100
    assert item(await org.get(mobile=mobile))["loyalty_points"] == 100


async def test_a_non_loyalty_customer_joins_no_programme(make_org):
    org = await make_org("rewards")
    added = item(await org.add({"mobile": new_mobile(), "type": "non_loyalty"}))
    assert (added["current_slab"], added["tier_expiry_date"]) == (None, None)
    assert added["points_summaries"]["points_summary"] == []
    assert added["side_effects"]["effect"] == [] and added["lifetime_points"] == 0


async def test_conversion_to_loyalty_enrols_and_rewards_once(make_org):
    org = await make_org("rewards")
    mobile = new_mobile()
    await org.add({"mobile": mobile, "type": "NON_LOYALTY"})
    converted = item(await org.add({"mobile": mobile, "type": "LOYALTY"}))
    assert converted["type"] == "LOYALTY" and converted["current_slab"] == "Base"
    assert converted["side_effects"]["effect"][0]["awarded_points"] == 100
    again = item(await org.add({"mobile": mobile, "type": "LOYALTY"}))
    assert again["side_effects"]["effect"] == [] and again["loyalty_points"] == 100
    assert item(await org.get(mobile=mobile))["referral_code"]


async def test_every_loyalty_customer_has_a_unique_referral_code(make_org):
    org = await make_org("rewards")
    mobiles = [new_mobile() for _ in range(5)]
    await org.add(*({"mobile": m} for m in mobiles))
    codes = [item(await org.get(mobile=m))["referral_code"] for m in mobiles]
    assert all(codes) and len(set(codes)) == 5


async def test_a_referral_awards_the_referrer_and_the_referee(make_org):
    org = await make_org("rewards")
    referrer_mobile = new_mobile()
    referrer = item(await org.add({"mobile": referrer_mobile}))
    code = item(await org.get(mobile=referrer_mobile))["referral_code"]
    referee = item(await org.add({"mobile": new_mobile(), "referral_code": code}))
    assert referee["side_effects"]["effect"] == [
        {"awarded_points": 150, "total_points": 150, "customer_id": str(referee["user_id"]), "type": "points"},
        {"alternate_currency_identifier": "rgpws7", "alternate_currency_name": "ac1", "awarded_value": "110", "type": "alternate_currency"},
        {"awarded_points": 100, "customer_id": str(referrer["user_id"]), "is_referrer": "true", "type": "points"},
    ]
    assert item(await org.get(mobile=referrer_mobile))["loyalty_points"] == 200


async def test_a_referral_on_a_plain_update_awards_nothing(make_org):
    org = await make_org("rewards")
    referrer_mobile, mobile = new_mobile(), new_mobile()
    await org.add({"mobile": referrer_mobile})
    code = item(await org.get(mobile=referrer_mobile))["referral_code"]
    await org.add({"mobile": mobile})
    update = item(await org.add({"mobile": mobile, "referral_code": code}))
    assert update["side_effects"]["effect"] == []
    assert item(await org.get(mobile=referrer_mobile))["loyalty_points"] == 100


async def test_an_unknown_referral_code_is_warning_1205_and_the_registration_stands(make_org):
    org = await make_org("rewards")
    added = item(await org.add({"mobile": new_mobile(), "referral_code": "NOSUCHCODE"}))
    assert added["item_status"]["warnings"]["warning"] == [str(int(Code.REFERRER_NOT_FOUND))]
    assert added["item_status"]["message"] == f"{REGISTERED}, {warning_text(Code.REFERRER_NOT_FOUND)}"
    assert added["lifetime_points"] == 100


async def test_a_referral_code_of_another_org_is_unknown(make_org):
    mine, theirs = await make_org("rewards"), await make_org("rewards")
    mobile = new_mobile()
    await theirs.add({"mobile": mobile})
    code = item(await theirs.get(mobile=mobile))["referral_code"]
    added = item(await mine.add({"mobile": new_mobile(), "referral_code": code}))
    assert added["item_status"]["warnings"]["warning"] == ["1205"]


async def test_mlp_single_enroll_joins_every_programme(make_org):
    org = await make_org("rewards")
    added = item(await org.add({"mobile": new_mobile(), "registered_on": "2024-01-31 10:00:00"}, mlp_single_enroll="true"))
    summaries = added["points_summaries"]["points_summary"]
    assert [s["programId"] for s in summaries] == ["469", "2088"]
    partner = summaries[1]
    assert partner["lifetimePoints"] == "20" and partner["slabExpiryDate"] == "2024-02-29 23:59:59"
    assert (partner["nextSlab"], partner["nextSlabSerialNumber"], partner["nextSlabDescription"]) == ("", "-1", "")
    assert added["current_slab"] == "Base" and added["lifetime_points"] == 100
    points = [e for e in added["side_effects"]["effect"] if e["type"] == "points"]
    assert [e["awarded_points"] for e in points] == [100, 20]


async def test_each_new_member_of_a_batch_is_enrolled_and_rewarded_on_its_own_day(make_org):
    org = await make_org("rewards")
    days = ["2024-01-31 10:00:00", "2024-01-31 11:00:00", "2024-03-31 10:00:00"]
    mobiles = [new_mobile() for _ in days]
    response = await org.add(
        *({"mobile": mobile, "registered_on": day} for mobile, day in zip(mobiles, days, strict=True)),
        mlp_single_enroll="true",
    )
    added = [item(response, index) for index in range(len(days))]
    partner_expiry = [a["points_summaries"]["points_summary"][1]["slabExpiryDate"] for a in added]
    assert partner_expiry == ["2024-02-29 23:59:59", "2024-02-29 23:59:59", "2024-04-30 23:59:59"]
    for member, mobile in zip(added, mobiles, strict=True):
        points = [e for e in member["side_effects"]["effect"] if e["type"] == "points"]
        assert [(e["awarded_points"], e["customer_id"]) for e in points] == [
            (100, str(member["user_id"])), (20, str(member["user_id"]))
        ]
        stored = item(await org.get(mobile=mobile))
        assert stored["user_id"] == member["user_id"]
        assert [s["lifetimePoints"] for s in stored["points_summaries"]["points_summary"]] == ["100", "20"]


async def test_without_mlp_single_enroll_only_the_default_programme(make_org):
    org = await make_org("rewards")
    added = item(await org.add({"mobile": new_mobile()}, mlp_single_enroll="false"))
    assert [s["programId"] for s in added["points_summaries"]["points_summary"]] == ["469"]


async def test_an_org_without_programmes_shows_no_slab(make_org):
    org = await make_org("plain")
    added = item(await org.add({"mobile": new_mobile()}))
    assert (added["current_slab"], added["tier_expiry_date"], added["lifetime_points"]) == (None, None, 0)
    assert added["points_summaries"]["points_summary"] == [] and added["side_effects"]["effect"] == []


@pytest.mark.parametrize(
    ("start", "months", "expected"),
    [
        (date(2024, 8, 1), 1200, date(2124, 8, 1)),
        (date(2024, 1, 31), 1, date(2024, 2, 29)),
        (date(2023, 1, 31), 1, date(2023, 2, 28)),
        (date(2024, 2, 29), 12, date(2025, 2, 28)),
        (date(2024, 2, 29), 1200, date(2124, 2, 29)),
        (date(2000, 2, 29), 1200, date(2100, 2, 28)),
        (date(2024, 12, 31), 2, date(2025, 2, 28)),
        (date(2024, 3, 31), 1, date(2024, 4, 30)),
    ],
)
def test_tier_expiry_arithmetic_keeps_to_real_month_ends(start, months, expected):
    assert add_months(start, months) == expected


async def test_concurrent_referrals_award_the_referrer_once_per_new_customer(make_org, app):
    org = await make_org("rewards")
    referrer_mobile = new_mobile()
    referrer_id = item(await org.add({"mobile": referrer_mobile}))["user_id"]
    code = item(await org.get(mobile=referrer_mobile))["referral_code"]
    newcomers = [new_mobile() for _ in range(8)]
    # Each newcomer sends its registration four times at once: one customer, one reward each.
    responses = await asyncio.gather(
        *(org.add({"mobile": m, "referral_code": code}) for m in newcomers for _ in range(4))
    )
    assert all(r.status_code == 200 for r in responses)
    assert item(await org.get(mobile=referrer_mobile))["loyalty_points"] == 100 + 8 * 100
    async with app.state.services.engine.connect() as conn:
        referrer_rows = await conn.scalar(
            select(func.count()).select_from(points_ledger).where(
                points_ledger.c.org_id == org.id, points_ledger.c.customer_id == referrer_id, points_ledger.c.kind == "REFERRER"
            )
        )
        balance = await conn.scalar(
            select(memberships.c.loyalty_points).where(memberships.c.org_id == org.id, memberships.c.customer_id == referrer_id)
        )
    assert referrer_rows == 8 and balance == 900


async def test_the_seeds_first_sample_response_is_reproduced(make_org):
    org = await make_org("seedlike")
    referrer_mobile = new_mobile()
    referrer_id = item(await org.add({"mobile": referrer_mobile}))["user_id"]
    code = item(await org.get(mobile=referrer_mobile))["referral_code"]
    response = await org.add(
        {
            "mobile": "919876532218",
            "email": "demopromo412@gmail.com",
            "external_id": "000003880203",
            "firstname": "testuwser",
            "lastname": "promo54",
            "registered_on": "2024-08-01 07:28:32",
            "updated_on": "2023-07-11 10:12:00",
            "referral_code": code,
            "custom_fields": {
                "field": [
                    {"name": "address", "value": "Bangalore1234"},
                    {"name": "pincode", "value": "54321"},
                    {"name": "City_name", "value": "Bangalore"},
                ]
            },
        }
    )
    body = response.json()["response"]
    assert body["status"] == {"success": "true", "code": 200, "message": "Success", "total": "1", "success_count": "1"}
    customer = body["customers"]["customer"][0]
    user_id = customer["user_id"]
    assert isinstance(user_id, int)
    assert customer == {
        "user_id": user_id,
        "firstname": "testuwser",
        "lastname": "promo54",
        "mobile": "919876532218",
        "email": "demopromo412@gmail.com",
        "external_id": "000003880203",
        "lifetime_points": 100,
        "loyalty_points": 100,
        "current_slab": "Base",
        "tier_expiry_date": "2124-08-01 23:59:59",
        "points_summaries": {
            "points_summary": [
                {
                    "programId": "469", "redeemed": "0", "expired": "0", "returned": "0", "adjusted": "0",
                    "lifetimePoints": "100", "loyaltyPoints": "100", "cumulativePurchases": "0",
                    "currentSlab": "Base", "nextSlab": "Bronze", "nextSlabSerialNumber": "2",
                    "nextSlabDescription": "Tier 2", "slabSNo": "1", "slabExpiryDate": "2124-08-01 23:59:59",
                    "totalPoints": "",
                }
            ]
        },
        "lifetime_purchases": 0,
        "registered_on": "2024-08-01 07:28:32",
        "updated_on": "2023-07-11 10:12:00",
        "type": "LOYALTY",
        "source": "instore",
        "fraud_status": "NONE",
        "reason": "",
        "custom_fields": {"field": [{"name": "address", "value": "Bangalore1234"}, {"name": "pincode", "value": "54321"}]},
        "extended_fields": {"field": []},
        "subscriptions": {"subscription": []},
        "side_effects": {
            "effect": [
                {"awarded_points": 100, "total_points": 100, "customer_id": str(user_id), "type": "points"},
                {"awarded_points": 100, "customer_id": str(referrer_id), "is_referrer": "true", "type": "points"},
            ]
        },
        "item_status": {
            "success": "true",
            "code": "1000",
            "message": "Customer registration successful, Provided Custom Field is invalid",
            "warnings": {"warning": ["1017"]},
        },
    }
    assert list(customer) == [
        "user_id", "firstname", "lastname", "mobile", "email", "external_id", "lifetime_points", "loyalty_points",
        "current_slab", "tier_expiry_date", "points_summaries", "lifetime_purchases", "registered_on", "updated_on",
        "type", "source", "fraud_status", "reason", "custom_fields", "extended_fields", "subscriptions",
        "side_effects", "item_status",
    ]


async def test_a_referral_code_typed_in_lower_case_is_the_same_code(make_org):
    org = await make_org("rewards")
    referrer_mobile = new_mobile()
    await org.add({"mobile": referrer_mobile})
    code = item(await org.get(mobile=referrer_mobile))["referral_code"]
    referee = item(await org.add({"mobile": new_mobile(), "referral_code": code.lower()}))
    assert referee["item_status"]["warnings"]["warning"] == []
    assert any(effect.get("is_referrer") == "true" for effect in referee["side_effects"]["effect"])


async def test_a_reward_that_cannot_be_given_is_warning_1010_and_the_registration_stands(make_org):
    # The referrer joined only the default programme; the referee joins both, and the partner
    # programme owes a referrer it has no membership for.
    org = await make_org("rewards")
    referrer_mobile = new_mobile()
    await org.add({"mobile": referrer_mobile})
    code = item(await org.get(mobile=referrer_mobile))["referral_code"]
    referee = item(await org.add({"mobile": new_mobile(), "referral_code": code}, mlp_single_enroll="true"))
    assert referee["item_status"]["code"] == "1000"
    assert referee["item_status"]["warnings"]["warning"] == [str(int(Code.POINTS_NOT_AWARDED))]
    assert referee["item_status"]["message"] == f"{REGISTERED}, {warning_text(Code.POINTS_NOT_AWARDED)}"
    assert item(await org.get(mobile=referrer_mobile))["loyalty_points"] == 200
