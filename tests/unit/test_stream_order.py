"""The order events take in their org's stream (store.events.stream_order): by id, each
customer's in sequence order whatever ids they were given."""

from patron.store.events import stream_order


def test_events_go_in_id_order_when_ids_follow_sequences():
    batch = [(1, 100, 1), (2, 200, 1), (3, 100, 2), (4, 200, 2)]
    assert stream_order(batch) == [1, 2, 3, 4]


def test_a_customers_earlier_event_with_a_later_id_still_goes_first():
    # On Citus a customer's first events take ids on its worker (high), later ones on the coordinator.
    batch = [(5, 100, 3), (7, 200, 1), (900_001, 100, 1), (900_002, 100, 2)]
    ordered = stream_order(batch)
    assert [e for e in ordered if e in (5, 900_001, 900_002)] == [900_001, 900_002, 5]
    assert sorted(ordered) == [5, 7, 900_001, 900_002]


def test_other_customers_keep_their_places():
    batch = [(1, 100, 2), (2, 300, 1), (3, 100, 1)]
    assert stream_order(batch) == [3, 2, 1]
