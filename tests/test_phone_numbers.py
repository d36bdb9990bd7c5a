"""A mobile is read as phonenumbers reads it: the shortcut for digits as sent gives the parser's
answer or leaves the number to it, for every region and kind of number."""

from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from patron.registration import fields

REGIONS = sorted(phonenumbers.SUPPORTED_REGIONS)
COUNTRY_CODES = sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)


def parsed(digits: str) -> phonenumbers.PhoneNumber | None:
    try:
        return phonenumbers.parse("+" + digits)
    except phonenumbers.NumberParseException:
        return None


def example_digits() -> list[str]:
    """Every region's example numbers of every type, as E.164 digits, and each one a digit
    shorter, a digit longer and with a national prefix "0" after its country code."""
    examples = []
    for region in REGIONS:
        for kind in phonenumbers.PhoneNumberType.values():
            number = phonenumbers.example_number_for_type(region, kind)
            if number is None:
                continue
            digits = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)[1:]
            code = str(number.country_code)
            examples += [digits, digits[:-1], digits + "5", code + "0" + digits[len(code):]]
    return sorted(set(examples))


EXAMPLES = example_digits()


def test_every_region_has_example_numbers_to_check():
    assert len(EXAMPLES) > 2000


@pytest.mark.parametrize("chunk", range(8))
def test_digits_as_sent_read_as_the_parser_reads_them(chunk):
    for digits in EXAMPLES[chunk::8]:
        read = fields._as_sent(digits)
        if read is not None:
            assert read == parsed(digits), digits


@settings(max_examples=3000, deadline=None, derandomize=True)
@given(code=st.sampled_from(COUNTRY_CODES), rest=st.text("0123456789", min_size=1, max_size=14))
def test_any_digits_read_as_the_parser_reads_them(code, rest):
    digits = f"{code}{rest}"
    read = fields._as_sent(digits)
    if read is not None:
        assert read == parsed(digits)


def test_the_shortcut_reads_the_common_case():
    # An Indian mobile as tills send it is read without the parser's text handling.
    assert fields._as_sent("919412345678") == parsed("919412345678")


@pytest.mark.parametrize("digits", ["4407400123456", "0919412345678", "39061234567"])
def test_numbers_with_a_prefix_or_leading_zero_are_left_to_the_parser(digits):
    assert fields._as_sent(digits) is None


def test_mobile_of_every_region_is_accepted_or_refused_as_before():
    """fields.mobile, shortcut and all, against the parser alone, for every example number."""

    def by_parser(digits: str) -> str | None:
        number = parsed(digits)
        if number is None or phonenumbers.number_type(number) not in fields._MOBILE_TYPES:
            return None
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)[1:]

    for digits in EXAMPLES:
        assert fields.mobile(digits, "IN", ["*"], False) == by_parser(digits), digits
