"""What operators may see and do with the relay (events.md §4, patron.events.operations): a sink's
health and alarms, a replay's selection, reason and plan, and who may replay; on plain data."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from patron.events.operations import (
    Candidate,
    RelaySeen,
    ReplayRefused,
    SinkState,
    alarms,
    may_replay,
    may_see_events,
    moment,
    plan_replay,
    replay_reason,
    selection,
)
from patron.orgs.policy import AccessGroup

NOW = datetime(2024, 8, 1, 12, 0, 0)
RELAY = RelaySeen("host:1:abc", NOW - timedelta(hours=1), NOW - timedelta(seconds=2))


def sink(**state: object) -> SinkState:
    return SinkState(**{"org_id": 7, "sink": "crm", "kind": "webhook", "configured": True, "opened": True,  # type: ignore[arg-type]
                        "position": 10, "pending": 0, **state})


def event(position: int, *, customer: int = 1, sequence: int = 1, name: str = "customerAdded",
          queued: str | None = None, stored: bool = True) -> Candidate:
    return Candidate(position, customer, sequence, f"e{position}", name if stored else None, NOW if stored else None,
                     queued, stored)  # type: ignore[arg-type]


# Health and alarms.


def test_a_sink_is_ok_failing_since_its_first_failure_in_a_row_or_disabled():
    assert sink().health == "ok"
    assert sink(failing_since=NOW, consecutive_failures=1).health == "failing"
    assert sink(failing_since=NOW, disabled_at=NOW).health == "disabled"
    assert SinkState(7, "crm", "webhook", configured=True, opened=False).health == "not started"


def test_a_disabled_sink_is_an_alarm_with_its_reason():
    assert alarms([sink(disabled_at=NOW, disabled_reason="HTTP 410: gone")], [RELAY], NOW) == [
        "org 7 sink crm is disabled: HTTP 410: gone"]


def test_a_sink_failing_for_more_than_an_hour_is_an_alarm_and_for_an_hour_not_yet():
    assert alarms([sink(failing_since=NOW - timedelta(hours=1))], [RELAY], NOW) == []
    assert alarms([sink(failing_since=NOW - timedelta(hours=1, seconds=1))], [RELAY], NOW) == [
        "org 7 sink crm has been failing since 2024-08-01T10:59:59Z"]


def test_events_pending_with_no_relay_seen_are_an_alarm():
    assert alarms([sink(pending=3)], [RELAY], NOW) == []
    assert alarms([sink(pending=0)], [], NOW) == []
    (found,) = alarms([sink(pending=3)], [], NOW)
    assert "no relay has been seen in the last 30 s" in found


def test_a_sink_no_longer_in_the_org_file_raises_no_alarm():
    assert alarms([sink(configured=False, disabled_at=NOW, pending=4)], [], NOW) == []


def test_lag_is_the_oldest_pending_events_wait_and_none_when_nothing_is_pending():
    assert sink(pending=2, oldest_pending_at=NOW - timedelta(minutes=3)).lag(NOW) == timedelta(minutes=3)
    assert sink(pending=0, oldest_pending_at=NOW - timedelta(minutes=3)).lag(NOW) is None


# Who may.


@pytest.mark.parametrize("level, sees, replays", [("none", False, False), ("read", True, False), ("write", True, True)])
def test_the_events_key_of_the_access_group_opens_the_page_and_write_the_replay(level, sees, replays):
    group = AccessGroup(name="ops", customer="write", identity_review=True, events=level)
    assert (may_see_events(group), may_replay(group)) == (sees, replays)
    assert (may_see_events(None), may_replay(None)) == (False, False)


# A replay's reason and selection.


def test_a_replays_reason_is_required_trimmed_at_most_500_characters_without_nul():
    assert replay_reason("  the CRM lost them ") == "the CRM lost them"
    for refused, why in (("  ", "give a reason"), (None, "give a reason"), ("a\x00b", "NUL"), ("x" * 501, "longer than 500")):
        with pytest.raises(ReplayRefused, match=why):
            replay_reason(refused)
    assert replay_reason("x" * 500) == "x" * 500


def test_a_replay_selects_exactly_one_of_an_event_a_range_or_the_dead_letters():
    assert selection("e1", None, None, False).event_id == "e1"
    assert selection(None, None, None, True).dead
    assert selection(None, NOW, NOW, False).from_at == NOW
    for asked in (("e1", None, None, True), (None, None, None, False), ("e1", NOW, NOW, False), (None, NOW, None, False)):
        with pytest.raises(ReplayRefused):
            selection(*asked)
    with pytest.raises(ReplayRefused, match="ends"):
        selection(None, NOW, NOW - timedelta(seconds=1), False)
    with pytest.raises(ReplayRefused, match="not an eventId"):
        selection("e1; drop", None, None, False)


def test_times_are_utc_unless_they_say_otherwise_and_an_end_includes_its_whole_last_unit():
    assert moment("2024-05-01T09:30:00+05:30") == datetime(2024, 5, 1, 4, 0)
    assert moment("2024-05-01T04:00:00") == moment("2024-05-01T04:00:00Z") == datetime(2024, 5, 1, 4, 0)
    assert moment("1714536000000") == datetime(2024, 5, 1, 4, 0)
    assert moment("2024-05-01") == datetime(2024, 5, 1)
    assert moment("2024-05-01", end=True) == datetime(2024, 5, 1, 23, 59, 59, 999999)
    assert moment("2024-05-01T09:30", end=True) == datetime(2024, 5, 1, 9, 30, 59, 999999)
    assert moment("1714536000000", end=True) == datetime(2024, 5, 1, 4, 0, 0, 999)
    with pytest.raises(ReplayRefused, match="not a time"):
        moment("yesterday")


# A replay's plan.


def test_a_replay_puts_back_dead_letters_and_events_the_sink_took():
    plan = plan_replay([event(3, queued="dead"), event(4, customer=2)], 10, lambda name: True)
    assert [c.position for c in plan.replayed] == [3, 4]
    assert plan.left_out() == ""


def test_a_replay_leaves_events_waiting_already_not_yet_sent_not_subscribed_or_gone():
    plan = plan_replay(
        [event(3, queued="waiting"), event(11), event(5, name="pointsIssued"), event(6, queued="dead", stored=False)],
        10, lambda name: name == "customerAdded",
    )
    assert plan.replayed == []
    assert (plan.waiting, plan.not_yet_sent, plan.not_subscribed, plan.gone) == (1, 1, 1, 1)
    assert plan.left_out() == ("1 already waiting in the sink's queue; 1 not yet sent to the sink (they will be); "
                               "1 of names the sink is not sent; 1 dead letters whose event retention has removed")


def test_a_dead_letter_goes_back_even_past_the_sinks_position_but_not_if_its_name_is_no_longer_sent():
    assert [c.position for c in plan_replay([event(12, queued="dead")], 10, lambda name: True).replayed] == [12]
    assert plan_replay([event(3, queued="dead")], 10, lambda name: False).not_subscribed == 1


def test_a_replays_events_go_back_in_each_customers_sequence_order():
    plan = plan_replay([event(9, customer=2, sequence=2), event(4, customer=1, sequence=3), event(7, customer=2, sequence=1),
                        event(2, customer=1, sequence=1)], 10, lambda name: True)
    assert [(c.customer_id, c.sequence) for c in plan.replayed] == [(1, 1), (1, 3), (2, 1), (2, 2)]
