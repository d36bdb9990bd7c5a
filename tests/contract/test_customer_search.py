"""GET /v1.1/customer/search (member-care.md §3) through the HTTP API, one test per rule, on every
backend: each operator and attribute, custom fields, paging and order, the count, refusals, org
scoping, permissions, XML, the OpenAPI document; prefix conditions planned on their indexes; on
Citus, every statement on the org's shard."""

from __future__ import annotations

import sqlite3
from typing import Any
from xml.etree import ElementTree

import asyncpg
import httpx
import orjson
import pytest
from sqlalchemy import text

from support.api import Org, item, new_mobile
from support.orgs import org_document
from patron.customers.search.query import MAX_COUNTED, Page, read_page, read_query
from patron.customers.search.run import criteria_of, search_box
from patron.orgs.apply import apply_org
from patron.orgs.file import parse_org_document
from patron.orgs.model import OrgSettings
from patron.store.customers import CUSTOMER_COLUMNS
from patron.store.schema import customers
from patron.store.search import SearchStatements
from patron.store.statements import PgStatement, SqliteStatement
import test_citus_routing as routing
from test_openapi import assert_documented_answer

PATH = "/v1.1/customer/search"
# Citus's routing checks: the fixtures that skip other backends and record the statements sent.
citus, sent = routing.citus, routing.sent


async def search(org: Org, q: str | None, *, till: str | None = None, path: str = PATH, **params: Any) -> httpx.Response:
    query = {**({"q": q} if q is not None else {}), **params}
    return await org.http.get(path, params=query, headers=org.basic(till))


def page(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    return response.json()["response"]["customer"]


def ids(response: httpx.Response) -> list[int]:
    return [found["user_id"] for found in page(response)["results"]["item"]]


async def found_by(org: Org, q: str) -> set[int]:
    return set(ids(await search(org, q, rows="100")))


async def customer(org: Org, till: str | None = None, **fields: Any) -> int:
    """A new customer of the org; its user_id."""
    fields.setdefault("mobile", new_mobile())
    added = item(await org.add(fields, till=till))
    assert added["item_status"]["success"] == "true", added
    return added["user_id"]


# The answer


async def test_the_answer_lists_each_customer_found_with_points_slab_and_custom_fields(org):
    mobile = new_mobile()
    user_id = await customer(
        org, mobile=mobile, email="Asha.Rao@Example.com", external_id="EXT-1", firstname="Asha", lastname="Rao",
        registered_on="2026-03-01 10:15:00", custom_fields={"field": [{"name": "city_name", "value": "Pune"}]},
    )
    answer = (await search(org, f"mobile:EQUALS:{mobile}")).json()["response"]
    assert answer["status"] == {"success": "true", "code": 200, "message": answer["status"]["message"]}
    assert answer["customer"] == {
        "count": 1,
        "count_capped": False,
        "start": 0,
        "rows": 10,
        "results": {"item": [{
            "user_id": user_id,
            "org_id": org.id,
            "firstname": "Asha",
            "lastname": "Rao",
            "mobile": mobile,
            "email": "asha.rao@example.com",
            "external_id": "EXT-1",
            "loyalty_points": 100,
            "lifetime_points": 100,
            "current_slab": "Base",
            "registered_on": "2026-03-01 10:15:00",
            "registered_by": org.till(),
            "attributes": {"attribute": [{"name": "City_name", "value": "Pune"}]},
        }]},
    }


async def test_no_match_is_an_empty_page_not_an_error(org):
    answer = page(await search(org, f"mobile:EQUALS:{new_mobile()}"))
    assert answer == {"count": 0, "count_capped": False, "start": 0, "rows": 10, "results": {"item": []}}


# Each operator


async def test_equals_ignores_case(org):
    asha = await customer(org, firstname="Asha")
    assert await found_by(org, "firstname:EQUALS:ASHA") == {asha}


async def test_exact_keeps_case(org):
    asha = await customer(org, firstname="Asha")
    await customer(org, firstname="ASHA")
    assert await found_by(org, "firstname:EXACT:Asha") == {asha}
    assert await found_by(org, "firstname:EXACT:asha") == set()


async def test_starts_finds_a_prefix_ignoring_case(org):
    asha, ashok = await customer(org, firstname="Asha"), await customer(org, firstname="ashok")
    await customer(org, firstname="Basha")
    await customer(org, firstname="As")
    assert await found_by(org, "firstname:STARTS:ash") == {asha, ashok}


async def test_starts_treats_like_wildcards_as_text(org):
    percent = await customer(org, external_id="a%b-1")
    await customer(org, external_id="axb-1")
    assert await found_by(org, "external_id:STARTS:a%") == {percent}
    assert await found_by(org, "external_id:ENDS:%b-1") == {percent}


async def test_ends_finds_a_suffix_ignoring_case(org):
    rao, dasrao = await customer(org, lastname="Rao"), await customer(org, lastname="Dasrao")
    await customer(org, lastname="Raoul")
    assert await found_by(org, "lastname:ENDS:RAO") == {rao, dasrao}


async def test_less_and_greater_are_strict(org):
    loyal = await customer(org, type="LOYALTY")  # 100 registration points
    plain = await customer(org, type="NON_LOYALTY")  # no membership: 0 points
    assert await found_by(org, "loyalty_points:LESS:100") == {plain}
    assert await found_by(org, "loyalty_points:GREATER:0") == {loyal}
    assert await found_by(org, "loyalty_points:GREATER:100") == set()


async def test_range_includes_both_bounds(org):
    first = await customer(org, registered_on="2026-01-01 09:00:00")
    last = await customer(org, registered_on="2026-01-31 21:00:00")
    await customer(org, registered_on="2026-02-01 09:00:00")
    await customer(org, registered_on="2025-12-31 23:00:00")
    assert await found_by(org, "registered_date:RANGE:2026-01-01;2026-01-31") == {first, last}


async def test_in_finds_any_of_the_values_ignoring_case(org):
    asha, ravi = await customer(org, firstname="Asha"), await customer(org, firstname="Ravi")
    await customer(org, firstname="Meera")
    assert await found_by(org, "firstname:IN:asha;RAVI;nobody") == {asha, ravi}


async def test_every_condition_holds(org):
    both = await customer(org, firstname="Asha", lastname="Rao")
    await customer(org, firstname="Asha", lastname="Iyer")
    await customer(org, firstname="Ravi", lastname="Rao")
    assert await found_by(org, "firstname:STARTS:as&lastname:EQUALS:rao") == {both}


# Each attribute


async def test_mobile_is_found_in_any_usual_spelling_and_by_its_leading_digits(org):
    mobile = new_mobile()
    user_id = await customer(org, mobile=mobile)
    spaced = f"+{mobile[:2]} {mobile[2:7]} {mobile[7:]}"
    assert await found_by(org, f"mobile:EQUALS:{spaced}") == {user_id}
    assert await found_by(org, f"mobile:IN:{new_mobile()};{mobile}") == {user_id}
    assert await found_by(org, f"mobile:STARTS:+{mobile[:2]} {mobile[2:10]}") == {user_id}


async def test_email_is_found_in_any_case_and_by_prefix_or_domain(org):
    user_id = await customer(org, email="Asha.Rao@Example.com")
    await customer(org, email="ravi@example.org")
    assert await found_by(org, "email:EQUALS:ASHA.RAO@example.COM") == {user_id}
    assert await found_by(org, "email:STARTS:Asha.") == {user_id}
    assert await found_by(org, "email:ENDS:@EXAMPLE.com") == {user_id}


async def test_external_id_equals_ignores_case_and_exact_does_not(org):
    user_id = await customer(org, external_id="Card-0042")
    assert await found_by(org, "external_id:EQUALS:CARD-0042") == {user_id}
    assert await found_by(org, "external_id:EXACT:CARD-0042") == set()
    assert await found_by(org, "external_id:EXACT:Card-0042") == {user_id}
    assert await found_by(org, "external_id:STARTS:card-") == {user_id}


async def test_lastname_is_searched_like_firstname(org):
    user_id = await customer(org, lastname="Raman")
    assert await found_by(org, "lastname:STARTS:RAM") == {user_id}


async def test_names_in_other_scripts_are_found(org):
    user_id = await customer(org, firstname="Zoë", lastname="अनन्या")
    assert await found_by(org, "firstname:STARTS:Zoë") == {user_id}
    assert await found_by(org, "lastname:EQUALS:अनन्या") == {user_id}


async def test_registered_date_is_a_day_of_the_orgs_timezone(org):
    # Asia/Kolkata is UTC+5:30: 23:30 on 1 March there is 18:00 UTC; 00:30 on the 2nd is 19:00 UTC.
    late = await customer(org, registered_on="2026-03-01 23:30:00")
    early_next = await customer(org, registered_on="2026-03-02 00:30:00")
    assert await found_by(org, "registered_date:EQUALS:2026-03-01") == {late}
    assert await found_by(org, "registered_date:GREATER:2026-03-01") == {early_next}
    assert await found_by(org, "registered_date:LESS:2026-03-02") == {late}


async def test_lifetime_points_are_the_default_programmes(org):
    loyal = await customer(org)
    assert await found_by(org, "lifetime_points:EQUALS:100") == {loyal}
    assert await found_by(org, "lifetime_points:RANGE:1;99") == set()


async def test_slab_is_the_current_slab_of_the_default_programme_by_name(org):
    loyal = await customer(org)
    await customer(org, type="NON_LOYALTY")
    assert await found_by(org, "slab:EQUALS:base") == {loyal}
    assert await found_by(org, "slab:IN:Bronze;Silver") == set()
    assert await found_by(org, "slab:EQUALS:Platinum") == set()


async def test_points_and_slab_are_those_of_the_default_programme_among_several(make_org):
    org = await make_org("rewards")
    both = item(await org.add({"mobile": new_mobile()}, mlp_single_enroll="true"))["user_id"]
    assert item(await org.get(id=str(both)))["points_summaries"]["points_summary"][1]["currentSlab"] == "Member"
    assert await found_by(org, "loyalty_points:EQUALS:100&slab:EQUALS:Base") == {both}
    assert await found_by(org, "loyalty_points:EQUALS:20") == set()
    assert await found_by(org, "slab:EQUALS:Member") == set()


async def test_registered_store_is_the_store_of_the_registering_till(org):
    at_store_one = await customer(org, till=org.till_named(f"till.two.{org.id}"))
    await customer(org, till=org.till_named(f"till.admin.{org.id}"))
    assert await found_by(org, "registered_store:EQUALS:STORE.ONE") == {at_store_one}
    assert await found_by(org, "registered_store:STARTS:store.o") == {at_store_one}
    assert await found_by(org, "registered_store:EQUALS:store.nowhere") == set()


async def test_registered_till_is_the_till_code(org):
    two = org.till_named(f"till.two.{org.id}")
    at_two = await customer(org, till=two)
    await customer(org)
    assert await found_by(org, f"registered_till:EQUALS:{two.upper()}") == {at_two}
    assert await found_by(org, f"registered_till:ENDS:two.{org.id}") == {at_two}


async def test_type_is_loyalty_or_non_loyalty(org):
    loyal, plain = await customer(org, type="LOYALTY"), await customer(org, type="NON_LOYALTY")
    assert await found_by(org, "type:EQUALS:non_loyalty") == {plain}
    assert await found_by(org, "type:IN:LOYALTY;NON_LOYALTY") == {loyal, plain}


# Custom fields


def city(value: str) -> dict[str, Any]:
    return {"field": [{"name": "City_name", "value": value}]}


async def test_a_custom_text_field_is_searched_by_its_name_ignoring_case(org):
    pune = await customer(org, custom_fields=city("Pune"))
    await customer(org, custom_fields=city("Bangalore"))
    await customer(org)
    assert await found_by(org, "city_name:EQUALS:PUNE") == {pune}
    assert await found_by(org, "City_name:STARTS:pu") == {pune}
    assert await found_by(org, "City_name:EXACT:pune") == set()


async def test_a_custom_number_field_compares_as_a_number(org):
    def consumption(value: str) -> dict[str, Any]:
        return {"field": [{"name": "pwgConsumption", "value": value}]}

    small = await customer(org, custom_fields=consumption("1.50"))
    large = await customer(org, custom_fields=consumption("12"))
    assert await found_by(org, "pwgConsumption:EQUALS:1.5") == {small}
    # As text "12" < "9"; as numbers it is not.
    assert await found_by(org, "pwgConsumption:GREATER:9") == {large}
    assert await found_by(org, "pwgConsumption:RANGE:1;2") == {small}


async def test_a_custom_field_of_another_name_holding_the_value_is_not_found(org):
    await customer(org, custom_fields=city("Pune"), extended_fields={"field": [{"name": "age_group", "value": "18-25"}]})
    assert await found_by(org, "pwgConsumption:EQUALS:18") == set()


# Paging, order and count


async def test_newest_registration_comes_first_then_the_highest_user_id(org):
    older = await customer(org, firstname="Pager", registered_on="2026-01-01 10:00:00")
    same = [await customer(org, firstname="Pager", registered_on="2026-02-01 10:00:00") for _ in range(2)]
    newest = await customer(org, firstname="Pager", registered_on="2026-03-01 10:00:00")
    assert ids(await search(org, "firstname:EQUALS:pager")) == [newest, same[1], same[0], older]


async def test_start_and_rows_choose_the_page_and_count_counts_them_all(org):
    added = [await customer(org, firstname="Pager", registered_on=f"2026-01-0{day} 10:00:00") for day in range(1, 6)]
    newest_first = added[::-1]
    second = await search(org, "firstname:EQUALS:pager", start="2", rows="2")
    assert page(second)["count"] == 5 and page(second)["start"] == 2 and page(second)["rows"] == 2
    assert ids(second) == newest_first[2:4]
    assert ids(await search(org, "firstname:EQUALS:pager", start="4", rows="2")) == newest_first[4:]
    beyond = await search(org, "firstname:EQUALS:pager", start="10")
    assert page(beyond)["count"] == 5 and ids(beyond) == []


async def test_rows_zero_answers_only_the_count(org):
    for _ in range(3):
        await customer(org, lastname="Counted")
    answer = page(await search(org, "lastname:EQUALS:counted", rows="0"))
    assert answer["count"] == 3 and answer["results"]["item"] == []


async def test_a_customer_with_memberships_in_several_programmes_is_listed_once(make_org):
    org = await make_org("rewards")
    user_id = await customer(org, firstname="Multi")
    other = await customer(org, firstname="Multi")
    listed = await search(org, "firstname:EQUALS:multi")
    assert page(listed)["count"] == 2 and ids(listed) == [other, user_id]


# Refusals


@pytest.mark.parametrize(
    ("q", "detail"),
    [
        ("firstname:EQUALS:Asha&shoe_size:EQUALS:9", '"shoe_size:EQUALS:9": unknown attribute shoe_size'),
        ("firstname:SOUNDS:Asha", '"firstname:SOUNDS:Asha": unknown operator SOUNDS'),
        ("loyalty_points:LESS:abc", '"loyalty_points:LESS:abc": abc is not a whole number'),
        ("mobile:ENDS:0001", '"mobile:ENDS:0001": mobile takes EQUALS, EXACT, STARTS, IN; not ENDS'),
        ("firstname", '"firstname": write ATTRIBUTE:OPERATOR:VALUE'),
    ],
)
async def test_a_malformed_q_is_400_naming_the_condition(org, q, detail):
    refused = await search(org, q)
    assert refused.status_code == 400
    assert refused.json()["response"]["status"]["detail"] == detail
    assert refused.json()["response"]["status"]["code"] == 400


async def test_a_missing_q_is_400(org):
    refused = await search(org, None)
    assert refused.status_code == 400
    assert refused.json()["response"]["status"]["detail"].startswith("q is missing")


async def test_a_condition_sent_outside_q_is_400_not_a_wider_search(org):
    # "q=firstname:EQUALS:asha&type:EQUALS:LOYALTY" with the & not encoded: the second condition
    # arrives as a key of its own, and searching on the first alone would answer more than asked.
    refused = await org.http.get(PATH + "?q=firstname:EQUALS:asha&type:EQUALS:LOYALTY", headers=org.basic())
    assert refused.status_code == 400
    assert refused.json()["response"]["status"]["detail"].startswith('"type:EQUALS:LOYALTY": a condition outside q')


async def test_q_given_twice_is_400(org):
    refused = await org.http.get(PATH + "?q=type:EQUALS:LOYALTY&q=firstname:EQUALS:asha", headers=org.basic())
    assert refused.status_code == 400
    assert refused.json()["response"]["status"]["detail"].startswith("q is given more than once")


@pytest.mark.parametrize(("params", "detail"), [({"rows": "101"}, "rows is 101; at most 100"), ({"start": "-1"}, "start must")])
async def test_a_page_out_of_bounds_is_400(org, params, detail):
    refused = await search(org, "type:EQUALS:LOYALTY", **params)
    assert refused.status_code == 400
    assert refused.json()["response"]["status"]["detail"].startswith(detail)


# Only the caller's org


async def test_another_orgs_customers_are_never_found(org, make_org):
    other = await make_org()
    mobile = new_mobile()
    ours = await customer(org, mobile=mobile, firstname="Twin", email="twin@example.com")
    await customer(other, mobile=mobile, firstname="Twin", email="twin@example.com")
    for q in (f"mobile:EQUALS:{mobile}", "firstname:STARTS:twi", "email:EQUALS:twin@example.com", "type:EQUALS:LOYALTY"):
        assert await found_by(org, q) == {ours}, q


# Who may search


async def test_a_read_only_till_may_search(org):
    user_id = await customer(org, lastname="Visible")
    readonly = org.till_named(f"till.readonly.{org.id}")
    assert set(ids(await search(org, "lastname:EQUALS:visible", till=readonly))) == {user_id}


async def test_a_till_whose_group_reads_no_customers_is_refused(http, app):
    document = org_document("retail")
    document["access_groups"].append({"name": "reports", "customer": "none"})
    till = f"till.reports.{document['org']['id']}"
    document["stores"].append(
        {"code": "store.reports", "name": "Reports", "access_group": "reports",
         "tills": [{"code": till, "password": "Reports1"}]}
    )
    org_file = parse_org_document(document, "retail.toml")
    await apply_org(app.state.services.engine, org_file)
    org = Org(http, org_file, {till: "Reports1"}, app.state.services.engine)
    refused = await search(org, "type:EQUALS:LOYALTY", till=till)
    assert refused.status_code == 403
    assert_documented_answer(refused, PATH, "get")


async def test_no_credentials_is_401(http):
    assert (await http.get(PATH, params={"q": "type:EQUALS:LOYALTY"})).status_code == 401


# Formats and the document


async def test_the_xml_answer_lists_items_and_attributes(org):
    user_id = await customer(org, firstname="Xml", custom_fields=city("Pune"))
    answer = await search(org, "firstname:EQUALS:xml", path=PATH + ".xml")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/xml")
    root = ElementTree.fromstring(answer.content)
    assert root.tag == "response" and root.findtext("status/code") == "200"
    assert root.findtext("customer/count") == "1"
    (found,) = root.findall("customer/results/item")
    assert found.findtext("user_id") == str(user_id)
    assert found.findtext("attributes/attribute/name") == "City_name"
    assert found.findtext("attributes/attribute/value") == "Pune"
    refused = await search(org, "foo:EQUALS:x", format="xml")
    assert refused.status_code == 400 and b"unknown attribute foo" in refused.content


async def test_the_json_suffix_answers_json(org):
    answer = await search(org, "type:EQUALS:LOYALTY", path=PATH + ".json")
    assert answer.status_code == 200 and "customer" in orjson.loads(answer.content)["response"]


async def test_answers_fit_the_openapi_document(org):
    await customer(org, firstname="Documented", custom_fields=city("Pune"))
    await customer(org, firstname="Documented", type="NON_LOYALTY")
    assert_documented_answer(await search(org, "firstname:EQUALS:documented"), PATH, "get")
    assert_documented_answer(await search(org, "firstname:EQUALS:nobody"), PATH, "get")
    assert_documented_answer(await search(org, "foo:EQUALS:x"), PATH, "get")


# The console's search box (customers.search.run.search_box), on the store of each backend


async def box(org: Org, app: Any, text: str) -> set[int]:
    result = await search_box(text, OrgSettings.from_file(org.file), Page(0, 100), app.state.services.storage, 5.0)
    return {found.id for found, _ in result.customers}


async def test_the_search_box_finds_a_customer_by_any_identifier_or_user_id(org, app):
    mobile = new_mobile()
    user_id = await customer(org, mobile=mobile, email="Box.User@example.com", external_id="BOX-77")
    await customer(org)
    assert await box(org, app, f"+{mobile[:2]} {mobile[2:7]}-{mobile[7:]}") == {user_id}
    assert await box(org, app, "box.user@EXAMPLE.com") == {user_id}
    assert await box(org, app, "BOX-77") == {user_id}
    assert await box(org, app, "box-77") == set()  # an external id exactly, as typed
    assert await box(org, app, str(user_id)) == {user_id}


async def test_the_search_box_finds_names_by_prefix_first_last_or_both(org, app, make_org):
    asha_rao = await customer(org, firstname="Asha", lastname="Rao")
    asha_iyer = await customer(org, firstname="Asha", lastname="Iyer")
    ravi_ashok = await customer(org, firstname="Ravi", lastname="Ashok")
    mary_ann = await customer(org, firstname="Mary Ann", lastname="Lee")
    await customer(await make_org(), firstname="Asha", lastname="Rao")
    assert await box(org, app, "ash") == {asha_rao, asha_iyer, ravi_ashok}
    assert await box(org, app, "asha  r") == {asha_rao}
    assert await box(org, app, "Mary Ann") == {mary_ann}
    assert await box(org, app, "  ") == set()


# Indexes: identifier and name prefixes never read the org's rows one by one


def statements_for(org: Org, q: str, postgres: bool) -> SearchStatements:
    settings = OrgSettings.from_file(org.file)
    criteria = criteria_of(settings, read_query(q, settings).conditions)
    assert criteria is not None
    kind = PgStatement if postgres else SqliteStatement
    return SearchStatements(kind, criteria, read_page(None, None), CUSTOMER_COLUMNS, MAX_COUNTED)


def _pg_indexes(plan: Any) -> set[str]:
    found = set()
    if isinstance(plan, dict):
        if plan.get("Node Type") in ("Index Scan", "Index Only Scan", "Bitmap Index Scan"):
            found.add(plan["Index Name"])
        for value in plan.values():
            found |= _pg_indexes(value)
    elif isinstance(plan, list):
        for value in plan:
            found |= _pg_indexes(value)
    return found


_FILLERS = """
INSERT INTO customers (org_id, mobile, email, external_id, firstname, lastname, type, source, fraud_status,
    registered_on, updated_on, custom_fields, extended_fields, subscriptions, comm_channels, created_at, modified_at)
SELECT $1, '97150' || lpad(CAST(g AS text), 7, '0'), 'filler' || g || '@example.com', 'filler-' || g, 'Filler' || g,
    'Filler' || g, 'LOYALTY', 'INSTORE', 'NONE', now(), now(), '[]', '[]', '[]', '[]', now(), now()
FROM generate_series(1, 3000) AS g
"""


@pytest.mark.parametrize(
    ("q", "index"),
    [
        ("firstname:STARTS:as", "ix_customers_org_id_lower_firstname"),
        ("lastname:EQUALS:rao", "ix_customers_org_id_lower_lastname"),
        ("mobile:STARTS:9198", "ix_customers_org_id_mobile"),
        ("email:STARTS:asha", "ix_customers_org_id_email"),
        ("external_id:STARTS:card", "ix_customers_org_id_lower_external_id"),
    ],
)
async def test_a_prefix_condition_is_planned_on_its_index(org, database_url, q, index):
    await customer(org, firstname="Asha")
    if database_url.startswith("sqlite"):
        statements = statements_for(org, q, postgres=False)
        with sqlite3.connect(database_url.removeprefix("sqlite:///")) as conn:
            plan = [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {statements.count.sql}", statements.count.arguments(statements.values))]
        searched = [step for step in plan if step.startswith("SEARCH customers USING")]
        assert searched and "INDEX" in searched[0], plan
        column = q.split(":")[0]
        # Mobiles and emails are ranged on their unique indexes; the rest on their lower-case ones.
        assert (f"{column}>? AND {column}<?" in searched[0]) if column in ("mobile", "email") else index in searched[0], plan
        return
    conn = await asyncpg.connect(database_url)
    try:
        if await conn.fetchval("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus')"):
            pytest.skip("on Citus the worker plans the shard's statement; routing is tested below")
        # An org of some size, none of whose other customers the condition names, and statistics
        # that know it: the plan is the one a large org gets.
        await conn.execute(_FILLERS, org.id)
        await conn.execute("ANALYZE customers")
        await conn.execute("SET enable_seqscan = off")
        statements = statements_for(org, q, postgres=True)
        plan = await conn.fetchval(f"EXPLAIN (FORMAT JSON) {statements.count.sql}", *statements.count.arguments(statements.values))
    finally:
        await conn.close()
    assert index in _pg_indexes(orjson.loads(plan)), plan


async def test_the_migrations_make_every_index_the_schema_declares(app):
    engine = app.state.services.engine
    dialect = engine.dialect.name
    declared = {
        index.name for index in customers.indexes
        if index._ddl_if is None or index._ddl_if.dialect == dialect  # schema.py: an engine's own index
    }
    # Read from the catalogue: SQLAlchemy's reflection leaves SQLite's expression indexes out.
    listed = (
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'customers'" if dialect == "sqlite"
        else "SELECT indexname FROM pg_indexes WHERE tablename = 'customers'"
    )
    async with engine.connect() as conn:
        made = set((await conn.execute(text(listed))).scalars())
    assert declared <= made, declared - made


# Citus: the org's shard only


async def test_every_search_statement_runs_on_the_orgs_worker(citus, org, sent):
    await customer(org, firstname="Asha", custom_fields=city("Pune"))
    sent.clear()
    before = await routing._two_phase_commits(citus)
    for q in ("firstname:STARTS:as", "mobile:STARTS:9198&registered_date:GREATER:2020-01-01",
              "slab:EQUALS:Base&loyalty_points:GREATER:1", "City_name:EQUALS:pune", "registered_store:EQUALS:store.one"):
        assert page(await search(org, q))["count"] >= 1, q
    await routing._assert_on_one_shard(citus, org, sent, before)
