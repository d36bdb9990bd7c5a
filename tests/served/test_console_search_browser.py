"""The overview's charts and the search page in a real browser (Debian's chromium under Playwright)
against a real `patron serve`: each chart as wide as its card with every label inside it; a
search's results showing points and slab, each row opening its customer; the filter's pickers
used without JavaScript, their query searched and shown again. Screenshots at desktop and phone
width in var/screenshots/console/ (overview-charts*, search-pickers*), checked by axe-core."""

from __future__ import annotations


import pytest

from test_console_browser import DESKTOP, PHONE, Visit, serious_violations
from test_console_browser import server as server  # noqa: F401  (the served, seeded console)

RENDERED = "the console's charts and search page"
# Each chart's width against its card's content box, and every label's box against the chart's own.
CHART_GEOMETRY = """() => [...document.querySelectorAll('svg.chart')].filter(svg => svg.getClientRects().length).map(svg => {
  const holder = svg.parentElement;
  const style = getComputedStyle(holder);
  const inner = holder.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
  const [, , width, height] = svg.getAttribute('viewBox').split(' ').map(Number);
  const outside = [...svg.querySelectorAll('text')].filter(text => {
    const box = text.getBBox();
    return box.x < -0.5 || box.y < -0.5 || box.x + box.width > width + 0.5 || box.y + box.height > height + 0.5;
  }).map(text => text.textContent);
  return {title: svg.querySelector('title').textContent, shown: svg.getBoundingClientRect().width, inner, outside};
})"""


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_each_chart_fills_its_card_and_no_label_is_cut(server, browser, viewport):
    suffix = "" if viewport is DESKTOP else "-phone"
    visit = Visit(browser, server, viewport)
    visit.sign_in("priya")
    page = visit.page
    page.locator("svg.chart:visible").first.wait_for()
    visit.shoot(f"overview-charts{suffix}")
    charts = page.evaluate(CHART_GEOMETRY)
    assert len(charts) == 7
    for chart in charts:
        assert chart["outside"] == [], chart["title"]
        assert chart["shown"] == pytest.approx(chart["inner"], abs=2), chart["title"]
    # The month is drawn for the width it is shown at: its text 9 px or more, nothing to scroll.
    days = page.locator("svg.chart:visible", has_text="Registrations per day")
    scale = days.bounding_box()["width"] / float(days.get_attribute("viewBox").split()[2])
    assert 13 * scale >= 9
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
    problems = serious_violations(page)
    visit.close()
    assert problems == []


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_the_pickers_search_and_show_their_query_again_and_each_result_shows_points_and_slab(server, browser, viewport):
    suffix = "" if viewport is DESKTOP else "-phone"
    visit = Visit(browser, server, viewport)
    visit.sign_in("ravi")
    page = visit.go("/console/customers")
    page.get_by_text("Filters", exact=True).click()
    page.get_by_label("Field of condition 1").select_option("firstname")
    page.get_by_label("Compared in condition 1").select_option("STARTS")
    page.get_by_label("Value of condition 1").fill("Vik")
    page.get_by_label("Field of condition 2").select_option("slab")
    page.get_by_label("Compared in condition 2").select_option("EQUALS")
    page.get_by_label("Value of condition 2").fill("Base")
    page.get_by_role("button", name="Search with the conditions").click()
    page.get_by_role("heading", name="customers found").wait_for()
    assert page.get_by_label("Conditions as text").input_value() == "firstname:STARTS:Vik&slab:EQUALS:Base"
    assert page.get_by_label("Field of condition 2").input_value() == "slab"
    assert page.get_by_label("Value of condition 2").input_value() == "Base"
    table = page.locator("table.results")
    rows = table.locator("tbody tr")
    assert rows.count() >= 1
    for index in range(rows.count()):
        row = rows.nth(index)
        assert row.locator('td[data-label="Points"]').inner_text() == "100"
        assert row.locator('td[data-label="Slab"]').inner_text() == "Base"
        assert row.locator('td[data-label="Customer"]').inner_text().startswith("Vikram")
    visit.shoot(f"search-pickers{suffix}")
    problems = serious_violations(page)
    # Anywhere on the row opens the customer, not only its name: the link's area covers it.
    registered = rows.first.locator('td[data-label="Registered"]')
    registered.scroll_into_view_if_needed()
    box = registered.bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_url(f"{server.base}/console/customers/*")
    assert "Vikram Shah" in page.locator("h1").inner_text()
    visit.close()
    assert problems == []
