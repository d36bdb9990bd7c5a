"""`patron customer import`: the add API's rules for a whole file, resumable and safe to re-run."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import tomli_w
from sqlalchemy import func, select, text

from support.api import new_mobile
from support.orgs import org_document
from patron.bulk import read_rows
from patron.store.db import create_engine
from patron.store.schema import customers, points_ledger


def _applied(patron, tmp_path: Path, name: str = "rewards") -> dict:
    document = org_document(name)
    path = tmp_path / "org.toml"
    path.write_text(tomli_w.dumps(document))
    assert patron("org", "apply", str(path)).exit_code == 0
    return document


async def _count(database_url: str, query) -> int:  # noqa: ANN001
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            return await conn.scalar(query)
    finally:
        await engine.dispose()


RETAIL_HEADER = "mobile,email,firstname,custom.City_name,extended.gender"
# The rewards org declares no custom field: its fourth column is a standard one.
REWARDS_HEADER = "mobile,email,firstname,lastname,extended.gender"


def _csv(tmp_path: Path, rows: list[str], header: str = RETAIL_HEADER) -> Path:
    path = tmp_path / "customers.csv"
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return path


def test_a_csv_file_registers_every_valid_row_and_reports_the_rest(patron, tmp_path):
    document = _applied(patron, tmp_path, "retail")
    mobiles = [new_mobile() for _ in range(3)]
    path = _csv(tmp_path, [f"{m},{m}@import.example,Asha,Pune,F" for m in mobiles] + ["12,bad@,Bad,,"])
    result = patron("customer", "import", str(path), "--org", str(document["org"]["id"]))
    assert result.exit_code == 0, result.output
    assert "3 created, 0 updated, 1 rejected" in result.output
    report = (tmp_path / "customers.csv.rejected.csv").read_text().splitlines()
    assert report[0] == "row,code,message,warnings,mobile,email,external_id"
    assert report[1].startswith("4,1001,Unable to register. Invalid mobile number.")


def test_json_lines_are_read_like_add_items(patron, tmp_path):
    document = _applied(patron, tmp_path, "rewards")
    path = tmp_path / "customers.jsonl"
    mobile = new_mobile()
    path.write_text(json.dumps({"mobile": mobile, "custom_fields": {"field": []}, "type": "loyalty"}) + "\n{not json\n")
    result = patron("customer", "import", str(path), "--org", str(document["org"]["id"]))
    assert "1 created, 0 updated, 1 rejected" in result.output


def test_running_the_same_file_again_awards_nothing_twice(patron, tmp_path, database_url):
    document = _applied(patron, tmp_path, "rewards")
    org_id = document["org"]["id"]
    mobiles = [new_mobile() for _ in range(4)]
    path = _csv(tmp_path, [f"{m},{m}@import.example,Asha,,F" for m in mobiles], REWARDS_HEADER)
    first = patron("customer", "import", str(path), "--org", str(org_id))
    second = patron("customer", "import", str(path), "--org", str(org_id))
    assert "4 created, 0 updated" in first.output and "0 created, 0 updated, 4 unchanged" in second.output
    awards = asyncio.run(_count(database_url, select(func.count()).select_from(points_ledger).where(points_ledger.c.org_id == org_id)))
    # 100 registration points and 110 of the alternate currency, once per customer.
    assert awards == 4 * 2


def test_resume_continues_after_the_last_committed_batch(patron, tmp_path):
    document = _applied(patron, tmp_path, "retail")
    org_id = str(document["org"]["id"])
    mobiles = [new_mobile() for _ in range(5)]
    path = _csv(tmp_path, [f"{m},,Asha,," for m in mobiles])
    # An earlier run that stopped after its first batch of two rows left this state behind.
    patron("customer", "import", str(path), "--org", org_id, "--batch-size", "2")
    state = tmp_path / "customers.csv.import-state.json"
    saved = json.loads(state.read_text())
    assert saved["rows_done"] == 5
    saved["rows_done"] = 2
    state.write_text(json.dumps(saved))
    resumed = patron("customer", "import", str(path), "--org", org_id, "--resume")
    assert "3 rows" in resumed.output and "2 skipped (resumed)" in resumed.output


def test_an_unknown_org_is_refused_in_one_line(patron, tmp_path):
    path = _csv(tmp_path, [f"{new_mobile()},,Asha,,"])
    result = patron("customer", "import", str(path), "--org", "424242424")
    assert result.exit_code != 0 and result.output.splitlines() == ["Error: no org 424242424"]


def test_several_processes_import_every_row_and_keep_the_file_order_of_one_customer(patron, tmp_path, database_url):
    document = _applied(patron, tmp_path, "retail")
    org_id = document["org"]["id"]
    mobiles = [new_mobile() for _ in range(12)]
    # Batches of two: the customer of the first row is renamed four batches later, in another
    # spelling of the same mobile, and must end with the later name.
    rows = [f"{m},,Asha,," for m in mobiles]
    rows.insert(8, f"+{mobiles[0][:2]} {mobiles[0][2:]},,Meera,,")
    path = _csv(tmp_path, rows)
    result = patron("customer", "import", str(path), "--org", str(org_id), "--batch-size", "2", "--workers", "2")
    assert result.exit_code == 0, result.output
    assert "13 rows" in result.output and "12 created, 1 updated, 0 rejected" in result.output
    state = json.loads((tmp_path / "customers.csv.import-state.json").read_text())
    assert state["rows_done"] == 13
    names = asyncio.run(_count(database_url, select(customers.c.firstname).where(
        customers.c.org_id == org_id, customers.c.mobile == mobiles[0]
    )))
    assert names == "Meera"


def test_a_csv_row_is_read_as_the_add_item_its_header_names(tmp_path):
    # Empty cells are not sent; custom.X and extended.X become fields in column order; of a
    # repeated column the last cell counts; a short row lacks its last cells; cells beyond the
    # header and blank lines are not read, and rows are numbered as read.
    path = tmp_path / "customers.csv"
    path.write_text(
        "\ufeffmobile,custom.city,email,extended.gender,custom.visits,firstname,email\n"
        "919800000001,Pune,,F,3,Asha,a@x.example\n"
        "\n"
        "919800000002,,b@x.example,,,,\n"
        "919800000003,Goa\n"
        "919800000004,,,,,,c@x.example,beyond\n"
    )
    assert list(read_rows(path)) == [
        (1, {
            "mobile": "919800000001",
            "email": "a@x.example",
            "firstname": "Asha",
            "custom_fields": {"field": [{"name": "city", "value": "Pune"}, {"name": "visits", "value": "3"}]},
            "extended_fields": {"field": [{"name": "gender", "value": "F"}]},
        }),
        (2, {"mobile": "919800000002"}),
        (3, {"mobile": "919800000003", "custom_fields": {"field": [{"name": "city", "value": "Goa"}]}}),
        (4, {"mobile": "919800000004", "email": "c@x.example"}),
    ]


def test_an_import_leaves_the_planner_counting_the_rows_it_wrote(patron, tmp_path, database_url):
    # Statistics from before a bulk load would let the planner pick a scan of the whole org for
    # every look-up; the import refreshes them for each table it wrote.
    document = _applied(patron, tmp_path, "rewards")
    path = _csv(tmp_path, [f"{m},{m}@import.example,Asha,,F" for m in (new_mobile() for _ in range(6))], REWARDS_HEADER)
    assert "6 created" in patron("customer", "import", str(path), "--org", str(document["org"]["id"])).output
    tables = ("customers", "customer_audits", "memberships", "points_ledger")
    assert asyncio.run(_planner_rows(database_url, tables)) == asyncio.run(_table_rows(database_url, tables))


async def _table_rows(database_url: str, tables: tuple[str, ...]) -> dict[str, int]:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            return {table: await conn.scalar(text(f"SELECT count(*) FROM {table}")) for table in tables}
    finally:
        await engine.dispose()


async def _planner_rows(database_url: str, tables: tuple[str, ...]) -> dict[str, int]:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            if engine.dialect.name == "sqlite":
                # sqlite_stat1 holds, for each index, "rows-in-table ..." as ANALYZE counted them.
                rows = await conn.execute(text("SELECT tbl, max(CAST(stat AS INTEGER)) FROM sqlite_stat1 GROUP BY tbl"))
            elif await conn.scalar(text("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus')")):
                # On Citus the planner's counts are the shards', on the workers that hold them.
                rows = await conn.execute(text(
                    " UNION ALL ".join(
                        f"SELECT '{table}', sum(CAST(result AS real))::bigint FROM run_command_on_shards('{table}',"
                        " $$SELECT reltuples FROM pg_class WHERE oid = '%s'::regclass$$)"
                        for table in tables
                    )
                ))
            else:
                rows = await conn.execute(text("SELECT relname, reltuples::bigint FROM pg_class WHERE relkind = 'r'"))
            counted = dict(rows.all())
            return {table: counted.get(table) for table in tables}
    finally:
        await engine.dispose()


def test_unknown_columns_are_refused_before_any_row_is_written_with_the_nearest_known_name(patron, tmp_path, database_url):
    document = _applied(patron, tmp_path, "retail")
    mobile = new_mobile()
    path = _csv(tmp_path, [f"{mobile},Asha,Pune,x"], header="mobile,first_name,custom.Cityname,shoe_colour")
    result = patron("customer", "import", str(path), "--org", str(document["org"]["id"]))
    assert result.exit_code == 1
    # The header is checked before a progress bar is drawn: the refusal is all there is.
    assert result.output.splitlines() == [(
        f"Error: customers.csv: no field of org {document['org']['id']} is named 'first_name' (did you mean 'firstname'?),"
        " 'custom.Cityname' (did you mean 'custom.City_name'?), 'shoe_colour'; nothing was imported"
    )]
    assert asyncio.run(_count(database_url, select(func.count()).select_from(customers).where(customers.c.mobile == mobile))) == 0


def test_values_dropped_with_a_warning_are_counted_by_code_and_each_row_is_in_the_report(patron, tmp_path):
    document = _applied(patron, tmp_path, "fields")
    mobiles = [new_mobile() for _ in range(4)]
    path = _csv(tmp_path, [
        f"{mobiles[0]},not-an-email,560001,Gold",
        f"{mobiles[1]},b@x.example,56A001,Gold",
        f"{mobiles[2]},,560001,Platinum",
        f"{mobiles[3]},d@x.example,560001,Silver",
    ], header="mobile,email,custom.pincode,custom.club")
    result = patron("customer", "import", str(path), "--org", str(document["org"]["id"]))
    assert result.exit_code == 0, result.output
    assert "4 created, 0 updated, 0 rejected" in result.output
    assert "warnings (the value was not applied, the row was): 1002 x1, 1017 x2" in result.output
    report = (tmp_path / "customers.csv.rejected.csv").read_text().splitlines()
    assert report[1:] == [
        f"1,1000,\"Customer registration successful, Email is invalid and is not the primary identifier, ignoring it\",1002,{mobiles[0]},not-an-email,",
        f"2,1000,\"Customer registration successful, Provided Custom Field is invalid\",1017,{mobiles[1]},b@x.example,",
        f"3,1000,\"Customer registration successful, Provided Custom Field is invalid\",1017,{mobiles[2]},,",
    ]


def test_json_lines_report_in_file_order_with_a_code_for_a_malformed_line_and_one_row_is_1_row(patron, tmp_path):
    document = _applied(patron, tmp_path, "retail")
    org_id = str(document["org"]["id"])
    path = tmp_path / "customers.jsonl"
    lines = [json.dumps({"mobile": "12"}) if n % 3 == 0 else "{not json" if n % 3 == 1 else json.dumps({"mobile": new_mobile()})
             for n in range(9)]
    path.write_text("\n".join(lines) + "\n")
    result = patron("customer", "import", str(path), "--org", org_id, "--batch-size", "1", "--workers", "3")
    assert "3 created, 0 updated, 6 rejected" in result.output, result.output
    report = (tmp_path / "customers.jsonl.rejected.csv").read_text().splitlines()[1:]
    assert [int(line.split(",")[0]) for line in report] == [1, 2, 4, 5, 7, 8]
    malformed = [line for line in report if line.split(",")[0] in ("2", "5", "8")]
    assert all(line.split(",")[1] == "400" and "malformed JSON" in line for line in malformed)
    one = tmp_path / "one.jsonl"
    one.write_text(json.dumps({"mobile": new_mobile()}) + "\n")
    assert "1 row in " in patron("customer", "import", str(one), "--org", org_id).output


def test_the_sample_files_import_into_the_demo_org_as_docs_import_md_says(tmp_path):
    import re
    import shutil

    from click.testing import CliRunner

    from support import ROOT
    from patron.cli import main
    from patron.store.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'patron.db'}"
    upgrade(url)

    def run(*args: str):  # noqa: ANN202
        return CliRunner().invoke(main, list(args), env={"PATRON_DATABASE_URL": url}, catch_exceptions=False)

    assert run("org", "apply", str(ROOT / "examples" / "demo-org.toml")).exit_code == 0
    page = (ROOT / "docs" / "import.md").read_text(encoding="utf-8")
    for name in ("customers.csv", "customers.jsonl"):
        shutil.copy(ROOT / "examples" / name, tmp_path / name)
    imported = run("customer", "import", str(tmp_path / "customers.csv"), "--org", "1001", "--workers", "1")
    counts = re.search(r"5 rows in [\d.]+s \(\d+ rows/s\): (.*)", page).group(1)
    assert counts in imported.output and "warnings (the value was not applied, the row was): 1017 x1" in page
    assert "warnings (the value was not applied, the row was): 1017 x1" in imported.output
    shown = page.split("<!-- report:customers.csv -->\n```csv\n", 1)[1].split("```", 1)[0]
    assert (tmp_path / "customers.csv.rejected.csv").read_text() == shown
    lines = run("customer", "import", str(tmp_path / "customers.jsonl"), "--org", "1001", "--workers", "1").output
    assert "3 rows" in lines and "2 created, 0 updated, 1 rejected" in lines and "2 created, 0 updated, 1 rejected" in page
    assert (tmp_path / "customers.jsonl.rejected.csv").read_text().splitlines()[1].startswith("3,1034,")
