"""What every layer of tests shares: fast password hashes, and the backends that did not answer
said once at the end instead of one skip line per test. Each layer's fixtures are its own
(tests/unit, tests/contract, tests/served)."""

from __future__ import annotations

import os
from typing import Any

# Tests apply hundreds of org files; a production-strength argon2 hash would dominate the run.
os.environ.setdefault("PATRON_FAST_HASHES", "1")

import pytest

from support.backends import BACKENDS, pg_reachable

# The backends that did not answer, with why: their tests are left out at collection and said
# once at the end, instead of one skip line for each.
_UNREACHABLE: dict[str, str] = {}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    wanted = {item.callspec.params.get("database_url") for item in items if hasattr(item, "callspec")}
    for backend, (_, dsn, required, _) in BACKENDS.items():
        if backend in wanted and not required:
            problem = pg_reachable(dsn)
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
        name, dsn, _, variable = BACKENDS[backend]
        terminalreporter.write_line(f"{name} skipped: no server at {dsn} (set {variable}) ({problem})")
