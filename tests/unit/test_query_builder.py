"""The search page's pickers (patron.console.query_builder): rows written as customer/search's `q`
grammar, which read_query reads as the conditions typed; a query read back into rows."""

from __future__ import annotations

import pytest

from patron.console.query_builder import EMPTY_ROWS, Row, fields_of, read, rows_of, shown_rows, write
from patron.customers.search.query import MAX_CONDITIONS, OPERATORS, Kind, Operator, SearchRefused, read_query
from test_search_query import ORG, org_of

FIELDS = fields_of(ORG)


def test_rows_are_written_as_attribute_operator_value_joined_by_ampersands():
    rows = [Row("firstname", "STARTS", "asha"), Row("type", "EQUALS", "LOYALTY"), Row("loyalty_points", "RANGE", "10;20")]
    assert write(rows) == "firstname:STARTS:asha&type:EQUALS:LOYALTY&loyalty_points:RANGE:10;20"


def test_a_value_is_trimmed_and_may_hold_colons():
    assert write([Row("last_visit", "GREATER", " 2026-01-01 10:30:00 ")]) == "last_visit:GREATER:2026-01-01 10:30:00"


def test_a_row_without_an_operator_compares_equal():
    assert write([Row("City_name", "", "Pune")]) == "City_name:EQUALS:Pune"


def test_what_the_pickers_write_is_read_as_the_same_conditions_typed():
    rows = [Row("mobile", "STARTS", "+91 98"), Row("club", "IN", "gold;Silver"), Row("registered_date", "RANGE", "2026-01-01;2026-01-31")]
    typed = "mobile:STARTS:9198&club:IN:Gold;Silver&registered_date:RANGE:2026-01-01;2026-01-31"
    assert read_query(write(rows), ORG) == read_query(typed, ORG)


def test_rows_written_are_read_back_as_they_were():
    rows = [Row("firstname", "EXACT", "Asha"), Row("City_name", "ENDS", "une"), Row("visits", "GREATER", "3")]
    assert read(write(rows), FIELDS) == rows


def test_a_query_typed_in_any_case_is_read_into_the_pickers_names():
    assert read("FIRSTNAME:starts:as&city_NAME:exact:Pune", FIELDS) == [
        Row("firstname", "STARTS", "as"), Row("City_name", "EXACT", "Pune")
    ]


def test_a_condition_that_does_not_split_in_three_is_left_to_the_text_box():
    assert read("firstname:EQUALS:asha&nonsense", FIELDS) == [Row("firstname", "EQUALS", "asha")]
    assert read("  ", FIELDS) == []


def test_a_value_without_its_field_is_refused_naming_the_condition():
    with pytest.raises(SearchRefused, match="condition 2: choose a field for the value Pune"):
        write([Row("firstname", "EQUALS", "asha"), Row("", "EQUALS", "Pune")])


def test_a_value_holding_an_ampersand_is_refused_since_it_would_split_the_query():
    with pytest.raises(SearchRefused, match="cannot hold &"):
        write([Row("firstname", "EQUALS", "Tom & Jerry")])


def test_the_forms_rows_are_read_in_order_and_blank_ones_left_out():
    params = {"field0": "firstname", "op0": "EQUALS", "value0": "asha", "field1": "", "op1": "EQUALS", "value1": " ",
              "field3": "type", "op3": "IN", "value3": "LOYALTY"}  # fmt: skip
    assert rows_of(params) == [Row("firstname", "EQUALS", "asha"), Row("type", "IN", "LOYALTY")]


def test_the_pickers_offer_the_standard_attributes_then_the_orgs_custom_fields_each_with_its_operators():
    names = [field.name for field in FIELDS]
    assert names[:2] == ["mobile", "email"] and "user_id" not in names
    assert names[-7:] == ["City_name", "club", "newsletter", "visits", "pwgConsumption", "anniversary", "last_visit"]
    by_name = {field.name: field for field in FIELDS}
    assert by_name["type"].operators == OPERATORS[Kind.CHOICE]
    assert by_name["visits"].operators == OPERATORS[Kind.ORDERED_FIELD]
    assert Operator.ENDS not in by_name["mobile"].operators


def test_a_custom_field_is_offered_by_its_label():
    by_name = {field.name: field for field in FIELDS}
    assert by_name["City_name"].label == "City name" and by_name["pwgConsumption"].label == "Pwg consumption"
    assert by_name["firstname"].label == "First name"


def test_the_pickers_offer_the_values_an_attribute_can_take_where_the_org_knows_them():
    by_name = {field.name: field for field in FIELDS}
    assert by_name["type"].values == ("LOYALTY", "NON_LOYALTY")
    assert by_name["club"].values == ("Gold", "Silver")
    assert by_name["newsletter"].values == ("true", "false")
    assert by_name["registered_store"].values == ("store.one",)
    assert by_name["registered_till"].values == ("till.one",)
    assert by_name["firstname"].values == ()


def test_each_offered_value_is_one_the_grammar_reads():
    org = org_of()
    for field in fields_of(org):
        for value in field.values:
            read_query(f"{field.name}:EQUALS:{value}", org)


def test_the_form_shows_the_rows_and_room_for_one_more_at_least_a_few_at_most_the_limit():
    assert shown_rows([]) == [Row()] * EMPTY_ROWS
    five = [Row("firstname", "EQUALS", str(n)) for n in range(5)]
    assert shown_rows(five) == [*five, Row()]
    full = [Row("firstname", "EQUALS", str(n)) for n in range(MAX_CONDITIONS)]
    assert shown_rows(full) == full
