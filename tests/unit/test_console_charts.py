"""The console's SVG charts (patron.console.charts): figures in, well-formed, labelled SVG out."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from patron.console import charts

SVG = "{http://www.w3.org/2000/svg}"


def parsed(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def bars(root: ET.Element) -> list[ET.Element]:
    return [rect for rect in root.iter(f"{SVG}rect") if rect.find(f"{SVG}title") is not None]


@pytest.mark.parametrize(("value", "ceiling"), [(0, 1), (1, 1), (2, 2), (3, 5), (7, 10), (11, 20), (180, 200), (501, 1000)])
def test_the_value_axis_tops_out_at_a_round_number(value, ceiling):
    assert charts.nice_ceiling(value) == ceiling


@pytest.mark.parametrize("ceiling", [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000])
def test_gridlines_are_whole_numbers_from_zero_to_the_top(ceiling):
    ticks = charts.ticks(ceiling)
    assert ticks[0] == 0 and ticks[-1] == ceiling and 2 <= len(ticks) <= 6


def test_a_column_chart_is_an_image_titled_and_described_for_screen_readers():
    root = parsed(charts.column_chart([("01 Dec", 3), ("02 Dec", 0), ("03 Dec", 6)], title="Per day", description="9 in all"))
    assert root.get("role") == "img"
    labelled = root.get("aria-labelledby").split()
    assert [root.find(f"{SVG}title").get("id"), root.find(f"{SVG}desc").get("id")] == labelled
    assert root.find(f"{SVG}title").text == "Per day" and root.find(f"{SVG}desc").text == "9 in all"


def test_column_heights_are_proportional_to_the_values():
    root = parsed(charts.column_chart([("a", 5), ("b", 10), ("c", 0)], title="t", description="d"))
    heights = [float(rect.get("height")) for rect in bars(root)]
    assert heights[1] == pytest.approx(2 * heights[0]) and heights[2] == 0
    assert [rect.find(f"{SVG}title").text for rect in bars(root)] == ["a: 5", "b: 10", "c: 0"]


def test_bar_lengths_are_proportional_and_labels_are_escaped():
    root = parsed(charts.bar_chart([("<script>", 4), ("b & c", 2)], title="By <source>", description="d"))
    widths = [float(rect.get("width")) for rect in bars(root)]
    assert widths[0] == pytest.approx(2 * widths[1])
    assert "<script>" in [text.text for text in root.iter(f"{SVG}text")]  # as text, not as markup
    assert root.find(f"{SVG}title").text == "By <source>"


def test_a_long_label_is_cut_but_its_bar_keeps_the_whole_name():
    name = "91015 Invalid extended field value"
    root = parsed(charts.bar_chart([(name, 1)], title="t", description="d"))
    assert any(text.text.endswith("…") for text in root.iter(f"{SVG}text"))
    assert bars(root)[0].find(f"{SVG}title").text == f"{name}: 1"


def test_a_share_bar_splits_its_width_by_share_and_says_the_percentages():
    root = parsed(charts.share_bar([("Loyalty", 3), ("Non-loyalty", 1)], title="t", description="d", width=400))
    widths = [float(rect.get("width")) for rect in bars(root)]
    assert widths == [pytest.approx(300), pytest.approx(100)]
    legend = [text.text for text in root.iter(f"{SVG}text")]
    assert legend == ["Loyalty: 3 (75%)", "Non-loyalty: 1 (25%)"]


@pytest.mark.parametrize("draw", [charts.column_chart, charts.bar_chart, charts.share_bar])
def test_no_data_draws_an_empty_chart_not_an_error(draw):
    root = parsed(draw([], title="t", description="d"))
    assert bars(root) == []


def test_each_chart_has_ids_of_its_own_on_a_page_of_several():
    first = parsed(charts.bar_chart([("a", 1)], title="t", description="d"))
    second = parsed(charts.bar_chart([("a", 1)], title="t", description="d"))
    assert first.get("aria-labelledby") != second.get("aria-labelledby")
