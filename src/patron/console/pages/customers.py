"""Customer search: the search box and the filter conditions, a page of results at a time."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from patron.admission import SearchesBusy
from patron.console.guards import page, pending_count
from patron.console.sessions import Signed
from patron.console.web import Paging, render, services
from patron.registration import search, searching
from patron.registration.model import Customer

SEARCH_ROWS = "20"


@dataclass(frozen=True)
class CustomersPage:
    q: str
    conditions: str
    result: searching.SearchResult | None
    rows: list[Customer]
    error: str | None
    error_field: str | None  # the field the error is shown at: "q" or "filter"
    paging: Paging | None
    attributes: list[str]
    operators: list[search.Operator]


def from_another_site(request: Request) -> bool:
    """Whether the browser says the request comes from another site (Sec-Fetch-Site): a link or a
    form there, not the user's own navigation in the console or a typed address."""
    return request.headers.get("sec-fetch-site", "").lower() in ("cross-site", "same-site")


def _paging(request: Request, result: searching.SearchResult) -> Paging:
    def at(start: int) -> str:
        query = {k: v for k, v in request.query_params.items() if k != "start"}
        return "/console/customers?" + urlencode({**query, "start": start})

    first, size = result.start, max(result.rows, 1)
    return Paging(
        first=first + 1 if result.customers else 0,
        last=min(result.count, first + len(result.customers)),
        count=result.count,
        previous=at(max(0, first - size)) if first > 0 else None,
        next=at(first + size) if first + size < result.count else None,
    )


@page(requires="read")
async def customers_page(request: Request, signed: Signed) -> Response:
    params = request.query_params
    text, conditions = params.get("q", "").strip(), params.get("filter", "").strip()
    result: searching.SearchResult | None = None
    error: str | None = None
    error_field: str | None = None
    if (text or conditions) and from_another_site(request):
        # A link on another site must not search as the signed-in user: the form is shown filled
        # in, and the user runs it here.
        error_field = "filter" if conditions else "q"
        error = "This search was opened from another site, so it was not run. Press Search to run it."
    elif text or conditions:
        found = services(request)
        storage, timeout = found.storage, found.settings.search_timeout_seconds
        try:
            page_asked = search.read_page(params.get("start"), params.get("rows") or SEARCH_ROWS)
        except search.SearchRefused as refused:
            page_asked, error, error_field = search.read_page(None, SEARCH_ROWS), refused.message, "q"
        if error is None:
            try:
                async with found.searches.admit(("console", signed.org.org_id, signed.login)):
                    if conditions:
                        error_field = "filter"
                        query = search.read_query(conditions, signed.org)
                        result = await searching.search(signed.org, query, page_asked, storage, timeout)
                    else:
                        error_field = "q"
                        result = await searching.search_box(text, signed.org, page_asked, storage, timeout)
                error_field = None
            except (search.SearchRefused, search.SearchTimedOut, SearchesBusy) as refused:
                error = refused.message
    data = CustomersPage(
        q=text, conditions=conditions, result=result, rows=[customer for customer, _ in result.customers] if result else [],
        error=error, error_field=error_field, paging=_paging(request, result) if result else None,
        attributes=[a.value for a in search.Attribute], operators=list(search.Operator),
    )
    return render(request, "customers.html", signed, data, pending=await pending_count(request, signed))


ROUTES = [Route("/customers", customers_page, methods=["GET"])]
