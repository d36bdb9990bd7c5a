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


# Objects a customer being registered keeps alive until its batch is written (its item, customer,
# changes, memberships and answer): about forty.
OBJECTS_PER_CUSTOMER = 50


def collect_rarely(customers_at_once: int = 1_000) -> None:
    """Collect garbage seldom, and never scan what was loaded before the work began.

    A request or an import batch makes many short-lived objects, which reference counting frees,
    and few cycles. The collector runs when the objects alive have grown by its threshold, and
    then scans every one of them: at the default (700) it ran dozens of times in a batch of 100
    registrations and took a quarter of its CPU. The threshold is set above what the customers
    being registered at once keep alive, so that it runs for garbage, not for work in progress
    (an import's batches of 1,000 crossed 50,000 once a batch: a tenth of its CPU). Everything
    loaded so far lives as long as the process, so it is frozen out of the collector's scans.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(max(50_000, OBJECTS_PER_CUSTOMER * customers_at_once), 50, 100)
