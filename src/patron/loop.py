"""How Patron's processes run: the event loop of its own commands (the server's is uvicorn's), and
the pace of the garbage collector in the server and the import alike."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def new_event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # CPython on Linux and macOS only, as uvicorn uses it
        return asyncio.new_event_loop()
    # Its sockets and timers are C: an import re-run (a transaction per customer) is 15% faster.
    return uvloop.new_event_loop()


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(coroutine)


def collect_rarely() -> None:
    """Collect garbage seldom, and never scan what was loaded before the work began.

    A request or an import batch makes many short-lived objects, which reference counting frees,
    and few cycles. At the default pace (a collection per 700 objects alive) the collector ran
    dozens of times in a batch of 100 registrations and took a quarter of its CPU. Everything
    loaded so far lives as long as the process, so it is frozen out of the collector's scans.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
