"""How many searches run at once (api.admission, issue 29): a caller at its bound is refused at
once, a worker at its bound makes a search wait briefly for a slot, then refuses it."""

from __future__ import annotations

import asyncio

import pytest

from patron.admission import SearchesBusy, SearchGate


async def test_a_caller_at_its_bound_is_refused_at_once_while_another_caller_runs():
    gate = SearchGate(per_worker=4, per_caller=1)
    async with gate.admit("till.one"):
        with pytest.raises(SearchesBusy, match="this caller already has a search running"):
            async with gate.admit("till.one"):
                pass
        async with gate.admit("till.two"):
            pass


async def test_a_caller_allowed_several_is_told_how_many_it_has_running():
    gate = SearchGate(per_worker=4, per_caller=2)
    async with gate.admit("till.one"), gate.admit("till.one"):
        with pytest.raises(SearchesBusy, match="already has 2 searches running"):
            async with gate.admit("till.one"):
                pass


async def test_a_worker_at_its_bound_refuses_after_its_wait():
    gate = SearchGate(per_worker=1, per_caller=5, wait_seconds=0.01)
    async with gate.admit("till.one"):
        with pytest.raises(SearchesBusy, match="the most it runs at once"):
            async with gate.admit("till.two"):
                pass


async def test_a_search_waiting_for_a_slot_runs_when_one_comes_free():
    gate = SearchGate(per_worker=1, per_caller=5, wait_seconds=5)
    order: list[str] = []
    release = asyncio.Event()

    async def first() -> None:
        async with gate.admit("till.one"):
            order.append("first")
            await release.wait()

    async def second() -> None:
        async with gate.admit("till.two"):
            order.append("second")

    running = asyncio.create_task(first())
    await asyncio.sleep(0)
    waiting = asyncio.create_task(second())
    await asyncio.sleep(0)
    assert order == ["first"]
    release.set()
    await asyncio.gather(running, waiting)
    assert order == ["first", "second"]


async def test_slots_are_given_back_when_a_search_fails():
    gate = SearchGate(per_worker=1, per_caller=1, wait_seconds=0)
    with pytest.raises(RuntimeError):
        async with gate.admit("till.one"):
            raise RuntimeError("the search failed")
    async with gate.admit("till.one"):
        pass
    assert not gate.running
