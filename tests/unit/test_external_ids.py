"""How external ids are matched (customers.external_ids), as pure functions: the key, the
skeleton, look-alikes across scripts, and an org's keys under a new rule."""

from __future__ import annotations

from typing import Any

import pytest

from patron.customers import external_ids
from patron.customers.fields import identity_key
from patron.customers.search.query import Attribute, Condition, Operator
from patron.customers.search.run import box_alternatives
from test_search_query import org_of


def test_an_org_matching_as_stored_keys_an_external_id_as_it_is():
    assert external_ids.key("ABC-1", ignore_case=False) == "ABC-1"
    assert external_ids.key(None, ignore_case=False) is None


@pytest.mark.parametrize(
    ("spelling", "key"),
    [
        ("ABC-1", "abc-1"),
        ("abc-1", "abc-1"),
        ("STRASSE", "strasse"),
        ("Stra\u00dfe", "strasse"),  # case folding, not lower(): ß is ss
        ("\u039a\u0391\u03a1\u03a4\u0391", "\u03ba\u03b1\u03c1\u03c4\u03b1"),  # Greek
        ("\u1e9e", "ss"),  # capital sharp s
    ],
)
def test_an_org_ignoring_case_keys_an_external_id_case_folded(spelling, key):
    assert external_ids.key(spelling, ignore_case=True) == key


def test_a_case_folded_key_is_in_normal_form_and_folding_it_again_changes_nothing():
    # U+0130 (I with dot above) folds to i and a combining dot, which NFKC keeps as they are;
    # the key of a key is that key.
    for spelling in ("\u0130STANBUL", "\u212b-1", "\u00c5-1"):
        once = external_ids.key(spelling, ignore_case=True)
        assert external_ids.key(once, ignore_case=True) == once


def test_look_alikes_of_other_scripts_share_a_skeleton():
    assert external_ids.skeleton("\u0421\u0410RD-1") == external_ids.skeleton("CARD-1")  # Cyrillic С, А
    assert external_ids.skeleton("\u039fK") == external_ids.skeleton("OK")  # Greek Ο


def test_letters_of_another_case_do_not_share_a_skeleton():
    assert external_ids.skeleton("card") != external_ids.skeleton("CARD")


def test_two_keys_of_one_skeleton_differ_across_scripts_by_a_letter_of_another_script():
    assert external_ids.across_scripts("\u0421ARD-1", "CARD-1")
    assert external_ids.across_scripts("\u03bfk", "ok")


def test_a_digit_and_a_letter_alike_are_not_of_another_script():
    assert external_ids.skeleton("C0DE") == external_ids.skeleton("CODE")
    assert not external_ids.across_scripts("C0DE", "CODE")
    assert not external_ids.across_scripts("CARD-1", "CARD-l")


def test_a_key_is_not_its_own_look_alike():
    assert not external_ids.across_scripts("CARD-1", "CARD-1")


def test_rekeying_an_org_lists_the_keys_that_change_and_the_customers_that_would_become_one():
    held = [(1, "ABC", "ABC"), (2, "abc", "abc"), (3, "Other", "Other"), (4, "x", "x")]
    changed, collisions = external_ids.rekeyed(held, ignore_case=True)
    assert changed == [
        (1, "abc", external_ids.skeleton("abc")),
        (3, "other", external_ids.skeleton("other")),
    ]
    assert collisions == [[(1, "ABC"), (2, "abc")]]


def test_rekeying_an_org_back_to_matching_as_stored_restores_the_external_ids():
    changed, collisions = external_ids.rekeyed([(1, "ABC", "abc"), (2, "d", "d")], ignore_case=False)
    assert changed == [(1, "ABC", external_ids.skeleton("ABC"))] and collisions == []


def test_an_imports_identity_key_is_as_coarse_as_the_case_insensitive_key():
    # Rows that name one identifier must fall in one batch of an import, in their order.
    assert identity_key("external_id", "STRASSE") == identity_key("external_id", "stra\u00dfe")


def test_the_search_box_names_an_external_id_as_stored_or_in_any_case_where_the_org_ignores_case():
    def external_id_condition(org: Any) -> Condition:
        return next(c for (c, *_) in box_alternatives("Card-7", org) if c.attribute is Attribute.EXTERNAL_ID)

    assert external_id_condition(org_of()).operator is Operator.EXACT
    assert external_id_condition(org_of(CONF_EXTERNAL_ID_CASE_INSENSITIVE=True)).operator is Operator.EQUALS
