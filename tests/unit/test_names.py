"""Names are letters of any script, digits, spaces, hyphens and apostrophes: ASCII names, checked
by one pattern, are judged by that rule exactly as names in other scripts are."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from patron.customers import fields


def by_the_rule(name: str) -> str | None:
    name = name.strip()
    if len(name) > 100:
        return None
    allowed = all(char in " -'\u2019" or unicodedata.category(char)[0] in "LMN" for char in name)
    return name if allowed else None


def test_every_ascii_character_is_judged_by_the_rule():
    for code in range(128):
        for name in (chr(code), f"Asha{chr(code)}Rao"):
            assert fields.person_name(name) == by_the_rule(name), repr(name)


@pytest.mark.exhaustive
@settings(max_examples=2000, deadline=None, derandomize=True)
@given(st.text(max_size=30) | st.text(st.characters(max_codepoint=127), max_size=30))
def test_any_name_is_judged_by_the_rule(name):
    if "\x00" not in name:
        assert fields.person_name(name) == by_the_rule(name)
