"""The contract's fixtures: each test runs the in-process app against SQLite, PostgreSQL and Citus,
in an org of its own applied from the org files users write (tests/orgs/)."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from patron.api.app import create_app
from patron.auth import guard as guard_module
from patron.orgs.apply import apply_org
from patron.settings import Settings
from patron.store.migrate import upgrade
from support.api import SECRET_KEY, Org
from support.commands import Patron
from support.console import Console
from support.backends import citus_database, postgresql_database
from support.orgs import org_file


@pytest.fixture(scope="session", params=["sqlite", "postgresql", "citus"])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated, empty database of each kind, for the whole session."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'patron.db'}"
        upgrade(url)
        yield url
    elif request.param == "citus":
        yield from citus_database()
    else:
        yield from postgresql_database()


@pytest.fixture
def empty_citus_database() -> Iterator[str]:
    """A Citus database of its own, not yet migrated."""
    yield from citus_database(migrate=False)


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        secret_key=SECRET_KEY,
        org_cache_seconds=0,
        credential_cache_seconds=60,
        max_body_bytes=64 * 1024,
        # The suite verifies thousands of tills for the first time, far faster than a server's
        # budget for that allows; test_credential_guessing.py tests the budget on its own.
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
    sent (support/envelope.py), not as the exception the in-process transport would re-raise."""
    from support.envelope import wire

    async with wire(app) as client:
        yield client


@pytest.fixture
def make_org(http: httpx.AsyncClient, app: Any):  # noqa: ANN201
    """Apply a test org (tests/orgs/NAME.toml) under a fresh id; returns an Org to call the API with."""

    async def make(name: str = "retail", **configs: Any) -> Org:
        applied = org_file(name, **configs)
        engine = app.state.services.engine
        await apply_org(engine, applied)
        passwords = {t.code: t.password for s in applied.stores for t in s.tills if t.password}
        passwords.update({user.login: user.password for user in applied.console_users if user.password})
        return Org(http, applied, passwords, engine)

    return make


@pytest.fixture
async def org(make_org: Any) -> Org:
    return await make_org()


_addresses = itertools.count(1)


@pytest.fixture
async def browser(app: Any) -> AsyncIterator[Console]:
    """The console in a browser of its own, on the in-process app."""
    # An address of its own, so that failures counted here never reach another test's limit.
    # raise_app_exceptions=False: it sees what a browser sees, a failure as the page Patron sent.
    transport = httpx.ASGITransport(
        app=app, client=(f"10.20.{next(_addresses) % 250}.{next(_addresses) % 250}", 50000), raise_app_exceptions=False
    )
    async with httpx.AsyncClient(transport=transport, base_url="http://patron.test") as client:
        yield Console(client)


@pytest.fixture
async def other_browser(app: Any) -> AsyncIterator[Console]:
    transport = httpx.ASGITransport(app=app, client=(f"10.30.{next(_addresses) % 250}.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://patron.test") as client:
        yield Console(client)


@pytest.fixture
def patron(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Patron:
    """The `patron` command against the session's database, as an operator runs it."""
    monkeypatch.setenv("PATRON_DATABASE_URL", database_url)
    return Patron(database_url)


@pytest.fixture
def hashes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The secrets of every slow hash run from now on."""
    hashed: list[str] = []
    real = guard_module.verify_secret

    def counting(stored_hash: str, secret: str) -> bool:
        hashed.append(secret)
        return real(stored_hash, secret)

    monkeypatch.setattr(guard_module, "verify_secret", counting)
    return hashed

