"""The unit layer: rules on plain data, on the in-memory storage (fakes.py) and on orgs read from
the org files (support/orgs.py), in milliseconds. No app and no database: a unit test that opens
an engine fails, saying so; what needs one is a contract test (tests/contract)."""

from __future__ import annotations

from typing import Any, NoReturn

import pytest


@pytest.fixture(autouse=True)
def no_database(monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(*args: Any, **kwargs: Any) -> NoReturn:
        raise AssertionError("a unit test opens no database: this one belongs in tests/contract")

    monkeypatch.setattr("patron.store.db.create_async_engine", refused)
