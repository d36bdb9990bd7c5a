"""`patron customer export`: an org's customers, streamed, in the import's columns; exported, then
imported into a fresh database, they are the same customers."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import tomli_w
from click.testing import CliRunner

from support.api import new_mobile
from support.backends import CITUS_ADMIN_DSN, PG_ADMIN_DSN, REQUIRE_CITUS, REQUIRE_PG, citus_database, pg_reachable, postgresql_database
from support.commands import Patron
from support.orgs import org_document
from patron.cli import main
from patron.store.customer_export import customer_pages
from patron.store.db import create_engine
from patron.store.migrate import upgrade


@contextmanager
def migrated_database(backend: str, folder: Path) -> Iterator[str]:
    """A database of its own, migrated and empty: a fresh installation."""
    if backend == "sqlite":
        url = f"sqlite:///{folder / f'{uuid.uuid4().hex[:8]}.db'}"
        upgrade(url)
        yield url
        return
    if backend == "citus":
        yield from citus_database()  # a database of its own on every node, migrated
        return
    yield from postgresql_database()


@pytest.fixture(params=["sqlite", "postgresql", "citus"])
def backend(request: pytest.FixtureRequest) -> str:
    dsn, required = {"postgresql": (PG_ADMIN_DSN, REQUIRE_PG), "citus": (CITUS_ADMIN_DSN, REQUIRE_CITUS)}.get(
        request.param, (None, False)
    )
    problem = pg_reachable(dsn) if dsn else None
    if problem:
        if required:
            pytest.fail(f"{request.param} is required but unreachable at {dsn}: {problem}")
        pytest.skip(f"no {request.param} at {dsn} ({problem})")
    return request.param


def apply(database_url: str, document: dict, folder: Path) -> None:
    path = folder / "org.toml"
    path.write_text(tomli_w.dumps(document))
    result = Patron(database_url)("org", "apply", str(path))
    assert result.exit_code == 0, result.output


def customers_sent(document: dict) -> list[dict]:
    """Customers with every field the import reads: identifiers of two countries, a past
    registration, a non-loyalty one, custom fields of every type, extended fields, subscriptions
    and channels, and a value with a comma and quotes, which CSV must quote."""
    till = document["stores"][0]["tills"][0]["code"]
    rich = {
        "mobile": "971501234567",
        "email": "meera.iyer@example.com",
        "external_id": "EXT-0001",
        "firstname": "Meera",
        "lastname": "Iyer",
        "registered_on": "2024-03-05 10:15:00",
        "source": "ecommerce",
        "accountId": "acct-7",
        "fraud_status": "MARKED",
        "registered_till": till,
        "associated_with": till,
        "custom_fields": {"field": [
            {"name": "City_name", "value": 'Chennai, "TN"'}, {"name": "pincode", "value": "600001"},
            {"name": "visits", "value": "12"}, {"name": "pwgConsumption", "value": "3.75"},
            {"name": "newsletter", "value": "true"}, {"name": "anniversary", "value": "2019-11-02"},
            {"name": "last_visit", "value": "2024-02-29 18:30:00"}, {"name": "club", "value": "Gold"},
        ]},
        "extended_fields": {"field": [
            {"name": "gender", "value": "Female"}, {"name": "dob", "value": "1990-07-14"},
            {"name": "age_group", "value": "26-40"}, {"name": "shoe_size", "value": "38"},
        ]},
        "subscriptions": {"subscription": [{"channel": "sms", "priority": "TRANS", "scope": "all", "is_subscribed": "0"}]},
        "commChannels": {"commChannel": [{"type": "whatsapp", "value": "971501234567", "primary": "true",
                                          "verified": "false", "meta": {"lastViewed": "2024-03-01"}}]},
    }
    plain = [{"mobile": new_mobile(), "firstname": f"Customer {n}", "registered_on": f"2025-01-{n + 10} 09:00:00"}
             for n in range(6)]
    non_loyalty = {"mobile": new_mobile(), "email": "walk.in@example.com", "type": "non_loyalty", "lastname": "Walk-in"}
    return [rich, *plain, non_loyalty]


def exported(database_url: str, org_id: int, file_format: str) -> str:
    result = CliRunner().invoke(
        main, ["customer", "export", "--org", str(org_id), "--format", file_format],
        env={"PATRON_DATABASE_URL": database_url}, catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    return result.stdout


def imported(database_url: str, org_id: int, path: Path) -> str:
    result = Patron(database_url)("customer", "import", str(path), "--org", str(org_id), "--workers", "1")
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("file_format", ["jsonl", "csv"])
def test_an_export_imported_into_a_fresh_database_gives_the_same_customers(backend, tmp_path, file_format):
    document = org_document("fields")
    org_id = document["org"]["id"]
    sent = customers_sent(document)
    source = tmp_path / "sent.jsonl"
    source.write_text("".join(json.dumps(customer) + "\n" for customer in sent))
    with migrated_database(backend, tmp_path) as first, migrated_database(backend, tmp_path) as fresh:
        apply(first, document, tmp_path)
        summary = imported(first, org_id, source)
        assert f"{len(sent)} created, 0 updated, 0 rejected" in summary and "warnings" not in summary, summary
        before = exported(first, org_id, file_format)
        path = tmp_path / f"export.{file_format}"
        path.write_text(before)
        apply(fresh, document, tmp_path)
        summary = imported(fresh, org_id, path)
        assert f"{len(sent)} created, 0 updated, 0 rejected" in summary and "warnings" not in summary, summary
        assert exported(fresh, org_id, file_format) == before
        # JSON lines hold every field; CSV every one but the lists of objects.
        items = [json.loads(line) for line in exported(fresh, org_id, "jsonl").splitlines()]
    rich = next(item for item in items if item.get("external_id") == "EXT-0001")
    expected = {key: value for key, value in sent[0].items() if file_format == "jsonl" or key not in ("subscriptions", "commChannels")}
    assert rich == {**expected, "type": "LOYALTY"}
    assert sorted(str(item.get("mobile")) for item in items) == sorted(str(customer.get("mobile")) for customer in sent)
    walk_in = next(item for item in items if item.get("email") == "walk.in@example.com")
    assert walk_in["type"] == "NON_LOYALTY" and walk_in["lastname"] == "Walk-in"


def test_a_csv_export_has_the_import_columns_for_every_field_of_the_org(backend, tmp_path):
    document = org_document("fields")
    with migrated_database(backend, tmp_path) as database_url:
        apply(database_url, document, tmp_path)
        header = next(csv.reader(io.StringIO(exported(database_url, document["org"]["id"], "csv"))))
    custom = [f"custom.{field['name']}" for field in document["custom_fields"]]
    extended = [f"extended.{field['name']}" for field in document["extended_fields"]]
    assert header[:3] == ["mobile", "email", "external_id"]
    assert set(custom + extended + ["extended.gender", "extended.dob"]) <= set(header)


def test_customers_are_read_a_page_at_a_time_in_id_order(backend, tmp_path):
    document = org_document("fields")
    org_id = document["org"]["id"]
    source = tmp_path / "sent.jsonl"
    source.write_text("".join(json.dumps({"mobile": new_mobile()}) + "\n" for _ in range(5)))

    async def pages(database_url: str) -> list[list[int]]:
        engine = create_engine(database_url)
        try:
            return [[customer.id for customer in page] async for page in customer_pages(engine, org_id, page=2)]
        finally:
            await engine.dispose()

    with migrated_database(backend, tmp_path) as database_url:
        apply(database_url, document, tmp_path)
        imported(database_url, org_id, source)
        read = asyncio.run(pages(database_url))
    assert [len(page) for page in read] == [2, 2, 1]
    ids = [customer_id for page in read for customer_id in page]
    assert ids == sorted(ids)


def test_exporting_an_unknown_org_is_one_line_and_a_non_zero_exit(tmp_path):
    with migrated_database("sqlite", tmp_path) as database_url:
        result = Patron(database_url)("customer", "export", "--org", "987654321")
    assert result.exit_code == 1 and result.output.splitlines() == ["Error: no org 987654321"]


def test_export_to_a_file_takes_its_format_from_the_suffix_and_counts_on_standard_error(tmp_path):
    document = org_document("fields")
    org_id = document["org"]["id"]
    source = tmp_path / "sent.jsonl"
    source.write_text(json.dumps({"mobile": new_mobile(), "firstname": "Asha"}) + "\n")
    with migrated_database("sqlite", tmp_path) as database_url:
        apply(database_url, document, tmp_path)
        imported(database_url, org_id, source)
        output = tmp_path / "out.jsonl"
        result = CliRunner().invoke(main, ["customer", "export", "--org", str(org_id), "-o", str(output)],
                                    env={"PATRON_DATABASE_URL": database_url}, catch_exceptions=False)
    assert result.exit_code == 0 and result.stdout == ""
    assert result.stderr == f"1 customer of org {org_id} exported to {output}\n"
    assert json.loads(output.read_text())["firstname"] == "Asha"
