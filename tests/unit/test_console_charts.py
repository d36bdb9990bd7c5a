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
    assert widths[0] == pytest.approx(2 * widths[1], abs=0.15)
    assert "<script>" in [text.text for text in root.iter(f"{SVG}text")]  # as text, not as markup
    assert root.find(f"{SVG}title").text == "By <source>"


def label_lines(text: ET.Element) -> list[str]:
    spans = text.findall(f"{SVG}tspan")
    return [span.text for span in spans] if spans else [text.text]


def test_a_long_label_is_wrapped_whole_onto_a_second_line():
    name = "91015 Invalid extended field value"
    root = parsed(charts.bar_chart([(name, 1)], title="t", description="d"))
    (label,) = [text for text in root.iter(f"{SVG}text") if text.find(f"{SVG}tspan") is not None]
    lines = label_lines(label)
    assert len(lines) == 2 and " ".join(lines) == name
    assert bars(root)[0].find(f"{SVG}title").text == f"{name}: 1"


def test_a_label_too_long_for_two_lines_is_shortened_and_keeps_its_whole_text_in_a_title():
    name = "A store whose name goes on and on past anything two lines of a chart can hold, Bengaluru"
    root = parsed(charts.bar_chart([(name, 1)], title="t", description="d"))
    (label,) = [text for text in root.iter(f"{SVG}text") if text.find(f"{SVG}tspan") is not None]
    lines = label_lines(label)
    assert len(lines) == 2 and lines[-1].endswith("…")
    assert label.find(f"{SVG}title").text == name


def test_labels_that_fit_are_written_as_they_are_with_no_title():
    root = parsed(charts.bar_chart([("INSTORE", 3), ("WEBSITE", 2)], title="t", description="d"))
    labels = [text for text in root.iter(f"{SVG}text") if text.get("text-anchor") == "end"]
    assert [text.text for text in labels] == ["INSTORE", "WEBSITE"]
    assert all(text.find(f"{SVG}title") is None for text in labels)


@pytest.mark.parametrize("draw", [charts.column_chart, charts.bar_chart, charts.share_bar])
def test_a_chart_is_as_wide_as_its_card_its_height_from_the_viewbox(draw):
    root = parsed(draw([("a", 1), ("b", 2)], title="t", description="d"))
    assert root.get("width") == "100%" and root.get("height") is None
    assert len(root.get("viewBox").split()) == 4


@pytest.mark.parametrize("slot", [32, 12], ids=["desktop", "phone"])
def test_a_month_of_days_is_labelled_first_and_last_with_no_label_past_either_edge(slot):
    days = [(f"{day:02d} Nov", day % 4) for day in range(1, 31)]
    root = parsed(charts.column_chart(days, title="t", description="d", slot=slot))
    width = float(root.get("viewBox").split()[2])
    labels = [text for text in root.iter(f"{SVG}text") if text.text and text.text.endswith("Nov")]
    shown = [text.text for text in labels]
    assert shown[0] == "01 Nov" and shown[-1] == "30 Nov" and len(shown) >= (10 if slot == 32 else 5)
    for text in labels:
        x, half = float(text.get("x")), charts.text_width(text.text) / 2
        left = {"start": x, "middle": x - half, "end": x - 2 * half}[text.get("text-anchor")]
        assert 0 <= left and left + 2 * half <= width, text.text
    # Side by side, none overlapping the next.
    centres = [float(text.get("x")) for text in labels]
    assert all(b - a >= charts.text_width("30 Nov") for a, b in zip(centres[:-2], centres[1:-1]))


def test_a_share_bar_splits_its_width_by_share_and_says_the_percentages():
    root = parsed(charts.share_bar([("Loyalty", 3), ("Non-loyalty", 1)], title="t", description="d", width=400))
    widths = [float(rect.get("width")) for rect in bars(root)]
    assert widths == [pytest.approx(300), pytest.approx(100)]  # of the viewBox's 400
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
