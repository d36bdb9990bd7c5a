"""Hints: why a value was refused or ignored, noted where the rule knows it, for the request's log line.

A hint is the operator's, never the caller's: the answer stays the API family's, codes and messages
alike. It travels beside the call rather than through its types, because it changes nothing the
call decides; whoever writes the log line opens `noting()` around the request (the observability
middleware), and without one a hint is dropped (the import, the console's own calls).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

# A batch of a hundred bad items needs no hundred hints: the first few say what to fix.
MOST_HINTS = 5

_noted: ContextVar[list[str] | None] = ContextVar("patron_hints", default=None)


def note(hint: str) -> None:
    """Keep `hint` for the request's log line, once, when a request is being noted."""
    noted = _noted.get()
    if noted is not None and len(noted) < MOST_HINTS and hint not in noted:
        noted.append(hint)


@contextmanager
def noting() -> Iterator[list[str]]:
    """The hints noted while the block runs (in this task and the tasks it starts)."""
    noted: list[str] = []
    token = _noted.set(noted)
    try:
        yield noted
    finally:
        _noted.reset(token)


def current() -> list[str]:
    """The hints noted so far in the request being noted (none outside one)."""
    return list(_noted.get() or ())
