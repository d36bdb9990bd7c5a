"""The console's customer search (member-care.md, the console): each result's name opens the
customer and shows its points and slab, read with the page; the filter's pickers write
customer/search's grammar and show a query again, whichever way it was written; on every backend."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import update

from support.api import new_mobile
from test_console import a_customer
from patron.console import labels
from patron.store.schema import memberships


def result_rows(html: str) -> dict[int, str]:
    """Each result row's HTML by the customer id its link opens."""
    body = html.split('<table class="results">', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr>(.*?)</tr>", body, re.S)
    return {int(re.search(r'href="/console/customers/(\d+)"', row).group(1)): row for row in rows if "href" in row}


def cell(row: str, label: str) -> str:
    found = re.search(rf'<td data-label="{label}"[^>]*>(.*?)</td>', row, re.S)
    assert found, row
    return re.sub(r"<[^>]+>", "", found.group(1)).strip()


def picked(html: str, index: int) -> tuple[str, str, str]:
    """What the pickers of condition `index` show: the selected field and operator, the value."""

    def selected(name: str) -> str:
        select = re.search(rf'<select id="{name}" name="{name}">(.*?)</select>', html, re.S).group(1)
        chosen = re.search(r'<option value="([^"]*)" selected>', select)
        return chosen.group(1) if chosen else ""

    value = re.search(rf'<input id="value{index}" name="value{index}" type="text" value="([^"]*)"', html).group(1)
    return selected(f"field{index}"), selected(f"op{index}"), value.replace("&amp;", "&")


def text_box(html: str) -> str:
    return re.search(r'<input id="filter" name="filter" type="text" value="([^"]*)"', html).group(1).replace("&amp;", "&")


async def with_points(org: Any, customer: int, points: int, slab_serial: int) -> None:
    async with org.engine.begin() as conn:
        await conn.execute(
            update(memberships)
            .where(memberships.c.org_id == org.id, memberships.c.customer_id == customer)
            .values(loyalty_points=points, lifetime_points=points, slab_serial=slab_serial)
        )


# The results.


async def test_each_result_shows_the_points_and_slab_of_its_membership(browser, org):
    member = await a_customer(org, firstname="Quentin", type="LOYALTY")
    richer = await a_customer(org, firstname="Quentin", type="LOYALTY")
    await with_points(org, richer, 12345, 2)
    outsider = await a_customer(org, firstname="Quentin", type="NON_LOYALTY")
    await browser.as_user(org, "ravi")
    rows = result_rows((await browser.http.get("/console/customers", params={"q": "Quentin"})).text)
    assert (cell(rows[member], "Points"), cell(rows[member], "Slab")) == ("100", "Base")  # registration_points
    assert (cell(rows[richer], "Points"), cell(rows[richer], "Slab")) == ("12,345", "Bronze")
    assert (cell(rows[outsider], "Points"), cell(rows[outsider], "Slab")) == ("—", "—")


async def test_a_results_name_opens_the_customer_and_one_without_a_name_by_its_identifier(browser, org):
    named = await a_customer(org, firstname="Ottoline", lastname="Morrell")
    mobile = new_mobile()
    nameless = await a_customer(org, mobile=mobile, firstname="", lastname="")
    await browser.as_user(org, "ravi")
    rows = result_rows((await browser.http.get("/console/customers", params={"q": "Ottoline"})).text)
    assert re.search(rf'<a class="row-link" href="/console/customers/{named}">Ottoline Morrell</a>', rows[named])
    rows = result_rows((await browser.http.get("/console/customers", params={"q": mobile})).text)
    grouped = labels.mobile(mobile)  # "+91 98…", as the customer page shows it
    assert grouped.startswith("+") and " " in grouped
    assert re.search(rf'<a class="row-link" href="/console/customers/{nameless}">{re.escape(grouped)}</a>', rows[nameless])
    assert cell(rows[nameless], "Mobile") == grouped


async def test_a_page_of_results_reads_points_and_slabs_with_the_customers_in_one_statement(browser, org, app, monkeypatch):
    """The page's customers and their memberships are one read of the search's unit (store/search.py
    joins them in the page's statement): no read per customer, and nothing read outside it."""
    for _ in range(12):
        await a_customer(org, firstname="Perpetua", type="LOYALTY")
    await browser.as_user(org, "ravi")
    storage = app.state.services.storage
    calls: list[str] = []

    class Recorded:
        def __init__(self, inner: Any, path: str) -> None:
            self.inner, self.path = inner, path

        def __getattr__(self, name: str) -> Any:
            found = getattr(self.inner, name)
            if name in ("customers", "loyalty", "console", "identity_requests", "audits", "events"):
                return Recorded(found, f"{self.path}.{name}")
            if callable(found):
                def call(*args: Any, **kwargs: Any) -> Any:
                    calls.append(f"{self.path}.{name}")
                    return found(*args, **kwargs)
                return call
            return found

    def recorded(kind: str) -> Any:
        opened = getattr(storage, kind)

        @asynccontextmanager
        async def unit(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            async with opened(*args, **kwargs) as inner:
                yield Recorded(inner, kind)

        return unit

    for kind in ("search_unit", "unit_of_work", "snapshot"):
        monkeypatch.setattr(storage, kind, recorded(kind))
    page = await browser.http.get("/console/customers", params={"q": "Perpetua"})
    rows = result_rows(page.text)
    assert len(rows) == 12 and {cell(row, "Points") for row in rows.values()} == {"100"}
    assert [call for call in calls if call.startswith("search_unit")] == ["search_unit.customers.search"]
    # The rest are who is signed in and the review queue's count: no customer's data.
    assert all(".customers." not in call and ".loyalty." not in call for call in calls if not call.startswith("search_unit"))


# The filter's pickers.


async def test_conditions_picked_are_searched_as_the_grammar_and_shown_again_in_the_pickers_and_the_text(browser, org):
    member = await a_customer(org, firstname="Zenobia", type="LOYALTY")
    await with_points(org, member, 2500, 1)
    await a_customer(org, firstname="Zenobia", type="LOYALTY")  # 100 points
    await a_customer(org, firstname="Zenobia", type="NON_LOYALTY")
    await browser.as_user(org, "ravi")
    form = {"q": "", "field0": "firstname", "op0": "STARTS", "value0": "zeno",
            "field1": "loyalty_points", "op1": "GREATER", "value1": "1000", "field2": "", "op2": "EQUALS", "value2": "",
            "filter": "", "shown": ""}  # fmt: skip
    page = (await browser.http.get("/console/customers", params=form)).text
    assert list(result_rows(page)) == [member]
    assert text_box(page) == "firstname:STARTS:zeno&loyalty_points:GREATER:1000"
    assert [picked(page, index) for index in range(3)] == [
        ("firstname", "STARTS", "zeno"), ("loyalty_points", "GREATER", "1000"), ("", "", "")
    ]


async def test_conditions_written_as_text_are_shown_in_the_pickers(browser, org):
    member = await a_customer(org, firstname="Ysolde", type="LOYALTY", custom_fields={"field": [{"name": "City_name", "value": "Pune"}]})
    await browser.as_user(org, "ravi")
    page = (await browser.http.get("/console/customers", params={"filter": "FIRSTNAME:equals:ysolde&city_name:EXACT:Pune"})).text
    assert list(result_rows(page)) == [member]
    assert picked(page, 0) == ("firstname", "EQUALS", "ysolde")
    assert picked(page, 1) == ("City_name", "EXACT", "Pune")  # the field as the org file names it
    assert picked(page, 2) == ("", "", "")  # room for one more


async def test_text_changed_from_the_query_shown_is_searched_instead_of_the_pickers(browser, org):
    wanted = await a_customer(org, firstname="Xanthe")
    await a_customer(org, firstname="Wilhelmina")
    await browser.as_user(org, "ravi")
    shown = "firstname:EQUALS:wilhelmina"
    form = {"field0": "firstname", "op0": "EQUALS", "value0": "wilhelmina", "filter": "firstname:EQUALS:xanthe", "shown": shown}
    page = (await browser.http.get("/console/customers", params=form)).text
    assert list(result_rows(page)) == [wanted] and picked(page, 0) == ("firstname", "EQUALS", "xanthe")
    # The text as shown, the pickers changed: the pickers are searched.
    form = {"field0": "firstname", "op0": "EQUALS", "value0": "xanthe", "filter": shown, "shown": shown}
    page = (await browser.http.get("/console/customers", params=form)).text
    assert list(result_rows(page)) == [wanted] and text_box(page) == "firstname:EQUALS:xanthe"


async def test_a_picked_condition_the_grammar_refuses_is_kept_in_the_pickers_with_why(browser, org):
    await browser.as_user(org, "ravi")
    refused = await browser.http.get("/console/customers", params={"field0": "loyalty_points", "op0": "STARTS", "value0": "1"})
    assert refused.status_code == 200 and "h-results" not in refused.text
    assert "loyalty_points takes EQUALS, EXACT, LESS, GREATER, RANGE, IN; not STARTS" in refused.text
    assert picked(refused.text, 0) == ("loyalty_points", "STARTS", "1")
    joined = await browser.http.get("/console/customers", params={"field0": "firstname", "op0": "EQUALS", "value0": "a&b"})
    assert "condition 1: a value cannot hold &amp;, which joins the conditions" in joined.text
    assert picked(joined.text, 0) == ("firstname", "EQUALS", "a&b") and 'aria-invalid="true"' in joined.text
    fieldless = await browser.http.get("/console/customers", params={"field0": "", "op0": "EQUALS", "value0": "Pune"})
    assert "condition 1: choose a field for the value Pune" in fieldless.text


async def test_the_pickers_offer_the_orgs_fields_operators_and_known_values(browser, org):
    await browser.as_user(org, "ravi")
    page = (await browser.http.get("/console/customers")).text
    field0 = re.search(r'<select id="field0" name="field0">(.*?)</select>', page, re.S).group(1)
    offered = re.findall(r'<option value="([^"]*)"', field0)
    assert offered[:3] == ["", "mobile", "email"] and "City_name" in offered and "pwgConsumption" in offered
    assert "user_id" not in offered  # the box's, not the grammar's
    operators = re.findall(r'<option value="([^"]*)"', re.search(r'<select id="op0" name="op0">(.*?)</select>', page, re.S).group(1))
    assert operators == ["EQUALS", "EXACT", "STARTS", "ENDS", "LESS", "GREATER", "RANGE", "IN"]
    slabs = re.search(r'<datalist id="values-slab">(.*?)</datalist>', page).group(1)
    assert re.findall(r'value="([^"]*)"', slabs) == ["Base", "Bronze"]
    types = re.search(r'<datalist id="values-type">(.*?)</datalist>', page).group(1)
    assert re.findall(r'value="([^"]*)"', types) == ["LOYALTY", "NON_LOYALTY"]
    assert org.till() in re.search(r'<datalist id="values-registered_till">(.*?)</datalist>', page).group(1)


async def test_a_pages_next_link_searches_the_same_conditions(browser, org):
    for _ in range(21):
        await a_customer(org, firstname="Vespasia")
    await browser.as_user(org, "ravi")
    page = (await browser.http.get("/console/customers", params={"field0": "firstname", "op0": "EQUALS", "value0": "vespasia"})).text
    assert len(result_rows(page)) == 20
    following = re.search(r'<a href="([^"]+)" rel="next">', page).group(1).replace("&amp;", "&")
    assert parse_qs(urlsplit(following).query) == {"filter": ["firstname:EQUALS:vespasia"], "start": ["20"]}
    second = (await browser.http.get(following)).text
    assert len(result_rows(second)) == 1 and picked(second, 0) == ("firstname", "EQUALS", "vespasia")
