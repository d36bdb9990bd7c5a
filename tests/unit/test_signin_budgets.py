"""The sign-in budgets (issue #29): networks of addresses, the fair queue of attempts waiting for a
slow hash, and the worker's budget handed out in turn, on a clock the test moves by hand."""

from __future__ import annotations

import asyncio

import pytest

from support.clock import Clock
from patron.auth.ratelimit import BudgetRefused, FairBudget, FairQueue, network_of


async def settle() -> None:
    """Lets the tasks woken so far run to their next wait."""
    for _ in range(5):
        await asyncio.sleep(0)


@pytest.mark.parametrize(
    ("address", "network"),
    [
        ("203.0.113.66", "203.0.113.0/24"),
        ("203.0.113.1", "203.0.113.0/24"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.66", "203.0.113.0/24"),
        ("testclient", "testclient"),
        ("", ""),
    ],
)
def test_an_address_belongs_to_its_ipv4_slash_24_or_ipv6_slash_64(address, network):
    assert network_of(address) == network


def test_the_queue_serves_each_network_in_turn_however_many_wait_in_one():
    queue = FairQueue(per_address=10, total=100)
    for n in range(5):
        queue.push("203.0.113.1", f"flood-{n}")
    queue.push("198.51.100.7", "till")
    assert [queue.pop() for _ in range(3)] == ["flood-0", "till", "flood-1"]
    assert len(queue) == 3


def test_within_a_network_each_address_is_served_in_turn():
    queue = FairQueue(per_address=10, total=100)
    for n in range(3):
        queue.push("203.0.113.1", f"a-{n}")
    queue.push("203.0.113.2", "b-0")
    queue.push("198.51.100.7", "c-0")
    assert [queue.pop() for _ in range(5)] == ["a-0", "c-0", "b-0", "a-1", "a-2"]
    assert queue.pop() is None


def test_an_address_has_at_most_its_share_of_places():
    queue = FairQueue(per_address=2, total=100)
    assert [queue.push("203.0.113.1", n)[0] for n in range(3)] == [True, True, False]
    assert queue.push("203.0.113.2", "neighbour") == (True, None)


def test_when_full_a_newcomer_takes_the_place_of_the_largest_networks_newest_waiter():
    queue = FairQueue(per_address=4, total=4)
    for n in range(4):
        queue.push("203.0.113.1", f"flood-{n}")
    assert queue.push("198.51.100.7", "till") == (True, "flood-3")
    assert queue.push("198.51.100.8", "till-2") == (True, "flood-2")
    # The flood's network has two left, the newcomers' network two: no one is displaced for it.
    assert queue.push("198.51.100.9", "till-3") == (False, None)
    assert len(queue) == 4


def test_a_waiter_that_gives_up_leaves_its_place():
    queue = FairQueue(per_address=4, total=4)
    queue.push("203.0.113.1", "a")
    queue.push("203.0.113.1", "b")
    assert queue.remove("203.0.113.1", "a") and not queue.remove("203.0.113.1", "a")
    assert [queue.pop(), queue.pop()] == ["b", None]


async def test_the_budget_lets_its_burst_through_at_once_then_hands_tokens_out_in_turn():
    clock = Clock()
    budget = FairBudget(rate=1, burst=2, per_address=4, queue=10, max_wait=60, clock=clock)
    await budget.take("203.0.113.1")
    await budget.take("203.0.113.1")
    flood = [asyncio.ensure_future(budget.take("203.0.113.1")) for _ in range(3)]
    await asyncio.sleep(0)
    till = asyncio.ensure_future(budget.take("198.51.100.7"))
    await asyncio.sleep(0)
    served = []
    for _ in range(4):
        clock.advance(1)
        budget.wake()
        await settle()
        served.append([n for n, waiter in enumerate([*flood, till]) if waiter.done()])
    assert served == [[0], [0, 3], [0, 1, 3], [0, 1, 2, 3]]


async def test_the_budget_refuses_an_attempt_whose_turn_does_not_come_within_the_longest_wait():
    clock = Clock()
    budget = FairBudget(rate=1, burst=1, per_address=4, queue=10, max_wait=0.01, clock=clock)
    await budget.take("203.0.113.1")
    with pytest.raises(BudgetRefused) as refused:
        await budget.take("203.0.113.1")
    assert refused.value.wait >= 1
    assert len(budget.queue) == 0


async def test_the_budget_refuses_an_address_with_its_share_waiting_and_not_another():
    clock = Clock()
    budget = FairBudget(rate=1, burst=1, per_address=1, queue=10, max_wait=60, clock=clock)
    await budget.take("203.0.113.1")
    waiting = asyncio.ensure_future(budget.take("203.0.113.1"))
    await asyncio.sleep(0)
    with pytest.raises(BudgetRefused):
        await budget.take("203.0.113.1")
    other = asyncio.ensure_future(budget.take("198.51.100.7"))
    await asyncio.sleep(0)
    assert len(budget.queue) == 2
    for task in (waiting, other):
        task.cancel()
    await asyncio.gather(waiting, other, return_exceptions=True)
    assert len(budget.queue) == 0


async def test_a_rate_of_zero_is_no_budget():
    budget = FairBudget(rate=0, burst=0, per_address=1, queue=1, max_wait=1, clock=Clock())
    for _ in range(100):
        await budget.take("203.0.113.1")


async def test_the_budget_serves_networks_in_good_standing_before_those_that_have_been_failing():
    clock = Clock()
    budget = FairBudget(rate=1, burst=1, per_address=4, queue=10, max_wait=60, clock=clock)
    await budget.take("203.0.113.1", failing=True)
    flood = [asyncio.ensure_future(budget.take("203.0.113.1", failing=True)) for _ in range(2)]
    await asyncio.sleep(0)
    till = asyncio.ensure_future(budget.take("198.51.100.7"))
    await asyncio.sleep(0)
    clock.advance(1)
    budget.wake()
    await settle()
    assert till.done() and not any(f.done() for f in flood)
    for _ in range(2):
        clock.advance(1)
        budget.wake()
    await settle()
    assert all(f.done() for f in flood)
