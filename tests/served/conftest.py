"""The served layer's fixtures: real `patron serve` processes on loopback, each on a migrated
SQLite file of its own, and Debian's chromium to look at them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest

from support.processes import Server, chromium, served, sqlite_env


@pytest.fixture(scope="module")
def serve(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Server]]:
    """Starts `patron serve` processes for the module, each named and given its environment
    variables (PATRON_...; None leaves one unset), on a SQLite file of the module's; all are
    stopped when it ends."""
    tmp = tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])
    env: dict[str, str] = {}
    with ExitStack() as running:

        def start(name: str, **settings: str | None) -> Server:
            if not env:
                env.update(sqlite_env(tmp))
            chosen = {**env, **settings}
            return running.enter_context(served(tmp, name, {k: v for k, v in chosen.items() if v is not None}))

        yield start


@pytest.fixture(scope="module")
def server(request: pytest.FixtureRequest, serve: Callable[..., Server]) -> Server:
    """The module's server, configured by its SERVER_SETTINGS (environment variables), if any."""
    return serve("server", **getattr(request.module, "SERVER_SETTINGS", {}))


@pytest.fixture(scope="module")
def browser(request: pytest.FixtureRequest) -> Iterator[Any]:
    """Chromium, headless, for the module; skipped where there is none, saying the module's
    RENDERED (what is then not rendered)."""
    with chromium(getattr(request.module, "RENDERED", "the pages")) as launched:
        yield launched
