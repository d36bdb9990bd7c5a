"""Customer search: the search box, and the filter's conditions picked field by field or written in
customer/search's grammar; a page of results at a time, each with its points and slab."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from patron.admission import SearchesBusy
from patron.console import query_builder
from patron.console.guards import page, pending_count
from patron.console.query_builder import OPERATOR_WORDS, Field
from patron.console.sessions import Signed
from patron.console.web import Paging, render, services
from patron.customers.model import Customer
from patron.customers.search.query import SearchRefused, SearchTimedOut, read_page, read_query
from patron.customers.search.run import SearchResult, search, search_box
from patron.loyalty.model import Membership
from patron.orgs.model import OrgSettings

SEARCH_ROWS = "20"


@dataclass(frozen=True)
class Found:
    """A customer found, with the points and slab of "the" membership (api.present's customer-level
    values: the default programme's, else the lowest programme's); None without a membership."""

    customer: Customer
    loyalty_points: int | None
    slab: str | None


@dataclass(frozen=True)
class CustomersPage:
    q: str
    conditions: str  # the conditions searched, as the grammar writes them: the text box shows them
    result: SearchResult | None
    rows: list[Found]
    error: str | None
    error_field: str | None  # the field the error is shown at: "q" or "filter"
    paging: Paging | None
    pickers: list[query_builder.Row]
    fields: list[Field]
    operators: dict[str, str]  # each operator's grammar word, and how the picker says it


def from_another_site(request: Request) -> bool:
    """Whether the browser says the request comes from another site (Sec-Fetch-Site): a link or a
    form there, not the user's own navigation in the console or a typed address."""
    return request.headers.get("sec-fetch-site", "").lower() in ("cross-site", "same-site")


def main_membership(memberships: list[Membership], org: OrgSettings) -> Membership | None:
    """The membership whose points and slab stand for the customer's: the default programme's, else
    the lowest programme's (as customer/get and search answer them)."""
    default = org.definition.default_program
    held = [m for m in memberships if m.program_id in org.programs]
    return min(held, key=lambda m: (default is None or m.program_id != default.id, m.program_id), default=None)


def found(customer: Customer, memberships: list[Membership], org: OrgSettings) -> Found:
    main = main_membership(memberships, org)
    if main is None:
        return Found(customer, None, None)
    slabs = org.programs[main.program_id].slabs
    slab = next((s.name for s in slabs if s.serial == main.slab_serial), str(main.slab_serial))
    return Found(customer, main.loyalty_points, slab)


def conditions_asked(params: QueryParams) -> str:
    """The conditions to search: the text box's when the user wrote in it (it differs from the query
    the page last showed, `shown`, or there was none), else what the pickers write."""
    text, shown = params.get("filter", "").strip(), params.get("shown")
    if text and (shown is None or text != shown.strip()):
        return text
    rows = query_builder.rows_of(params)
    return query_builder.write(rows) if rows else text


def _paging(request: Request, result: SearchResult, conditions: str) -> Paging:
    # The next page asks what this one showed: the query as searched, not the form's parts.
    params = request.query_params
    asked = {"q": params.get("q", "")} if not conditions else {"filter": conditions}
    if "rows" in params:
        asked["rows"] = params["rows"]

    def at(start: int) -> str:
        return "/console/customers?" + urlencode({**asked, "start": start})

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
    org = signed.org
    fields = query_builder.fields_of(org)
    text = params.get("q", "").strip()
    result: SearchResult | None = None
    error: str | None = None
    error_field: str | None = None
    try:
        conditions = conditions_asked(params)
        # The pickers show the conditions searched, whichever way they were written.
        pickers = query_builder.read(conditions, fields)
    except SearchRefused as refused:
        # Rows the grammar cannot say: shown as the user left them, with why; nothing searched.
        conditions, pickers = params.get("filter", "").strip(), query_builder.rows_of(params)
        error, error_field = refused.message, "filter"
    asked = error is None and bool(text or conditions)
    if asked and from_another_site(request):
        # A link on another site must not search as the signed-in user: the form is shown filled
        # in, and the user runs it here.
        error_field = "filter" if conditions else "q"
        error = "This search was opened from another site, so it was not run. Press Search to run it."
    elif asked:
        services_ = services(request)
        storage, timeout = services_.storage, services_.settings.search_timeout_seconds
        try:
            page_asked = read_page(params.get("start"), params.get("rows") or SEARCH_ROWS)
        except SearchRefused as refused:
            page_asked, error, error_field = read_page(None, SEARCH_ROWS), refused.message, "q"
        if error is None:
            try:
                async with services_.searches.admit(("console", org.org_id, signed.login)):
                    if conditions:
                        error_field = "filter"
                        query = read_query(conditions, org)
                        result = await search(org, query, page_asked, storage, timeout)
                    else:
                        error_field = "q"
                        result = await search_box(text, org, page_asked, storage, timeout)
                error_field = None
            except (SearchRefused, SearchTimedOut, SearchesBusy) as refused:
                error = refused.message
    data = CustomersPage(
        q=text,
        conditions=conditions,
        result=result,
        # Each customer's memberships came with it, in the page's own statement and snapshot.
        rows=[found(customer, memberships, org) for customer, memberships in result.customers] if result else [],
        error=error,
        error_field=error_field,
        paging=_paging(request, result, conditions) if result else None,
        pickers=query_builder.shown_rows(pickers),
        fields=fields,
        operators={operator.value: words for operator, words in OPERATOR_WORDS.items()},
    )
    return render(request, "customers.html", signed, data, pending=await pending_count(request, signed))


ROUTES = [Route("/customers", customers_page, methods=["GET"])]
