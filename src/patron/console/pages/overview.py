"""The overview: the org's registrations and members in figures and charts."""

from __future__ import annotations

from dataclasses import dataclass

from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from patron.api.context import utc_now
from patron.console import charts
from patron.console.guards import page, pending_count
from patron.console.overview import DAYS, WARNING_DAYS, Overview
from patron.console.sessions import Signed
from patron.console.web import overviews, render, services
from patron.customers.ports import ConsoleStorage


@dataclass(frozen=True)
class Charts:
    days: Markup
    days_narrow: Markup  # the same month drawn for a phone's width, its text as large
    source: Markup
    store: Markup
    till: Markup
    type: Markup
    slab: Markup
    warnings: Markup


@dataclass(frozen=True)
class OverviewPage:
    figures: Overview
    charts: Charts
    days: list[tuple[str, int]]  # each day as the chart labels it, and its registrations
    days_count: int
    warning_days: int


def _listed(points: list[tuple[str, int]]) -> str:
    return "; ".join(f"{label}: {count}" for label, count in points) or "No data."


def _charts(figures: Overview, days: list[tuple[str, int]]) -> Charts:
    types = [("Loyalty" if t == "LOYALTY" else "Non-loyalty" if t == "NON_LOYALTY" else t, n) for t, n in figures.by_type]
    days_title = f"Registrations per day, last {DAYS} days"
    days_description = f"{figures.registered} registrations from {days[0][0]} to {days[-1][0]}."
    return Charts(
        days=Markup(charts.column_chart(days, title=days_title, description=days_description, kind="chart days-wide")),
        # A phone shows this one instead (the page's stylesheet): a third as wide, fewer days labelled.
        days_narrow=Markup(charts.column_chart(
            days, title=days_title, description=days_description, slot=12, kind="chart days-narrow"
        )),
        source=Markup(charts.bar_chart(figures.by_source, title="Registrations by source", description=_listed(figures.by_source))),
        store=Markup(charts.bar_chart(figures.by_store, title="Registrations by store", description=_listed(figures.by_store))),
        till=Markup(charts.bar_chart(figures.by_till, title="Registrations by till", description=_listed(figures.by_till))),
        type=Markup(charts.share_bar(types, title="Loyalty and non-loyalty customers", description=_listed(figures.by_type))),
        slab=Markup(charts.bar_chart(figures.by_slab, title="Members per slab", description=_listed(figures.by_slab))),
        warnings=Markup(charts.bar_chart(
            [(f"{code} {name}", count) for code, name, count in figures.warnings],
            title=f"Most frequent warnings, last {WARNING_DAYS} days",
            description=_listed([(str(code), count) for code, _, count in figures.warnings]),
        )),
    )


@page()
async def overview(request: Request, signed: Signed) -> Response:
    storage: ConsoleStorage = services(request).storage
    figures = await overviews(request).get(storage, signed.org, utc_now())
    days = [(day.strftime("%d %b"), count) for day, count in figures.days]
    data = OverviewPage(figures, _charts(figures, days), days, DAYS, WARNING_DAYS)
    return render(request, "overview.html", signed, data, pending=await pending_count(request, signed))


ROUTES = [Route("/", overview, methods=["GET"])]
