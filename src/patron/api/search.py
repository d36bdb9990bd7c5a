"""GET /v1.1/customer/search (member-care.md §3): the org's customers meeting `q`, a page at a time."""

from __future__ import annotations

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response

from patron.admission import SearchesBusy
from patron.api.codec import encode, format_param, response_format, search_document
from patron.api.context import authorized, services
from patron.api.present import found_item
from patron.codes import Code
from patron.customers.search.query import SearchRefused, SearchTimedOut, read_page, read_query
from patron.customers.search.run import search
from patron.errors import ApiError

async def search_customers(request: Request) -> Response:
    app = services(request)
    principal = await authorized(request, "customer", "read")
    format_param(request)
    org, params = principal.org, request.query_params
    try:
        _one_query(params)
        if "q" not in params:
            raise SearchRefused("q is missing: give one or more ATTRIBUTE:OPERATOR:VALUE conditions joined by &")
        query = read_query(params["q"], org)
        page = read_page(params.get("start"), params.get("rows"))
    except SearchRefused as refused:
        raise ApiError(Code.INVALID_INPUT, detail=refused.message) from refused
    try:
        async with app.searches.admit((org.org_id, principal.api_client_key or principal.till_code)):
            result = await search(org, query, page, app.storage, app.settings.search_timeout_seconds)
    except SearchesBusy as busy:
        raise ApiError(Code.TOO_MANY_REQUESTS, detail=busy.message, headers={"Retry-After": "1"}) from busy
    except SearchTimedOut as timed_out:
        raise ApiError(Code.SEARCH_TIMED_OUT, detail=timed_out.message) from timed_out
    items = [found_item(customer, memberships, org) for customer, memberships in result.customers]
    body = search_document(result.count, result.capped, result.start, result.rows, items)
    return encode(body, response_format(request), int(Code.SUCCESS))


def _one_query(params: QueryParams) -> None:
    """Refuse what would silently search wider than asked: a second `q`, or a condition outside
    `q` (an `&` between conditions sent unencoded makes each further condition a key of its own)."""
    if len(params.getlist("q")) > 1:
        raise SearchRefused("q is given more than once: join the conditions with & inside one q (URL-encoded as %26)")
    stray = next((key for key in params if ":" in key), None)
    if stray is not None:
        raise SearchRefused(
            f'"{stray[:250]}": a condition outside q; join the conditions with & inside q, URL-encoded as %26'
        )
