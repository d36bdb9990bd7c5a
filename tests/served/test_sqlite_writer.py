"""SQLite's writer: concurrent units of work share one transaction, each all or nothing and in its
turn; reads never wait for it; processes on one file take turns without "database is locked"."""

from __future__ import annotations

import asyncio
import base64
import fcntl
import hashlib
import os
import sqlite3
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from asgi_lifespan import LifespanManager
from pydantic import ValidationError

from support.api import Org, SECRET_KEY, item, new_mobile
from support.orgs import org_document
from patron.api.app import create_app
from patron.orgs.apply import apply_org
from patron.orgs.file import parse_org_document
from patron.settings import Settings
from patron.store.db import DatabaseUnavailable
from patron.store.migrate import upgrade
from patron.store.sqlite_file import GroupWriter, SqliteFile
from support.processes import ROOT, VENV_BIN, sqlite_env, start

REFERRAL = "INSERT INTO referrals (org_id, referee_id, referrer_id, created_at) VALUES (1, ?, 0, '2026-01-01 00:00:00')"


@pytest.fixture
def sqlite_path(tmp_path: Path) -> Path:
    path = tmp_path / "patron.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
async def sqlite_file(sqlite_path: Path) -> AsyncIterator[SqliteFile]:
    file = SqliteFile(str(sqlite_path))
    transactions: list[int] = []
    file.writer.on_commit = transactions.append
    file.transactions = transactions  # type: ignore[attr-defined]
    yield file
    await file.close()


def referees(path: Path) -> list[int]:
    with sqlite3.connect(path) as conn:
        return [row[0] for row in conn.execute("SELECT referee_id FROM referrals ORDER BY referee_id")]


def refer(referee: int, fail: bool = False) -> Any:
    def work(conn: sqlite3.Connection) -> int:
        conn.execute(REFERRAL, (referee,))
        if fail:
            raise ValueError(f"unit {referee} fails after writing")
        return referee

    return work


async def test_concurrent_units_share_one_transaction_and_are_answered_once_it_commits(sqlite_file, sqlite_path):
    answers = await asyncio.gather(*(sqlite_file.writer.run(refer(n)) for n in range(1, 21)))
    assert answers == list(range(1, 21))
    assert referees(sqlite_path) == list(range(1, 21))
    # All were queued before the writer took the first: one transaction.
    assert sqlite_file.transactions == [20]


async def test_a_unit_that_fails_in_a_shared_transaction_undoes_its_own_writes_alone(sqlite_file, sqlite_path):
    answers = await asyncio.gather(
        *(sqlite_file.writer.run(refer(n, fail=n == 3)) for n in range(1, 6)), return_exceptions=True
    )
    assert answers[:2] + answers[3:] == [1, 2, 4, 5]
    assert isinstance(answers[2], ValueError)
    assert referees(sqlite_path) == [1, 2, 4, 5]
    assert sum(sqlite_file.transactions) == 5


async def test_each_unit_sees_what_the_units_before_it_in_its_transaction_wrote(sqlite_file):
    def count(conn: sqlite3.Connection) -> int:
        return conn.execute("SELECT count(*) FROM referrals").fetchone()[0]

    async def a_unit_of_statements() -> int:
        async with sqlite_file.writer.unit() as conn:
            await conn.execute(REFERRAL, (9,))
            (row,) = await conn.fetch("SELECT count(*) FROM referrals", ())
            return row[0]

    answers = await asyncio.gather(
        sqlite_file.writer.run(refer(1)), sqlite_file.writer.run(refer(2)), sqlite_file.writer.run(count),
        a_unit_of_statements(), sqlite_file.writer.run(count),
    )
    assert answers == [1, 2, 2, 3, 3]


async def test_a_unit_of_statements_that_raises_is_undone_and_the_others_commit(sqlite_file, sqlite_path):
    async def failing_unit() -> None:
        async with sqlite_file.writer.unit() as conn:
            await conn.execute(REFERRAL, (7,))
            raise ValueError("the unit's rule refuses the item")

    answers = await asyncio.gather(
        sqlite_file.writer.run(refer(1)), failing_unit(), sqlite_file.writer.run(refer(2)), return_exceptions=True
    )
    assert answers[0] == 1 and answers[2] == 2
    assert isinstance(answers[1], ValueError)
    assert referees(sqlite_path) == [1, 2]


async def test_a_commit_that_fails_answers_every_unit_in_it_unavailable_and_keeps_none(
    sqlite_file, sqlite_path, monkeypatch
):
    end = GroupWriter._end
    failures = iter([True])

    def failing_commit(self: GroupWriter, how: str) -> None:
        if how == "COMMIT" and next(failures, False):
            end(self, "ROLLBACK")
            raise sqlite3.OperationalError("disk I/O error")
        end(self, how)

    monkeypatch.setattr(GroupWriter, "_end", failing_commit)
    answers = await asyncio.gather(*(sqlite_file.writer.run(refer(n)) for n in range(1, 4)), return_exceptions=True)
    assert [type(answer) for answer in answers] == [DatabaseUnavailable] * 3
    assert referees(sqlite_path) == []
    # The writer goes on with the next transaction.
    assert await sqlite_file.writer.run(refer(4)) == 4
    assert referees(sqlite_path) == [4]


async def test_reads_do_not_wait_for_a_writer_in_the_middle_of_its_transaction(sqlite_file, sqlite_path):
    await sqlite_file.writer.run(refer(1))
    async with sqlite_file.writer.unit() as conn:
        await conn.execute(REFERRAL, (2,))
        # The reader answers at once, from the last committed state.
        rows = await sqlite_file.reader.fetch("SELECT referee_id FROM referrals ORDER BY referee_id", ())
        assert rows == [(1,)]
    assert referees(sqlite_path) == [1, 2]


async def test_a_process_holding_the_writer_too_long_is_not_waited_for_and_nothing_is_written_late(sqlite_path):
    """Another process that keeps the file's turn past the timeout (hung, stopped): the units
    waiting are answered unavailable, and are not written when the turn comes after all."""
    file = SqliteFile(str(sqlite_path), timeout=0.3)
    other_process = os.open(f"{sqlite_path}-writer", os.O_RDWR | os.O_CREAT)
    fcntl.flock(other_process, fcntl.LOCK_EX)
    try:
        with pytest.raises(DatabaseUnavailable, match="held the database's writer"):
            await file.writer.run(refer(1))
    finally:
        fcntl.flock(other_process, fcntl.LOCK_UN)
        os.close(other_process)
    assert await file.writer.run(refer(2)) == 2
    assert referees(sqlite_path) == [2]
    await file.close()


# --- through the API ------------------------------------------------------------------------


@pytest.fixture
async def sqlite_org(sqlite_path: Path) -> AsyncIterator[Org]:
    settings = Settings(database_url=f"sqlite:///{sqlite_path}", secret_key=SECRET_KEY, auth_unverified_hashes_per_second=0)
    application = create_app(settings)
    async with LifespanManager(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://patron.test") as http:
            org_file = parse_org_document(org_document("retail"), "tests/orgs/retail.toml")
            await apply_org(application.state.services.engine, org_file)
            passwords = {t.code: t.password for s in org_file.stores for t in s.tills if t.password}
            org = Org(http, org_file, passwords, application.state.services.engine)
            org.app = application  # type: ignore[attr-defined]
            yield org


async def test_concurrent_registrations_are_written_in_shared_transactions(sqlite_org):
    transactions: list[int] = []
    sqlite_org.app.state.services.storage.file.writer.on_commit = transactions.append
    mobiles = [new_mobile() for _ in range(40)]
    responses = await asyncio.gather(*(sqlite_org.add({"mobile": mobile}) for mobile in mobiles))
    assert [item(response)["item_status"]["code"] for response in responses] == ["1000"] * 40
    assert sum(transactions) == 40 and len(transactions) < 40
    found = [item(await sqlite_org.get(mobile=mobile)) for mobile in mobiles]
    assert [customer["mobile"] for customer in found] == mobiles
    assert len({customer["user_id"] for customer in found}) == 40


async def test_registrations_of_one_mobile_in_one_transaction_resolve_as_if_in_turn(sqlite_org):
    """The first creates the customer; each later one finds it taken by then and updates it."""
    mobile = new_mobile()
    responses = await asyncio.gather(
        *(sqlite_org.add({"mobile": mobile, "firstname": f"Racer{n}"}) for n in range(12))
    )
    items = [item(response) for response in responses]
    assert {i["item_status"]["code"] for i in items} == {"1000"}
    assert len({i["user_id"] for i in items}) == 1
    messages = [i["item_status"]["message"] for i in items]
    assert messages.count("Customer registration successful") == 1
    assert messages.count("Customer successfully updated") == 11


async def test_full_durability_is_a_setting(sqlite_path):
    settings = Settings(database_url=f"sqlite:///{sqlite_path}", secret_key=SECRET_KEY, sqlite_synchronous="FULL")
    application = create_app(settings)
    async with LifespanManager(application):
        sqlite = application.state.services.storage.file
        await sqlite.writer.run(refer(1))
        full = await sqlite.writer.run(lambda conn: conn.execute("PRAGMA synchronous").fetchone()[0])
        assert full == 2  # FULL: the WAL is synced at every commit
    with pytest.raises(ValidationError):
        Settings(database_url=f"sqlite:///{sqlite_path}", sqlite_synchronous="OFF")


# --- processes on one file ------------------------------------------------------------------


@pytest.fixture
def two_worker_server(tmp_path: Path) -> Iterator[Any]:
    env = sqlite_env(tmp_path, PATRON_WORKERS="2", PATRON_AUTH_UNVERIFIED_HASHES_PER_SECOND="0")
    org_file = tmp_path / "org.toml"
    org_file.write_text((ROOT / "tests" / "orgs" / "retail.toml").read_text())
    subprocess.run([str(VENV_BIN / "patron"), "org", "apply", str(org_file)], env=env, cwd=ROOT, check=True, timeout=60)
    server = start(tmp_path, "two-workers", env)
    try:
        yield server, env
    finally:
        server.process.terminate()
        server.process.wait(timeout=30)


async def test_two_workers_and_an_import_on_one_file_never_answer_database_is_locked(two_worker_server, tmp_path):
    server, env = two_worker_server
    rows = tmp_path / "customers.csv"
    rows.write_text("mobile,firstname\n" + "".join(f"91970{n:07d},Imported\n" for n in range(3000)))
    importing = subprocess.Popen(
        [str(VENV_BIN / "patron"), "customer", "import", str(rows), "--org", "1"],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    auth = "Basic " + base64.b64encode(f"till.one:{hashlib.md5(b'Pass123').hexdigest()}".encode()).decode()
    mobiles = [f"91980{n:07d}" for n in range(800)]
    limit = asyncio.Semaphore(32)

    async def add(client: httpx.AsyncClient, mobile: str) -> tuple[int, str]:
        async with limit:
            response = await client.post(
                "/v1.1/customer/add",
                content=orjson.dumps({"root": {"customer": [{"mobile": mobile}]}}),
                headers={"Authorization": auth, "Content-Type": "application/json"},
            )
            return response.status_code, response.json()["response"]["customers"]["customer"][0]["item_status"]["code"]

    async with httpx.AsyncClient(base_url=server.base, timeout=30) as client:
        answers = await asyncio.gather(*(add(client, mobile) for mobile in mobiles))
    output, _ = importing.communicate(timeout=120)
    assert answers == [(200, "1000")] * len(mobiles)
    assert importing.returncode == 0, output
    assert "3,000 created" in output, output
    assert "database is locked" not in server.log.read_text()
    with sqlite3.connect(tmp_path / "patron.db") as conn:
        assert conn.execute("SELECT count(*) FROM customers").fetchone()[0] == 3800
        assert conn.execute("SELECT count(DISTINCT id) FROM customers").fetchone()[0] == 3800
        assert conn.execute("SELECT count(*) FROM customer_audits WHERE event_type = 'CREATE'").fetchone()[0] == 3800


async def test_a_fault_that_ends_the_transaction_under_a_unit_is_unavailability_for_all_in_it(
    sqlite_file, sqlite_path
):
    """A full disk or an I/O error rolls SQLite's transaction back under a unit: nothing of the
    units in it is written, and each is answered unavailable (503, safe to retry), not as a fault."""

    async def unit_whose_transaction_ends() -> None:
        async with sqlite_file.writer.unit() as conn:
            await conn.execute(REFERRAL, (8,))
            conn.raw.execute("ROLLBACK")  # what SQLite does itself on SQLITE_FULL
            raise DatabaseUnavailable("database or disk is full")

    answers = await asyncio.gather(
        sqlite_file.writer.run(refer(1)), unit_whose_transaction_ends(), sqlite_file.writer.run(refer(2)),
        return_exceptions=True,
    )
    assert [type(answer) for answer in answers] == [DatabaseUnavailable] * 3
    assert referees(sqlite_path) == []
    assert await sqlite_file.writer.run(refer(3)) == 3
