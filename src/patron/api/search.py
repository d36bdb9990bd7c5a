"""GET /v1.1/customer/search (member-care.md §3): the org's customers meeting `q`, a page at a time."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from patron.api.codec import encode, format_param, response_format, search_document
from patron.api.context import services
from patron.api.errors import ApiError
from patron.api.present import found_item
from patron.codes import Code
from patron.registration.search import SearchRefused, read_page, read_query
from patron.registration.searching import search

SEARCH_PARAMETERS = ("q", "start", "rows")


async def search_customers(request: Request) -> Response:
    app = services(request)
    principal = await app.auth.authenticate(request)
    request.scope["state"]["principal"] = principal
    principal.require("customer", "read")
    format_param(request)
    org, params = principal.org, request.query_params
    try:
        if "q" not in params:
            raise SearchRefused("q is missing: give one or more ATTRIBUTE:OPERATOR:VALUE conditions joined by &")
        query = read_query(params["q"], org)
        page = read_page(params.get("start"), params.get("rows"))
    except SearchRefused as refused:
        raise ApiError(Code.INVALID_INPUT, detail=refused.message) from refused
    result = await search(org, query, page, app.storage)
    items = [found_item(customer, memberships, org) for customer, memberships in result.customers]
    body = search_document(result.count, result.start, result.rows, items)
    return encode(body, response_format(request), int(Code.SUCCESS))
