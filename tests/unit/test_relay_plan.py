"""The relay's rules (events.md §2-4), over plain data: each customer's events in order, the others
in parallel; what an attempt's answer leaves behind; a sink's health; shares of the sinks; retention."""

from __future__ import annotations

from datetime import datetime, timedelta

from patron.events.model import StoredEvent
from patron.relay import plan
from patron.relay.plan import Health, Settled, Tally
from patron.relay.sinks import Outcome
from patron.store.relay import BEHIND, DEAD, RETRY, RetryRow

NOW = datetime(2026, 12, 7, 12, 0)
LATER = NOW + timedelta(seconds=5)


def event(position: int, customer_id: int, sequence: int, name: str = "customerUpdated") -> StoredEvent:
    return StoredEvent(org_id=1, position=position, event_id=f"e{position}", customer_id=customer_id, sequence=sequence,
                       name=name, created_at=NOW, request_id="r", origin="api", console_user=None, data={})


def every(name: str) -> bool:
    return True


def next_in_5s(attempts_made: int, now: datetime, retry_after: float | None) -> datetime | None:
    return now + timedelta(seconds=5)


def spent(attempts_made: int, now: datetime, retry_after: float | None) -> datetime | None:
    return None


def positions(events: list[StoredEvent]) -> list[int]:
    return [e.position for e in events]


def test_a_batch_gives_each_customer_one_chain_of_its_events_in_stream_order():
    batch = [event(1, 10, 1), event(2, 20, 1), event(3, 10, 2), event(4, 30, 1), event(5, 20, 2)]
    planned = plan.plan_batch(batch, every, outstanding=set(), held=set())
    assert [positions(chain) for chain in planned.chains] == [[1, 3], [2, 5], [4]]
    assert planned.behind == []
    assert planned.through == 5


def test_the_events_of_a_customer_with_an_outstanding_retry_wait_behind_it():
    batch = [event(1, 10, 3), event(2, 20, 1), event(3, 10, 4)]
    planned = plan.plan_batch(batch, every, outstanding={10}, held=set())
    assert [positions(chain) for chain in planned.chains] == [[2]]
    assert positions(planned.behind) == [1, 3]


def test_events_the_sink_does_not_subscribe_to_are_passed_over_but_the_position_moves_past_them():
    batch = [event(1, 10, 1, "customerAdded"), event(2, 10, 2, "pointsIssued"), event(3, 20, 1, "pointsIssued")]
    planned = plan.plan_batch(batch, lambda name: name == "customerAdded", outstanding=set(), held=set())
    assert [positions(chain) for chain in planned.chains] == [[1]]
    assert planned.through == 3


def test_positions_the_retries_already_hold_are_left_to_them():
    planned = plan.plan_batch([event(1, 10, 1), event(2, 10, 2)], every, outstanding=set(), held={1})
    assert [positions(chain) for chain in planned.chains] == [[2]]


def test_a_retryable_failure_is_retried_at_the_schedules_time():
    settled = plan.settle(Outcome("retry", status_code=503), 1, NOW, next_in_5s)
    assert settled == Settled("retry", LATER, "HTTP 503")


def test_a_retryable_failure_whose_retries_are_spent_is_dead_lettered():
    settled = plan.settle(Outcome("retry", error="timed out"), 8, NOW, spent)
    assert settled.verdict == "dead"
    assert settled.error == "gave up after 8 attempts: timed out"


def test_a_refusal_is_dead_lettered_at_once_and_a_disable_disables():
    assert plan.settle(Outcome("dead", status_code=400, answer="bad"), 1, NOW, next_in_5s) == Settled("dead", None, "HTTP 400: bad")
    assert plan.settle(Outcome("disable", status_code=410), 1, NOW, next_in_5s).verdict == "disabled"


def test_a_retry_holds_back_the_rest_of_its_customers_chain():
    chain = [event(1, 10, 1), event(2, 10, 2), event(3, 10, 3)]
    rows = plan.chain_rows(chain, [Settled("delivered"), Settled("retry", LATER, "HTTP 500")], NOW)
    assert rows == [RetryRow(2, 10, 2, RETRY, 1, LATER, "HTTP 500"), RetryRow(3, 10, 3, BEHIND, 0, None, None)]


def test_a_dead_letter_lets_the_customers_next_event_go_on():
    chain = [event(1, 10, 1), event(2, 10, 2)]
    rows = plan.chain_rows(chain, [Settled("dead", None, "HTTP 422"), Settled("delivered")], NOW)
    assert rows == [RetryRow(1, 10, 1, DEAD, 1, None, "HTTP 422")]


def test_events_not_attempted_because_the_sink_began_failing_wait_for_a_retry_due_now():
    chain = [event(1, 10, 1), event(2, 10, 2)]
    rows = plan.chain_rows(chain, [], NOW)
    assert [(row.position, row.status, row.attempts, row.next_attempt_at) for row in rows] == [
        (1, RETRY, 0, NOW), (2, BEHIND, 0, None)
    ]


def test_events_not_attempted_because_the_sink_was_disabled_are_left_to_be_read_again():
    assert plan.chain_rows([event(1, 10, 1), event(2, 10, 2)], [Settled("disabled")], NOW, leftovers=False) == []


def test_a_retried_row_that_gets_through_goes_and_frees_the_customers_next():
    row = RetryRow(7, 10, 2, RETRY, 3, NOW, "HTTP 503")
    assert plan.retried(row, Settled("delivered")) is None
    assert plan.frees_next(Settled("delivered"))


def test_a_retried_row_that_fails_again_counts_the_attempt_and_waits_for_the_next():
    row = RetryRow(7, 10, 2, RETRY, 3, NOW, "HTTP 503")
    assert plan.retried(row, Settled("retry", LATER, "HTTP 502")) == RetryRow(7, 10, 2, RETRY, 4, LATER, "HTTP 502")
    assert not plan.frees_next(Settled("retry", LATER, "HTTP 502"))


def test_a_retried_row_given_up_is_a_dead_letter_and_frees_the_customers_next():
    row = RetryRow(7, 10, 2, RETRY, 7, NOW, "HTTP 503")
    assert plan.retried(row, Settled("dead", None, "gave up")) == RetryRow(7, 10, 2, DEAD, 8, None, "gave up")
    assert plan.frees_next(Settled("dead", None, "gave up"))


def test_retryable_failures_in_a_row_make_a_sink_failing_since_the_first():
    health = Health()
    for minute in range(plan.FAILING_AFTER):
        assert not health.failing
        health = plan.health_after(health, Outcome("retry"), NOW + timedelta(minutes=minute))
    assert health.failing
    assert health.failing_since == NOW


def test_a_delivery_ends_a_run_of_failures():
    assert plan.health_after(Health(9, NOW), Outcome("delivered"), LATER) == Health()


def test_a_refusal_of_one_event_says_nothing_of_the_sinks_health():
    assert plan.health_after(Health(2, NOW), Outcome("dead", status_code=400), LATER) == Health(2, NOW)


def test_a_tally_sees_a_failing_sink_recover_on_its_first_delivery():
    tally = Tally(Health(plan.FAILING_AFTER, NOW))
    tally.add(Outcome("delivered"), Settled("delivered"), LATER)
    assert tally.recovered
    assert tally.last_success_at == LATER


def test_a_tally_keeps_the_first_reason_to_disable():
    tally = Tally(Health())
    tally.add(Outcome("disable", status_code=410), Settled("disabled", None, "HTTP 410"), NOW)
    tally.add(Outcome("disable", error="later"), Settled("disabled", None, "later"), LATER)
    assert tally.disabled == "HTTP 410"


def test_relays_share_the_sinks_equally_rounding_up_so_that_every_sink_is_held():
    assert plan.fair_share(7, 2) == 4
    assert plan.fair_share(6, 3) == 2
    assert plan.fair_share(3, 0) == 3
    assert plan.fair_share(0, 2) == 0


def test_retention_stops_at_the_slowest_enabled_sink_and_before_any_outstanding_retry():
    assert plan.removable_through(100, [80, 95], [None, None]) == 80
    assert plan.removable_through(100, [80, 95], [None, 42]) == 41
    assert plan.removable_through(100, [], []) == 100
    assert plan.removable_through(0, [0], [1]) == 0
