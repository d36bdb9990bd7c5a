"""A mobile is read as phonenumbers reads it: the shortcut for digits as sent gives the parser's
answer or leaves the number to it, and the mobile check decides as number_type does, for every
region and kind of number."""

from __future__ import annotations

from types import SimpleNamespace

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from phonenumbers import PhoneNumberDesc
from phonenumbers.phonenumberutil import _number_type_helper

from patron.customers import fields

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


@pytest.mark.exhaustive
@pytest.mark.parametrize("chunk", range(8))
def test_digits_as_sent_read_as_the_parser_reads_them(chunk):
    for digits in EXAMPLES[chunk::8]:
        read = fields._as_sent(digits)
        if read is not None:
            assert read == parsed(digits), digits


@pytest.mark.exhaustive
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


# What fields.mobile accepts: where a numbering plan cannot tell mobiles from landlines (the US),
# either may be one.
MOBILE_TYPES = frozenset({phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE})


def is_mobile_by_number_type(number: phonenumbers.PhoneNumber) -> bool:
    return phonenumbers.number_type(number) in MOBILE_TYPES


@pytest.mark.exhaustive
@pytest.mark.parametrize("chunk", range(8))
def test_the_mobile_check_decides_as_number_type_for_every_example(chunk):
    checked = 0
    for digits in EXAMPLES[chunk::8]:
        number = parsed(digits)
        if number is not None:
            region = phonenumbers.region_code_for_number(number)
            assert fields._is_mobile(number, region) == is_mobile_by_number_type(number), digits
            checked += 1
    assert checked > 200


def test_the_mobile_check_finds_mobiles_and_refuses_other_types():
    # Each region's example of each type: the check must tell them apart, not only agree on a few.
    answers = set()
    for region in REGIONS:
        for kind in phonenumbers.PhoneNumberType.values():
            number = phonenumbers.example_number_for_type(region, kind)
            if number is not None:
                answers.add((kind, fields._is_mobile(number, phonenumbers.region_code_for_number(number))))
    assert (phonenumbers.PhoneNumberType.MOBILE, True) in answers
    assert (phonenumbers.PhoneNumberType.FIXED_LINE, False) in answers
    assert (phonenumbers.PhoneNumberType.TOLL_FREE, False) in answers


def _metadata(region: str, same_pattern: bool, **descriptions: str) -> SimpleNamespace:
    """Made-up metadata in which types overlap, as no region's does today and one's may tomorrow."""
    every = ("general_desc", "premium_rate", "toll_free", "shared_cost", "voip", "personal_number", "pager", "uan",
             "voicemail", "fixed_line", "mobile")
    made = {name: None for name in every}
    made.update({name: PhoneNumberDesc(national_number_pattern=pattern) for name, pattern in descriptions.items()})
    return SimpleNamespace(id=region, country_code=None, same_mobile_and_fixed_line_pattern=same_pattern, **made)


@pytest.mark.parametrize(
    ("region", "descriptions", "same_pattern"),
    [
        ("X1", {"general_desc": r"\d{6}", "toll_free": r"8\d{5}", "mobile": r"[78]\d{5}"}, False),
        ("X2", {"general_desc": r"\d{6}", "uan": r"7\d{5}", "fixed_line": r"7\d{5}", "mobile": r"7\d{5}"}, False),
        ("X3", {"general_desc": r"\d{6}", "fixed_line": r"[67]\d{5}", "mobile": r"7\d{5}"}, True),
        ("X4", {"general_desc": r"\d{6}", "fixed_line": r"[67]\d{5}", "mobile": r"7\d{5}"}, False),
        ("X5", {"general_desc": r"7\d{5}", "mobile": r"[78]\d{5}"}, False),
        ("X6", {"general_desc": r"\d{6}", "fixed_line": r"6\d{5}", "mobile": r"7\d{5}"}, True),
    ],
)
def test_the_mobile_check_follows_number_types_order_where_types_overlap(region, descriptions, same_pattern):
    metadata = _metadata(region, same_pattern, **descriptions)
    for national in ("612345", "712345", "812345", "912345"):
        by_library = _number_type_helper(national, metadata) in MOBILE_TYPES
        assert fields._is_mobile_national(national, metadata) == by_library, national


@pytest.mark.exhaustive
@settings(max_examples=3000, deadline=None, derandomize=True)
@given(code=st.sampled_from(COUNTRY_CODES), rest=st.text("0123456789", min_size=1, max_size=14))
def test_the_mobile_check_decides_as_number_type_for_any_digits(code, rest):
    number = parsed(f"{code}{rest}")
    if number is not None:
        region = phonenumbers.region_code_for_number(number)
        assert fields._is_mobile(number, region) == is_mobile_by_number_type(number)


@pytest.mark.exhaustive
def test_mobile_of_every_region_is_accepted_or_refused_as_before():
    """fields.mobile, shortcut and all, against the parser alone, for every example number."""

    def by_parser(digits: str) -> str | None:
        number = parsed(digits)
        if number is None or phonenumbers.number_type(number) not in MOBILE_TYPES:
            return None
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)[1:]

    for digits in EXAMPLES:
        assert fields.mobile(digits, "IN", ["*"], False) == by_parser(digits), digits


@pytest.mark.exhaustive
def test_every_regions_mobile_rule_can_be_built_for_every_length():
    # A rule joins a region's patterns into one; each must still compile, whatever length is asked.
    every = [phonenumbers.PhoneMetadata.metadata_for_region(region) for region in REGIONS] + [
        phonenumbers.PhoneMetadata.metadata_for_nongeo_region(code) for code in phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS
    ]
    for metadata in every:
        for length in range(1, 18):
            fields._MobileRule.of(metadata, length)
