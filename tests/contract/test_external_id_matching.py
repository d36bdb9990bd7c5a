"""External ids in another case, and look-alikes across scripts (docs/identity.md): with
CONF_EXTERNAL_ID_CASE_INSENSITIVE an external id in another case is the same identifier, resolved
as one (the unique index on the key settles races); off, they are two customers, as in the API
family. A new external id that looks like another customer's in another script is warned of
(91030) and listed by `patron check`; `patron org apply` refuses to turn the setting on while
case variants are two customers."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from sqlalchemy import func, select

from support.api import Org, item, new_mobile
from support.orgs import org_document
from patron import checks
from patron.codes import Code
from patron.orgs.apply import apply_org
from patron.orgs.file import parse_org_document
from patron.store.db import create_engine, is_sqlite, transaction
from patron.store.postgres import PgCustomers
from patron.store.schema import customer_audits, customers
from patron.store.sqlite import SqliteCustomers
from test_check import violations, write_creation_audit, write_customer
from test_citus_routing import _hot, _routes, _two_phase_commits, citus, sent  # noqa: F401 (citus, sent: fixtures)

IGNORE_CASE = "CONF_EXTERNAL_ID_CASE_INSENSITIVE"
LOOKS_ALIKE = str(int(Code.EXTERNAL_ID_LOOKS_ALIKE))
# Cyrillic capital Es and A, drawn like Latin C and A.
CYRILLIC_CA = "\u0421\u0410"


def code_of(response: Any, index: int = 0) -> str:
    return item(response, index)["item_status"]["code"]


def warnings_of(response: Any, index: int = 0) -> list[str]:
    return item(response, index)["item_status"]["warnings"]["warning"]


@pytest.fixture
async def as_stored(make_org: Any) -> Org:
    return await make_org(CONF_REGISTRATION_PRIMARY_KEY="external_id")


@pytest.fixture
async def ignoring_case(make_org: Any) -> Org:
    return await make_org(CONF_REGISTRATION_PRIMARY_KEY="external_id", **{IGNORE_CASE: True})


async def audited_warnings(org: Org, customer_id: int) -> list[Any]:
    async with transaction(org.engine, readonly=True) as conn:
        return list(
            await conn.scalars(
                select(customer_audits.c.warnings).where(
                    customer_audits.c.org_id == org.id, customer_audits.c.customer_id == customer_id
                )
            )
        )


async def holders_of_key(org: Org, key: str) -> int:
    async with transaction(org.engine, readonly=True) as conn:
        return await conn.scalar(
            select(func.count()).where(customers.c.org_id == org.id, customers.c.external_id_key == key)
        )


# Setting off: the API family's matching.


async def test_external_ids_differing_by_case_are_two_customers_where_the_org_matches_them_as_stored(as_stored):
    n = new_mobile()
    first = await as_stored.add({"external_id": f"ABC-{n}", "mobile": n})
    second = await as_stored.add({"external_id": f"abc-{n}", "firstname": "Asha"})
    assert code_of(first) == code_of(second) == "1000"
    assert item(second)["item_status"]["message"] == "Customer registration successful"
    assert item(second)["user_id"] != item(first)["user_id"]


# Setting on: one identifier in any case.


async def test_an_external_id_in_another_case_resolves_to_the_customer_holding_it(ignoring_case):
    n = new_mobile()
    created = await ignoring_case.add({"external_id": f"abc-{n}", "mobile": n})
    again = await ignoring_case.add({"external_id": f"ABC-{n}", "firstname": "Asha"})
    assert code_of(again) == "1000"
    assert item(again)["user_id"] == item(created)["user_id"]
    # As an identical external id would: updated, no warning, the customer's spelling kept.
    assert item(again)["item_status"]["message"] == "Customer successfully updated"
    assert warnings_of(again) == []
    assert item(again)["external_id"] == f"abc-{n}"


async def test_case_folding_is_unicodes_not_asciis(ignoring_case):
    n = new_mobile()
    created = await ignoring_case.add({"external_id": f"STRASSE-{n}", "mobile": n})
    again = await ignoring_case.add({"external_id": f"stra\u00dfe-{n}", "firstname": "Asha"})
    assert item(again)["user_id"] == item(created)["user_id"]


async def test_get_finds_a_customer_by_its_external_id_in_any_case(ignoring_case):
    n = new_mobile()
    await ignoring_case.add({"external_id": f"Card-{n}", "mobile": n})
    assert item(await ignoring_case.get(external_id=f"CARD-{n}"))["mobile"] == n


async def test_case_variants_in_one_batch_are_one_customer(ignoring_case):
    n = new_mobile()
    response = await ignoring_case.add({"external_id": f"B-{n}", "mobile": n}, {"external_id": f"b-{n}", "firstname": "Ravi"})
    assert [item(response, i)["item_status"]["message"] for i in (0, 1)] == [
        "Customer registration successful", "Customer successfully updated",
    ]
    assert item(response, 0)["user_id"] == item(response, 1)["user_id"]


async def test_concurrent_adds_of_case_variants_make_one_customer(ignoring_case):
    n = new_mobile()
    spellings = [f"race-{n}", f"RACE-{n}", f"Race-{n}", f"rAcE-{n}", f"RACE-{n}", f"race-{n}"]
    responses = await asyncio.gather(*(ignoring_case.add({"external_id": spelling}) for spelling in spellings))
    assert {code_of(response) for response in responses} == {"1000"}
    assert len({item(response)["user_id"] for response in responses}) == 1
    messages = [item(response)["item_status"]["message"] for response in responses]
    assert messages.count("Customer registration successful") == 1
    assert await holders_of_key(ignoring_case, f"race-{n}") == 1


async def test_a_secondary_external_id_in_another_case_is_resolved_as_the_one_stored(make_org):
    org = await make_org(**{IGNORE_CASE: True})
    mobile, other = new_mobile(), new_mobile()
    holder = item(await org.add({"mobile": mobile, "external_id": f"Card-{mobile}"}))["user_id"]
    same = await org.add({"mobile": mobile, "external_id": f"CARD-{mobile}"})
    assert warnings_of(same) == []  # not 91006: the customer's own external id
    # No customer holds the new mobile, and the external id names the holder: the holder is
    # updated, its mobile kept (91005), exactly as for its external id as stored.
    found = await org.add({"mobile": other, "external_id": f"card-{mobile}"})
    assert item(found)["user_id"] == holder
    assert warnings_of(found) == [str(int(Code.PRIMARY_IDENTIFIER_NOT_UPDATABLE))]
    # A customer that has its own mobile cannot take it: 91007, as for the stored spelling.
    await org.add({"mobile": other})
    taken = await org.add({"mobile": other, "external_id": f"CARD-{mobile}"})
    assert warnings_of(taken) == [str(int(Code.IDENTIFIER_OCCUPIED))]
    assert item(taken)["external_id"] is None


async def test_customer_update_names_a_customer_by_its_external_id_in_any_case(ignoring_case):
    n = new_mobile()
    created = await ignoring_case.add({"external_id": f"up-{n}", "mobile": n})
    response = await ignoring_case.http.post(
        "/v1.1/customer/update",
        json={"root": {"customer": [{"external_id": f"UP-{n}", "firstname": "Meera"}]}},
        headers=ignoring_case.basic(),
    )
    assert code_of(response) == "1000"
    assert item(response)["user_id"] == item(created)["user_id"] and item(response)["firstname"] == "Meera"


# Turning the setting on or off: `patron org apply` keys the org's external ids again, or refuses.


async def applied(http: Any, app: Any, tmp_path: Path) -> tuple[Org, dict[str, Any], Path]:
    """An org (external id its primary identifier) applied from a document the test keeps, to
    apply it again edited, as an operator would, with `patron org apply`."""
    document = org_document("retail", CONF_REGISTRATION_PRIMARY_KEY="external_id")
    org_file = parse_org_document(document, "tests/orgs/retail.toml")
    engine = app.state.services.engine
    await apply_org(engine, org_file)
    passwords = {t.code: t.password for s in org_file.stores for t in s.tills if t.password}
    return Org(http, org_file, passwords, engine), document, tmp_path / f"org-{org_file.org.id}.toml"


async def test_turning_case_insensitive_matching_on_is_refused_while_case_variants_are_two_customers(
    http, app, tmp_path, patron  # noqa: F811
):
    org, document, path = await applied(http, app, tmp_path)
    n = new_mobile()
    upper = item(await org.add({"external_id": f"DUP-{n}"}))["user_id"]
    lower = item(await org.add({"external_id": f"dup-{n}"}))["user_id"]
    document["configs"][IGNORE_CASE] = True
    path.write_text(tomli_w.dumps(document))
    result = await patron.in_thread("org", "apply", str(path))
    assert result.exit_code != 0
    assert "refused, nothing applied" in result.output
    assert f"customer {upper} ('DUP-{n}') and customer {lower} ('dup-{n}')" in result.output
    # Nothing applied: the org still matches external ids as stored.
    third = await org.add({"external_id": f"Dup-{n}"})
    assert item(third)["item_status"]["message"] == "Customer registration successful"


async def test_turning_it_on_keys_the_orgs_external_ids_again(http, app, tmp_path, patron):  # noqa: F811
    org, document, path = await applied(http, app, tmp_path)
    n = new_mobile()
    created = await org.add({"external_id": f"On-{n}"})
    document["configs"][IGNORE_CASE] = True
    path.write_text(tomli_w.dumps(document))
    result = await patron.in_thread("org", "apply", str(path))
    assert result.exit_code == 0, result.output
    again = await org.add({"external_id": f"ON-{n}", "firstname": "Asha"})
    assert item(again)["user_id"] == item(created)["user_id"]
    # And off again: the keys are the external ids as stored once more.
    document["configs"][IGNORE_CASE] = False
    path.write_text(tomli_w.dumps(document))
    assert (await patron.in_thread("org", "apply", str(path))).exit_code == 0
    other = await org.add({"external_id": f"ON-{n}"})
    assert item(other)["user_id"] != item(created)["user_id"]


# Look-alikes across scripts: warned of, never merged.


async def test_a_new_external_id_like_another_customers_in_another_script_is_warned_of(as_stored):
    n = new_mobile()
    latin = await as_stored.add({"external_id": f"CARD-{n}"})
    cyrillic = await as_stored.add({"external_id": f"{CYRILLIC_CA}RD-{n}", "firstname": "Asha"})
    assert code_of(cyrillic) == "1000"
    assert item(cyrillic)["user_id"] != item(latin)["user_id"]
    assert warnings_of(cyrillic) == [LOOKS_ALIKE]
    assert item(cyrillic)["item_status"]["message"] == (
        "Customer registration successful, External id looks like another customer's but has a letter of"
        " another script, check it"
    )
    assert await audited_warnings(as_stored, item(cyrillic)["user_id"]) == [[int(LOOKS_ALIKE)]]


async def test_an_external_id_filled_in_like_another_customers_in_another_script_is_warned_of(org):
    n = new_mobile()
    await org.add({"mobile": new_mobile(), "external_id": f"CARD-{n}"})
    mobile = new_mobile()
    await org.add({"mobile": mobile})
    filled = await org.add({"mobile": mobile, "external_id": f"{CYRILLIC_CA}RD-{n}"})
    assert item(filled)["item_status"]["message"].startswith("Customer successfully updated")
    assert warnings_of(filled) == [LOOKS_ALIKE]


async def test_look_alike_letters_and_digits_of_one_script_are_not_warned_of(as_stored):
    n = new_mobile()
    await as_stored.add({"external_id": f"C0DE-{n}"})
    response = await as_stored.add({"external_id": f"CODE-{n}"})
    assert warnings_of(response) == []


async def test_look_alikes_in_another_case_are_warned_of_where_case_is_ignored(ignoring_case):
    n = new_mobile()
    await ignoring_case.add({"external_id": f"card-{n}"})
    response = await ignoring_case.add({"external_id": f"{CYRILLIC_CA}RD-{n}"})
    assert warnings_of(response) == [LOOKS_ALIKE]


async def test_patron_check_lists_external_ids_that_look_alike_across_scripts(as_stored):
    n = new_mobile()
    latin = item(await as_stored.add({"external_id": f"CARD-{n}"}))["user_id"]
    cyrillic = item(await as_stored.add({"external_id": f"{CYRILLIC_CA}RD-{n}"}))["user_id"]
    found = [detail for rule, detail in await violations(as_stored) if rule == checks.EXTERNAL_ID_LOOK_ALIKE]
    assert found == [
        f"external_id 'CARD-{n}' of customer {latin} and '{CYRILLIC_CA}RD-{n}' of customer {cyrillic} look alike"
        " but differ by a letter of another script: one person may be two customers"
    ]


async def test_patron_check_reports_an_external_id_kept_under_another_key_than_the_orgs_rule(ignoring_case):
    n = new_mobile()
    # Written as a worker that had not yet seen the org's setting would have written it.
    stale = await write_customer(ignoring_case, external_id=f"STALE-{n}", external_id_key=f"STALE-{n}")
    await write_creation_audit(ignoring_case, stale)
    found = [detail for rule, detail in await violations(ignoring_case) if rule == checks.EXTERNAL_ID_KEY]
    assert found == [
        f"external_id 'STALE-{n}' of customer {stale} is kept under the key 'STALE-{n}', not 'stale-{n}'"
        " (CONF_EXTERNAL_ID_CASE_INSENSITIVE = true): `patron org apply` mends it"
    ]


async def test_an_import_row_in_another_case_updates_the_customer_of_an_earlier_row_in_file_order(
    tmp_path, patron, database_url  # noqa: F811
):
    document = org_document("retail", CONF_REGISTRATION_PRIMARY_KEY="external_id", **{IGNORE_CASE: True})
    org_path = tmp_path / "org.toml"
    org_path.write_text(tomli_w.dumps(document))
    assert (await patron.in_thread("org", "apply", str(org_path))).exit_code == 0
    n = new_mobile()
    # One row a batch, two workers: the rows of one external id in two cases still go in order.
    rows = [f"IMP-{n},Asha", *(f"other-{n}-{i},Ravi" for i in range(4)), f"imp-{n},Meera"]
    path = tmp_path / "customers.csv"
    path.write_text("external_id,firstname\n" + "\n".join(rows) + "\n")
    org_id = str(document["org"]["id"])
    result = await patron.in_thread("customer", "import", str(path), "--org", org_id, "--batch-size", "1", "--workers", "2")
    assert result.exit_code == 0, result.output
    assert "5 created, 1 updated, 0 rejected" in result.output
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            names = list(await conn.scalars(select(customers.c.firstname).where(
                customers.c.org_id == document["org"]["id"], customers.c.external_id_key == f"imp-{n}"
            )))
    finally:
        await engine.dispose()
    assert names == ["Meera"]


async def test_the_look_alike_check_runs_on_the_orgs_worker_alone(citus, as_stored, sent):  # noqa: F811
    n = new_mobile()
    await as_stored.add({"external_id": f"CARD-{n}"})
    committed, seen = await _two_phase_commits(citus), len(sent)
    response = await as_stored.add({"external_id": f"{CYRILLIC_CA}RD-{n}"})
    assert warnings_of(response) == [LOOKS_ALIKE]
    statements = sent[seen:]
    assert any("external_id_skeleton" in query and "SELECT" in query for query, _ in _hot(statements))
    assert await _routes(citus, as_stored.id, statements) == []
    assert await _two_phase_commits(citus) == committed


async def test_the_look_alike_check_looks_each_skeleton_up_in_its_index(as_stored):
    async with transaction(as_stored.engine) as conn:
        if is_sqlite(conn):
            sql, values = SqliteCustomers._look_alikes.sql, (as_stored.id, '["CARD-1"]')
            plan = " ".join(str(row) for row in await conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, values))
            assert "USING INDEX ix_customers_org_id_external_id_skeleton (org_id=? AND external_id_skeleton=?)" in plan
            return
        # The test's table is small: with no scan to fall back on, the plan shows the index serves
        # the statement (on Citus, in the org's shard's task, where the setting is passed on).
        await conn.exec_driver_sql("SET LOCAL citus.propagate_set_commands = 'local'")
        await conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        sql = PgCustomers._look_alikes.sql
        plan = " ".join(
            row[0] for row in await conn.exec_driver_sql("EXPLAIN " + sql, (as_stored.id, ["CARD-1"]))
        )
        assert "Index Scan using ix_customers_org_id_external_id_skeleton" in plan


async def test_update_identity_names_the_old_external_id_in_any_case_and_refuses_one_held_in_another(make_org):
    org = await make_org(CONF_IDENTITY_CHANGE_APPROVAL=False, **{IGNORE_CASE: True})
    n = new_mobile()
    mine = item(await org.add({"mobile": n, "external_id": f"Mine-{n}"}))["user_id"]
    await org.add({"mobile": new_mobile(), "external_id": f"Theirs-{n}"})

    async def change(old: str, new: str) -> Any:
        body = {"root": {"customer": {"identifier": "external_id", "old_value": old, "new_value": new}}}
        return item(await org.http.post("/v1.1/customer/update_identity", json=body, headers=org.basic()))

    taken = await change(f"MINE-{n}", f"THEIRS-{n}")
    assert (taken["item_status"]["code"], taken["updated"]) == (str(int(Code.IDENTIFIER_OCCUPIED)), "false")
    changed = await change(f"mine-{n}", f"New-{n}")
    assert (changed["item_status"]["code"], changed["updated"]) == ("1000", "true")
    # The request names the stored value it replaced, whatever spelling it was given.
    assert changed["old_value"] == f"Mine-{n}"
    assert item(await org.get(external_id=f"NEW-{n}"))["user_id"] == mine
