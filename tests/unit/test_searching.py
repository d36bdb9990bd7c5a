"""A search's conditions as a store runs them (customers.search.run): the org's own names settled
over the org file, registration days as UTC moments, and what the console's search box may name."""

from __future__ import annotations

from datetime import datetime

from patron.customers.search.query import Attribute, Condition, Operator, read_query
from patron.customers.search.run import Criteria, Registered, box_alternatives, criteria_of
from test_search_query import ORG



def criteria(q: str) -> Criteria | None:
    return criteria_of(ORG, read_query(q, ORG).conditions)


def test_conditions_on_a_customers_own_values_go_to_the_store_as_read():
    found = criteria("firstname:STARTS:As&loyalty_points:GREATER:5")
    assert found is not None and found.org_id == 7001
    assert found.conditions == (
        Condition(Attribute.FIRSTNAME, Operator.STARTS, ("As",)),
        Condition(Attribute.LOYALTY_POINTS, Operator.GREATER, (5,)),
    )


def test_a_registration_day_is_the_utc_moments_of_that_day_in_the_orgs_timezone():
    # Asia/Kolkata is UTC+5:30.
    found = criteria("registered_date:EQUALS:2026-03-01")
    assert found is not None and found.registered == Registered(datetime(2026, 2, 28, 18, 30), datetime(2026, 3, 1, 18, 30))


def test_less_is_before_the_day_greater_after_it_and_range_includes_both_days():
    assert criteria("registered_date:LESS:2026-03-01").registered == Registered(before=datetime(2026, 2, 28, 18, 30))
    assert criteria("registered_date:GREATER:2026-03-01").registered == Registered(since=datetime(2026, 3, 1, 18, 30))
    assert criteria("registered_date:RANGE:2026-03-01;2026-03-02").registered == Registered(
        datetime(2026, 2, 28, 18, 30), datetime(2026, 3, 2, 18, 30)
    )


def test_several_registration_days_hold_together_and_none_overlapping_finds_nobody():
    both = criteria("registered_date:GREATER:2026-01-01&registered_date:LESS:2026-02-01")
    assert both.registered == Registered(datetime(2026, 1, 1, 18, 30), datetime(2026, 1, 31, 18, 30))
    assert criteria("registered_date:LESS:2026-01-01&registered_date:GREATER:2026-01-01") is None


def test_a_store_is_the_codes_of_its_tills():
    assert criteria("registered_store:EQUALS:STORE.ONE").tills == frozenset({"till.one"})
    assert criteria("registered_store:EXACT:STORE.ONE") is None


def test_a_store_no_one_has_finds_nobody_without_the_store():
    assert criteria("registered_store:STARTS:nowhere") is None


def test_a_slab_no_programme_has_finds_nobody():
    # The test org declares no programme at all.
    assert criteria("slab:EQUALS:Gold") is None


def test_the_search_box_reads_digits_as_a_user_id_and_as_a_mobile_and_an_external_id():
    alternatives = box_alternatives("919800000001", ORG)
    attributes = [tuple(c.attribute for c in conjunction) for conjunction in alternatives]
    assert attributes == [(Attribute.USER_ID,), (Attribute.MOBILE,), (Attribute.EXTERNAL_ID,)]


def test_the_search_box_reads_first_and_last_names():
    alternatives = box_alternatives("Asha   Rao", ORG)
    assert (
        Condition(Attribute.FIRSTNAME, Operator.STARTS, ("Asha",)),
        Condition(Attribute.LASTNAME, Operator.STARTS, ("Rao",)),
    ) in alternatives
    assert (Condition(Attribute.FIRSTNAME, Operator.STARTS, ("Asha   Rao",)),) in alternatives


def test_the_search_box_reads_an_email_and_nothing_from_blanks():
    assert (Condition(Attribute.EMAIL, Operator.EQUALS, ("asha@example.com",)),) in box_alternatives("Asha@Example.com", ORG)
    assert box_alternatives("   ", ORG) == ()
