"""The rules of registration (identity resolution, batches, rewards), run on the in-memory storage in
milliseconds. The HTTP suite on SQLite, PostgreSQL and Citus stays the contract; these say the rules."""

from __future__ import annotations

import tomllib
from datetime import datetime
from pathlib import Path
from typing import Any

from fakes import FakeStorage

from patron.codes import Code
from patron.customers.model import Caller
from patron.customers.registration import ItemResult, register
from patron.orgs.file import parse_org_document
from patron.orgs.model import OrgSettings

ORGS = Path(__file__).resolve().parent.parent / "orgs"
NOW = datetime(2026, 12, 5, 10, 0)
REWARDS = 469  # tests/orgs/rewards.toml: the default programme


def caller_of(name: str, **configs: Any) -> Caller:
    data = tomllib.loads((ORGS / f"{name}.toml").read_text())
    data.setdefault("configs", {}).update(configs)
    org = OrgSettings.from_file(parse_org_document(data, f"tests/orgs/{name}.toml"))
    till = data["stores"][0]["tills"][0]["code"]
    return Caller(org=org, till_code=till, api_client_key=None, request_id="unit")


async def add(storage: FakeStorage, caller: Caller, *items: dict[str, Any]) -> list[ItemResult]:
    return await register(list(items), caller, storage, NOW)


def codes(results: list[ItemResult]) -> list[Code]:
    return [result.code for result in results]


async def test_an_item_whose_primary_identifier_is_held_updates_that_customer():
    storage, caller = FakeStorage(), caller_of("retail")
    (created,) = await add(storage, caller, {"mobile": "919800000001", "firstname": "Asha"})
    (updated,) = await add(storage, caller, {"mobile": "919800000001", "lastname": "Rao"})
    assert (created.created, updated.created) == (True, False)
    assert updated.customer.id == created.customer.id
    assert (storage.customer("919800000001").firstname, storage.customer("919800000001").lastname) == ("Asha", "Rao")
    assert [audit["event_type"] for audit in storage.tables.audits] == ["CREATE", "UPDATE"]


async def test_a_secondary_identifier_held_by_another_customer_is_dropped_with_a_warning():
    storage, caller = FakeStorage(), caller_of("retail")
    await add(storage, caller, {"mobile": "919800000001"}, {"mobile": "919800000002", "external_id": "EXT-2"})
    (result,) = await add(storage, caller, {"mobile": "919800000001", "external_id": "EXT-2"})
    assert result.code == Code.ITEM_OK and not result.created
    assert result.warnings.codes == [Code.IDENTIFIER_OCCUPIED]
    assert storage.customer("919800000001").external_id is None
    assert storage.customer("919800000002").external_id == "EXT-2"


async def test_secondaries_held_by_two_customers_are_never_merged():
    storage, caller = FakeStorage(), caller_of("retail")
    await add(storage, caller, {"mobile": "919800000001", "email": "a@example.com"},
              {"mobile": "919800000002", "external_id": "EXT-2"})
    (result,) = await add(storage, caller, {"mobile": "919800000003", "email": "a@example.com", "external_id": "EXT-2"})
    assert result.code == Code.PRIMARY_IDENTIFIER_MISMATCH
    assert len(storage.tables.customers) == 2


async def test_a_later_item_of_a_batch_sees_what_an_earlier_one_wrote():
    storage, caller = FakeStorage(), caller_of("retail")
    first, second = await add(storage, caller, {"mobile": "919800000001", "firstname": "A"},
                              {"mobile": "919800000001", "firstname": "B"})
    assert codes([first, second]) == [Code.ITEM_OK, Code.ITEM_OK]
    assert (first.created, second.created) == (True, False)
    assert len(storage.tables.customers) == 1 and storage.customer("919800000001").firstname == "B"


async def test_items_past_the_batch_limit_fail_alone_with_1060():
    storage, caller = FakeStorage(), caller_of("retail", BATCH_LIMIT=2)
    results = await add(storage, caller, *({"mobile": f"91980000000{n}"} for n in range(1, 4)))
    assert codes(results) == [Code.ITEM_OK, Code.ITEM_OK, Code.BATCH_LIMIT_EXCEEDED]
    assert storage.customer("919800000003") is None


async def test_independent_new_customers_of_a_batch_are_written_in_one_unit():
    storage, caller = FakeStorage(), caller_of("retail")
    results = await add(storage, caller, *({"mobile": f"91980000001{n}"} for n in range(5)))
    assert codes(results) == [Code.ITEM_OK] * 5
    assert storage.units == 1


async def test_a_referred_new_member_and_its_referrer_are_rewarded_once():
    storage, caller = FakeStorage(), caller_of("rewards")
    (referrer,) = await add(storage, caller, {"mobile": "919800000001"})
    code = referrer.customer.referral_code
    (referee,) = await add(storage, caller, {"mobile": "919800000002", "referral_code": code})
    assert referee.code == Code.ITEM_OK and referee.warnings.codes == []
    assert storage.points(referee.customer.id, REWARDS) == 100 + 50
    assert storage.points(referrer.customer.id, REWARDS) == 100 + 100
    (again,) = await add(storage, caller, {"mobile": "919800000002", "referral_code": code})
    assert not again.created
    assert storage.points(referrer.customer.id, REWARDS) == 200
    assert storage.tables.referrals == {referee.customer.id: referrer.customer.id}


async def test_an_unknown_referral_code_registers_the_customer_with_a_warning():
    storage, caller = FakeStorage(), caller_of("rewards")
    (result,) = await add(storage, caller, {"mobile": "919800000001", "referral_code": "NOSUCHCODE"})
    assert result.code == Code.ITEM_OK and result.warnings.codes == [Code.REFERRER_NOT_FOUND]
    assert storage.points(result.customer.id, REWARDS) == 100


async def test_a_non_loyalty_customer_becoming_loyalty_joins_and_is_rewarded():
    storage, caller = FakeStorage(), caller_of("rewards")
    (registered,) = await add(storage, caller, {"mobile": "919800000001", "type": "NON_LOYALTY"})
    assert registered.memberships == [] and registered.customer.referral_code is None
    (joined,) = await add(storage, caller, {"mobile": "919800000001", "type": "LOYALTY"})
    assert [m.program_id for m in joined.memberships] == [REWARDS]
    assert storage.points(joined.customer.id, REWARDS) == 100
    assert joined.customer.referral_code is not None


async def test_a_new_customer_whose_mobile_was_taken_meanwhile_is_resolved_again_as_an_update():
    storage, caller = FakeStorage(), caller_of("retail")
    insert_new = storage.insert_new

    async def another_request_first(new_customers: Any, caller: Caller, at: datetime) -> list[int | None]:
        await insert_new([new_customers[0]], caller, at)  # the other request's customer, same mobile
        return await insert_new(new_customers, caller, at)

    storage.insert_new = another_request_first  # type: ignore[method-assign]
    (result,) = await add(storage, caller, {"mobile": "919800000001", "firstname": "Late"})
    assert result.code == Code.ITEM_OK and not result.created
    assert len(storage.tables.customers) == 1 and storage.customer("919800000001").firstname == "Late"


async def test_a_fault_writing_one_item_fails_it_alone_with_1099():
    storage, caller = FakeStorage(), caller_of("retail")
    storage.fail_on("919800000002")
    results = await add(storage, caller, *({"mobile": f"91980000000{n}"} for n in range(1, 4)))
    assert codes(results) == [Code.ITEM_OK, Code.ITEM_NOT_PROCESSED, Code.ITEM_OK]
    assert [storage.customer(f"91980000000{n}") is not None for n in range(1, 4)] == [True, False, True]
