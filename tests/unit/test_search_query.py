"""The `q` grammar of GET /v1.1/customer/search (member-care.md §3), one test per rule: reading a
query into typed conditions, and refusing one that cannot be read with a message naming it."""

from __future__ import annotations

import tomllib
from datetime import date, datetime
from typing import Any

import pytest

from patron.customers.search.query import (
    MAX_CONDITIONS,
    MAX_COUNTED,
    MAX_SCANNING,
    MAX_SUFFIX,
    Attribute,
    Condition,
    Operator,
    Page,
    SearchRefused,
    read_page,
    read_query,
    scans_every_customer,
)
from patron.orgs.file import parse_org_document
from patron.orgs.model import OrgSettings

ORG_FILE = """
[org]
id = 7001
name = "Search Test"
base_country = "IN"
supported_countries = ["AE"]
timezone = "Asia/Kolkata"

[[access_groups]]
name = "pos"
customer = "read"

[[stores]]
code = "store.one"
name = "Store One"
access_group = "pos"

  [[stores.tills]]
  code = "till.one"
  password = "Pass123"

[[custom_fields]]
name = "City_name"
type = "string"

[[custom_fields]]
name = "club"
type = "enum"
options = ["Gold", "Silver"]

[[custom_fields]]
name = "newsletter"
type = "boolean"

[[custom_fields]]
name = "visits"
type = "integer"

[[custom_fields]]
name = "pwgConsumption"
type = "double"

[[custom_fields]]
name = "anniversary"
type = "date"

[[custom_fields]]
name = "last_visit"
type = "datetime"

[[extended_fields]]
name = "age_group"
type = "enum"
options = ["18-25", "26-40", "41+"]
"""


def org_of(**configs: Any) -> OrgSettings:
    data = tomllib.loads(ORG_FILE)
    data.setdefault("configs", {}).update(configs)
    return OrgSettings.from_file(parse_org_document(data, "test_search_query"))


ORG = org_of()


def only(q: str, org: OrgSettings = ORG) -> Condition:
    (condition,) = read_query(q, org).conditions
    return condition


def refusal(q: str, org: OrgSettings = ORG) -> str:
    with pytest.raises(SearchRefused) as refused:
        read_query(q, org)
    return refused.value.message


# The grammar


def test_a_condition_is_attribute_operator_value():
    assert only("firstname:EQUALS:Asha") == Condition(Attribute.FIRSTNAME, Operator.EQUALS, ("Asha",))


def test_ampersands_separate_conditions_which_all_hold():
    query = read_query("firstname:STARTS:As&loyalty_points:GREATER:100&type:EQUALS:LOYALTY", ORG)
    assert query.conditions == (
        Condition(Attribute.FIRSTNAME, Operator.STARTS, ("As",)),
        Condition(Attribute.LOYALTY_POINTS, Operator.GREATER, (100,)),
        Condition(Attribute.TYPE, Operator.EQUALS, ("LOYALTY",)),
    )


def test_only_the_first_two_colons_separate_so_a_value_may_hold_colons():
    condition = only("last_visit:GREATER:2026-05-01 10:30:15")
    assert condition.values == (datetime(2026, 5, 1, 10, 30, 15),)
    assert only("external_id:EQUALS:urn:acme:42").values == ("urn:acme:42",)


def test_standard_attribute_names_and_operators_ignore_case():
    assert only("FirstName:equals:Asha") == only("firstname:EQUALS:Asha")


def test_values_are_trimmed():
    assert only("lastname:EQUALS:  Rao ").values == ("Rao",)


# Each operator


def test_equals_and_exact_keep_the_text_as_sent_for_the_store_to_compare_with_and_without_case():
    assert only("lastname:EQUALS:Rao") == Condition(Attribute.LASTNAME, Operator.EQUALS, ("Rao",))
    assert only("lastname:EXACT:Rao") == Condition(Attribute.LASTNAME, Operator.EXACT, ("Rao",))


def test_starts_and_ends_take_a_piece_of_the_text():
    assert only("external_id:STARTS:EXT-").values == ("EXT-",)
    assert only("email:ENDS:@Example.com").values == ("@example.com",)


def test_less_and_greater_take_one_bound():
    assert only("lifetime_points:LESS:500") == Condition(Attribute.LIFETIME_POINTS, Operator.LESS, (500,))
    assert only("loyalty_points:GREATER:-5").values == (-5,)


def test_range_takes_low_then_high_both_kept_even_when_equal():
    assert only("loyalty_points:RANGE:100;200").values == (100, 200)
    assert only("loyalty_points:RANGE:7;7").values == (7, 7)


def test_in_takes_values_separated_by_semicolons_each_once():
    assert only("slab:IN:Gold;Silver;Gold") == Condition(Attribute.SLAB, Operator.IN, ("Gold", "Silver"))


# Identifiers, read as the add path stores them


@pytest.mark.parametrize(
    "spelling", ["919800000001", "+91 98000 00001", "+91-98000-00001", "(+91) 98000.00001", "९१९८०००००००१"]
)
def test_a_mobile_in_any_usual_spelling_finds_its_e164_digits(spelling):
    assert only(f"mobile:EQUALS:{spelling}").values == ("919800000001",)


def test_a_mobile_without_country_code_finds_its_e164_digits_where_the_org_allows_it():
    org = org_of(CONF_CLIENT_DEFAULT_COUNTRYCODE_PASSED=True)
    assert only("mobile:EXACT:98000 00001", org).values == ("919800000001",)
    assert only("mobile:IN:9800000001;+971 50 123 4567", org).values == ("919800000001", "971501234567")


def test_a_mobile_the_org_would_not_register_is_refused():
    assert refusal("mobile:EQUALS:12345") == '"mobile:EQUALS:12345": 12345 is not a mobile number the org accepts'
    # The US is none of the org's countries.
    assert "is not a mobile number" in refusal("mobile:EQUALS:+1 202 555 0143")


def test_a_mobile_prefix_is_digits_country_code_first_without_noise():
    assert only("mobile:STARTS:+91 (98)").values == ("9198",)
    assert "is not the digits of a mobile number" in refusal("mobile:STARTS:91abc")


def test_a_mobile_takes_no_suffix_nor_order():
    assert "mobile takes EQUALS, EXACT, STARTS, IN; not ENDS" in refusal("mobile:ENDS:0001")
    assert "not LESS" in refusal("mobile:LESS:919800000001")


def test_an_email_is_lower_cased_as_the_add_path_stores_it():
    assert only("email:EQUALS:Asha.Rao@Example.COM").values == ("asha.rao@example.com",)
    assert only("email:EXACT:Asha.Rao@Example.COM").values == ("asha.rao@example.com",)


def test_an_email_prefix_is_a_prefix_of_the_stored_lower_case_email():
    assert only("email:STARTS:Asha.R").values == ("asha.r",)


def test_an_email_that_is_no_email_is_refused():
    assert refusal("email:EQUALS:asha@") == '"email:EQUALS:asha@": asha@ is not an email address'


def test_an_external_id_the_org_would_not_register_is_refused():
    org = org_of(CONF_CLIENT_EXTERNAL_ID_MIN_LENGTH=5)
    assert only("external_id:EQUALS:EXT-1", org).values == ("EXT-1",)
    assert "EX is not an external id the org accepts" in refusal("external_id:EQUALS:EX", org)
    # A prefix is a piece, shorter than any whole one may be.
    assert only("external_id:STARTS:EX", org).values == ("EX",)


# Other standard attributes


def test_a_name_is_read_as_a_name():
    assert only("firstname:IN:Asha;Zoë;O'Neil").values == ("Asha", "Zoë", "O'Neil")
    assert refusal("firstname:EQUALS:<b>") == '"firstname:EQUALS:<b>": <b> is not a name'


def test_points_are_whole_numbers():
    assert refusal("loyalty_points:LESS:abc") == '"loyalty_points:LESS:abc": abc is not a whole number'
    assert "1.5 is not a whole number" in refusal("lifetime_points:EQUALS:1.5")
    assert "is not a whole number" in refusal(f"loyalty_points:GREATER:{2**63}")


def test_points_take_no_piece_of_text():
    assert "loyalty_points takes EQUALS, EXACT, LESS, GREATER, RANGE, IN; not STARTS" in refusal(
        "loyalty_points:STARTS:1"
    )


def test_registered_date_is_a_day_of_the_org():
    assert only("registered_date:EQUALS:2026-03-01") == Condition(
        Attribute.REGISTERED_DATE, Operator.EQUALS, (date(2026, 3, 1),)
    )
    assert only("registered_date:RANGE:2026-01-01;2026-01-31").values == (date(2026, 1, 1), date(2026, 1, 31))


@pytest.mark.parametrize("value", ["2026-13-01", "2026-02-30", "yesterday", "0001-01-01"])
def test_a_registered_date_that_is_no_date_is_refused(value):
    q = f"registered_date:LESS:{value}"
    assert refusal(q) == f'"{q}": {value} is not a date, YYYY-MM-DD'


def test_registered_date_takes_no_text_operator_nor_list():
    assert "registered_date takes EQUALS, LESS, GREATER, RANGE; not STARTS" in refusal("registered_date:STARTS:2026")
    assert "not IN" in refusal("registered_date:IN:2026-01-01;2026-01-02")


def test_type_is_loyalty_or_non_loyalty_in_any_case():
    assert only("type:IN:loyalty;Non_Loyalty").values == ("LOYALTY", "NON_LOYALTY")
    assert refusal("type:EQUALS:gold") == '"type:EQUALS:gold": gold is not LOYALTY or NON_LOYALTY'
    assert "type takes EQUALS, IN; not STARTS" in refusal("type:STARTS:LOY")


def test_slab_store_and_till_are_text_not_checked_against_the_org():
    assert only("registered_till:EQUALS:till.closed").values == ("till.closed",)
    assert only("registered_store:STARTS:blr.").values == ("blr.",)


# Custom fields


def test_a_custom_field_is_found_by_its_declared_name_in_any_case():
    assert only("city_NAME:EQUALS:Pune") == Condition("City_name", Operator.EQUALS, ("Pune",))


def test_a_custom_field_value_is_read_as_the_add_path_stores_it():
    assert only("club:IN:gold;SILVER").values == ("Gold", "Silver")
    assert only("newsletter:EQUALS:yes").values == ("true",)
    assert refusal("club:EQUALS:Bronze") == '"club:EQUALS:Bronze": Bronze is not one of the field\'s options'


def test_a_custom_text_field_takes_text_operators_only():
    assert only("City_name:ENDS:pur").values == ("pur",)
    assert "City_name takes EQUALS, EXACT, STARTS, ENDS, IN; not LESS" in refusal("City_name:LESS:M")


def test_a_custom_number_or_date_field_is_also_ordered_with_typed_values():
    assert only("visits:GREATER:3") == Condition("visits", Operator.GREATER, (3,))
    assert only("pwgConsumption:RANGE:1.5;2.25").values == (1.5, 2.25)
    assert only("anniversary:LESS:2020-06-01").values == (date(2020, 6, 1),)
    assert only("last_visit:EQUALS:2026-05-01 10:30").values == (datetime(2026, 5, 1, 10, 30),)
    # A piece of the stored text is still text.
    assert only("anniversary:STARTS:2020-").values == ("2020-",)


def test_a_custom_number_field_refuses_what_is_no_number():
    assert refusal("visits:LESS:many") == '"visits:LESS:many": many is not a whole number'
    assert "nan is not a number" in refusal("pwgConsumption:GREATER:nan")


def test_an_undeclared_custom_field_is_an_unknown_attribute():
    assert refusal("shoe_size:EQUALS:9") == '"shoe_size:EQUALS:9": unknown attribute shoe_size'
    # Extended fields are not custom fields.
    assert "unknown attribute age_group" in refusal("age_group:EQUALS:18-25")


# Refusals


def test_an_unknown_attribute_is_refused():
    assert refusal("foo:EQUALS:x") == '"foo:EQUALS:x": unknown attribute foo'


def test_an_unknown_operator_is_refused():
    assert refusal("firstname:SOUNDS:x") == '"firstname:SOUNDS:x": unknown operator SOUNDS'


def test_a_refusal_names_the_offending_condition_among_others_as_sent():
    assert refusal("firstname:EQUALS:Asha&Loyalty_Points:less:abc") == (
        '"Loyalty_Points:less:abc": abc is not a whole number'
    )


@pytest.mark.parametrize("value", ["100", "100;", ";200", "1;2;3"])
def test_range_takes_exactly_low_and_high(value):
    q = f"loyalty_points:RANGE:{value}"
    assert refusal(q) == f'"{q}": RANGE takes low;high'


def test_range_refuses_a_low_above_its_high():
    assert "RANGE takes low;high, and 200 is above 100" in refusal("loyalty_points:RANGE:200;100")


def test_in_refuses_an_empty_member():
    assert "IN takes a;b;c, none of them empty" in refusal("slab:IN:Gold;;Silver")


def test_a_condition_without_three_parts_is_refused():
    assert refusal("firstname:Asha") == '"firstname:Asha": write ATTRIBUTE:OPERATOR:VALUE'


@pytest.mark.parametrize("q", ["", "   "])
def test_an_empty_q_is_refused(q):
    assert refusal(q).startswith("q is empty")


def test_an_empty_condition_is_refused():
    assert refusal("firstname:EQUALS:Asha&") == '"": the condition is empty: an & too many'


@pytest.mark.parametrize("q", ["firstname:EQUALS:", "firstname:EQUALS:  "])
def test_an_empty_value_is_refused(q):
    assert refusal(q) == f'"{q}": the value is empty'


def test_a_value_longer_than_200_characters_is_refused():
    assert only("City_name:STARTS:" + "a" * 200).values == ("a" * 200,)
    assert "the value is longer than 200 characters" in refusal("City_name:STARTS:" + "a" * 201)


def test_at_most_ten_conditions():
    ten = "&".join(f"firstname:STARTS:{letter}" for letter in "abcdefghij")
    assert len(read_query(ten, ORG).conditions) == MAX_CONDITIONS
    assert refusal("&".join(["visits:GREATER:1"] * 11)) == "q holds 11 conditions; at most 10 are allowed"


# Paging


def test_a_page_is_the_first_ten_by_default():
    assert read_page(None, None) == Page(start=0, rows=10)


def test_a_page_takes_start_and_up_to_100_rows():
    assert read_page("40", "100") == Page(start=40, rows=100)
    assert read_page("0", "0") == Page(start=0, rows=0)


def test_more_than_100_rows_are_refused():
    with pytest.raises(SearchRefused, match="rows is 101; at most 100"):
        read_page(None, "101")


@pytest.mark.parametrize(("start", "rows"), [("-1", None), ("x", None), ("", None), (None, "1.5"), (None, "+5")])
def test_start_and_rows_are_whole_numbers_zero_or_more(start, rows):
    with pytest.raises(SearchRefused, match="must be a whole number, 0 or more"):
        read_page(start, rows)


# A search's cost, bounded before it runs (issue 29)


def test_the_same_condition_asked_twice_is_asked_once():
    query = read_query("City_name:STARTS:note&city_name:starts:NOTE&City_name:STARTS:note&firstname:EQUALS:Asha", ORG)
    assert query.conditions == (
        Condition("City_name", Operator.STARTS, ("note",)),
        Condition(Attribute.FIRSTNAME, Operator.EQUALS, ("Asha",)),
    )


def test_exact_conditions_differing_in_case_are_both_asked():
    query = read_query("firstname:EXACT:Asha&firstname:EXACT:asha", ORG)
    assert len(query.conditions) == 2


def test_in_conditions_of_the_same_values_in_another_order_are_one():
    assert len(read_query("City_name:IN:Pune;Goa&City_name:IN:goa;pune", ORG).conditions) == 1


def test_at_most_three_conditions_may_read_every_customer():
    scanning = "City_name:EQUALS:Pune&type:EQUALS:LOYALTY&loyalty_points:GREATER:5"
    assert len(read_query(scanning, ORG).conditions) == 3
    message = refusal(scanning + "&visits:GREATER:2")
    assert "4 conditions that read every customer" in message and f"at most {MAX_SCANNING}" in message


def test_conditions_an_index_serves_are_not_counted_among_those_that_read_every_customer():
    served = "firstname:STARTS:a&lastname:EQUALS:b&mobile:STARTS:9198&email:EQUALS:a@b.co&registered_date:GREATER:2020-01-01"
    assert not [c for c in read_query(served, ORG).conditions if scans_every_customer(c)]
    assert scans_every_customer(only("firstname:ENDS:sha"))


def test_an_ends_value_is_at_most_32_characters():
    assert only("City_name:ENDS:" + "e" * MAX_SUFFIX).values == ("e" * MAX_SUFFIX,)
    assert f"an ENDS value is at most {MAX_SUFFIX} characters" in refusal("City_name:ENDS:" + "e" * (MAX_SUFFIX + 1))


def test_the_attack_of_repeated_prefixes_and_a_long_suffix_is_refused_before_it_runs():
    attack = "&".join(["City_name:STARTS:note"] * 9 + ["City_name:ENDS:" + "e" * 199])
    assert "an ENDS value is at most" in refusal(attack)


def test_paging_reaches_only_the_counted_matches():
    assert read_page(str(MAX_COUNTED - 1), "100") == Page(MAX_COUNTED - 1, 100)
    with pytest.raises(SearchRefused) as refused:
        read_page(str(MAX_COUNTED), "10")
    assert f"first {MAX_COUNTED} matches" in refused.value.message


def test_a_nul_character_is_refused():
    assert refusal("firstname:EQUALS:a\x00b") == "q holds a NUL character (U+0000), which is not allowed"
