"""Test fixtures: each test runs against SQLite and PostgreSQL, in an org of its own."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import os
import tomllib
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

# Tests apply hundreds of org files; a production-strength argon2 hash would dominate the run.
os.environ.setdefault("PATRON_FAST_HASHES", "1")

import asyncpg
import httpx
import orjson
import pytest
from asgi_lifespan import LifespanManager

from patron.api.app import create_app
from patron.orgs.apply import apply_org
from patron.orgs.file import parse_org_document
from patron.orgs.policy import OrgFile
from patron.settings import Settings
from patron.store.migrate import upgrade

ROOT = Path(__file__).resolve().parent.parent
ORG_FILES = Path(__file__).parent / "orgs"
PG_ADMIN_DSN = os.environ.get("PATRON_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REQUIRE_PG = os.environ.get("PATRON_TEST_REQUIRE_PG") == "1"
# A database of a Citus cluster whose nodes are registered (../shared/citus/cluster.sh makes one):
# each run makes a database of its own on the coordinator and every worker beside it.
CITUS_ADMIN_DSN = os.environ.get("PATRON_TEST_CITUS", "postgresql://postgres@127.0.0.1:54350/patron")
REQUIRE_CITUS = os.environ.get("PATRON_TEST_REQUIRE_CITUS") == "1"
SECRET_KEY = "test-secret-key-that-is-long-enough-for-hs256"


def _pg_reachable(dsn: str = PG_ADMIN_DSN) -> str | None:
    async def probe() -> None:
        conn = await asyncpg.connect(dsn, timeout=3)
        await conn.close()

    try:
        asyncio.run(probe())
    except (OSError, asyncpg.PostgresError, asyncio.TimeoutError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


# The backends that did not answer, with why: their tests are left out at collection and said
# once at the end, instead of one skip line for each.
_UNREACHABLE: dict[str, str] = {}
_BACKENDS = {
    "postgresql": ("PostgreSQL half", PG_ADMIN_DSN, REQUIRE_PG, "PATRON_TEST_PG"),
    "citus": ("Citus third", CITUS_ADMIN_DSN, REQUIRE_CITUS, "PATRON_TEST_CITUS"),
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    wanted = {item.callspec.params.get("database_url") for item in items if hasattr(item, "callspec")}
    for backend, (_, dsn, required, _) in _BACKENDS.items():
        if backend in wanted and not required:
            problem = _pg_reachable(dsn)
            if problem:
                _UNREACHABLE[backend] = problem
    if not _UNREACHABLE:
        return
    left_out = [i for i in items if hasattr(i, "callspec") and i.callspec.params.get("database_url") in _UNREACHABLE]
    config.hook.pytest_deselected(items=left_out)
    dropped = set(left_out)
    items[:] = [i for i in items if i not in dropped]
    for backend in _UNREACHABLE:
        _UNREACHABLE[backend] += f"; {sum(i.callspec.params['database_url'] == backend for i in left_out)} tests left out"


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for backend, problem in _UNREACHABLE.items():
        name, dsn, _, variable = _BACKENDS[backend]
        terminalreporter.write_line(f"{name} skipped: no server at {dsn} (set {variable}) ({problem})")


@pytest.fixture(scope="session", params=["sqlite", "postgresql", "citus"])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated, empty database of each kind, for the whole session."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'patron.db'}"
        upgrade(url)
        yield url
        return
    if request.param == "citus":
        yield from _citus_database()
        return
    problem = _pg_reachable()
    if problem:
        if REQUIRE_PG:
            pytest.fail(f"PostgreSQL is required (PATRON_TEST_REQUIRE_PG=1) but unreachable: {problem}")
        pytest.skip(f"PostgreSQL half skipped: no server at {PG_ADMIN_DSN} ({problem})")
    name = f"patron_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_DSN.rsplit("/", 1)[0] + f"/{name}"
    try:
        upgrade(url)
        yield url
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _admin(statement: str, dsn: str = PG_ADMIN_DSN) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def _citus_database(migrate: bool = True) -> Iterator[str]:
    """A database of its own on every node of the cluster, with the extension and the workers
    registered, migrated (which distributes it) unless told not to."""
    problem = _pg_reachable(CITUS_ADMIN_DSN)
    if problem:
        if REQUIRE_CITUS:
            pytest.fail(f"Citus is required (PATRON_TEST_REQUIRE_CITUS=1) but unreachable: {problem}")
        pytest.skip(f"Citus third skipped: no cluster at {CITUS_ADMIN_DSN} ({problem})")
    name = f"patron_test_{uuid.uuid4().hex[:12]}"
    coordinator, workers = asyncio.run(_citus_nodes())
    nodes = [coordinator, *workers]
    url = CITUS_ADMIN_DSN.rsplit("/", 1)[0] + f"/{name}"
    try:
        for host, port in nodes:
            asyncio.run(_admin(f'CREATE DATABASE "{name}"', f"postgresql://postgres@{host}:{port}/postgres"))
            asyncio.run(_admin("CREATE EXTENSION citus", f"postgresql://postgres@{host}:{port}/{name}"))
        asyncio.run(_admin(
            f"SELECT citus_set_coordinator_host('{coordinator[0]}', {coordinator[1]});"
            + "".join(f"SELECT citus_add_node('{host}', {port});" for host, port in workers),
            url,
        ))
        if migrate:
            upgrade(url)
        yield url
    finally:
        for host, port in nodes:
            asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f"postgresql://postgres@{host}:{port}/postgres"))


async def _citus_nodes() -> tuple[tuple[str, int], list[tuple[str, int]]]:
    conn = await asyncpg.connect(CITUS_ADMIN_DSN)
    try:
        rows = await conn.fetch("SELECT nodename, nodeport, groupid FROM pg_dist_node WHERE noderole = 'primary' ORDER BY groupid")
    finally:
        await conn.close()
    coordinator = next(((r["nodename"], r["nodeport"]) for r in rows if r["groupid"] == 0), None)
    if coordinator is None:
        host, port = CITUS_ADMIN_DSN.split("@", 1)[1].split("/", 1)[0].split(":")
        coordinator = (host, int(port))
    return coordinator, [(r["nodename"], r["nodeport"]) for r in rows if r["groupid"] != 0]


@pytest.fixture
def empty_citus_database() -> Iterator[str]:
    """A Citus database of its own, not yet migrated."""
    yield from _citus_database(migrate=False)


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        secret_key=SECRET_KEY,
        org_cache_seconds=0,
        credential_cache_seconds=60,
        max_body_bytes=64 * 1024,
        # The suite verifies thousands of tills for the first time, far faster than a server's
        # budget for that allows; tests/test_credential_guessing.py tests the budget on its own.
        auth_unverified_hashes_per_second=0,
    )


@pytest.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[Any]:
    application = create_app(settings)
    async with LifespanManager(application):
        yield application


@pytest.fixture(scope="session")
async def http(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://patron.test") as client:
        yield client


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A client that sees what a caller sees: an unexpected failure arrives as the answer Patron
    sent (tests/envelope.py), not as the exception the in-process transport would re-raise."""
    from envelope import wire

    async with wire(app) as client:
        yield client


_org_ids = itertools.count(int(uuid.uuid4().int % 10_000_000) * 100 + 10_000)


class Org:
    """An applied org of a test, with helpers that call the API as one of its tills."""

    def __init__(self, http: httpx.AsyncClient, org_file: OrgFile, passwords: dict[str, str], engine: Any) -> None:
        self.http = http
        self.file = org_file
        self.id = org_file.org.id
        self.passwords = passwords
        self.engine = engine

    def till(self, index: int = 0) -> str:
        return [t.code for s in self.file.stores for t in s.tills][index]

    def till_named(self, suffix: str) -> str:
        return next(t.code for s in self.file.stores for t in s.tills if t.code.endswith(suffix))

    def console_user(self, prefix: str) -> str:
        """The login of a console user of this org, by the login the org file gives it (priya, ravi, meera)."""
        return next(u.login for u in self.file.console_users if u.login.startswith(f"{prefix}."))

    def basic(self, till: str | None = None, password: str | None = None) -> dict[str, str]:
        till = till or self.till()
        md5 = hashlib.md5((password or self.passwords[till]).encode()).hexdigest()
        return {"Authorization": "Basic " + base64.b64encode(f"{till}:{md5}".encode()).decode()}

    async def add(
        self, *customers: dict[str, Any], till: str | None = None, headers: dict[str, str] | None = None, **params: Any
    ) -> httpx.Response:
        body = {"root": {"customer": list(customers)}}
        return await self.http.post(
            "/v1.1/customer/add",
            content=orjson.dumps(body),
            params=params,
            headers={"Content-Type": "application/json", **self.basic(till), **(headers or {})},
        )

    async def get(self, till: str | None = None, **params: Any) -> httpx.Response:
        return await self.http.get("/v1.1/customer/get", params=params, headers=self.basic(till))


def org_document(name: str, **configs: Any) -> dict[str, Any]:
    """A test org file from tests/orgs, with configs overridden and a fresh org id and till codes."""
    data = tomllib.loads((ORG_FILES / f"{name}.toml").read_text())
    org_id = next(_org_ids)
    data["org"]["id"] = org_id
    data.setdefault("configs", {}).update(configs)
    renamed: dict[str, str] = {}
    for store in data.get("stores", []):
        for till in store.get("tills", []):
            renamed[till["code"]] = till["code"] = f"{till['code']}.{org_id}"
    for client in data.get("api_clients", []):
        client["key"] = f"{client['key']}.{org_id}"
        client["default_till"] = renamed.get(client["default_till"], client["default_till"])
    for user in data.get("console_users", []):
        user["login"] = f"{user['login']}.{org_id}"
    return data


@pytest.fixture
def make_org(http: httpx.AsyncClient, app: Any):  # noqa: ANN201
    """Apply a test org (tests/orgs/NAME.toml) under a fresh id; returns an Org to call the API with."""

    async def make(name: str = "retail", **configs: Any) -> Org:
        document = org_document(name, **configs)
        org_file = parse_org_document(document, f"tests/orgs/{name}.toml")
        engine = app.state.services.engine
        await apply_org(engine, org_file)
        passwords = {t.code: t.password for s in org_file.stores for t in s.tills if t.password}
        passwords.update({user.login: user.password for user in org_file.console_users if user.password})
        return Org(http, org_file, passwords, engine)

    return make


@pytest.fixture
async def org(make_org: Any) -> Org:
    return await make_org()


@pytest.fixture
def patron(database_url: str, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    """Run the `patron` command against the session's database, as an operator would."""
    from click.testing import CliRunner

    from patron.cli import main

    monkeypatch.setenv("PATRON_DATABASE_URL", database_url)

    def run(*args: str):  # noqa: ANN202
        return CliRunner().invoke(main, list(args), catch_exceptions=False)

    return run


_mobiles = itertools.count(int(uuid.uuid4().int % 9_000_000))


def new_mobile() -> str:
    """A valid Indian mobile that no other test uses in this session."""
    return f"9198{next(_mobiles) % 100_000_000:08d}"


def item(response: httpx.Response, index: int = 0) -> dict[str, Any]:
    return response.json()["response"]["customers"]["customer"][index]


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
