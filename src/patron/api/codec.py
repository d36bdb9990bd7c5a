"""Request and response formats: JSON or XML, chosen by suffix, `format`, Content-Type and Accept."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, overload

import orjson
from starlette.requests import Request
from starlette.responses import Response

from patron.api import answers, xml
from patron.codes import Code, request_message
from patron.errors import ApiError

JSON_TYPES = ("application/json", "text/json")
XML_TYPES = ("application/xml", "text/xml")


def _media(header: str | None) -> str:
    return (header or "").split(";", 1)[0].strip().lower()


def _suffix(request: Request) -> str | None:
    path = request.scope["path"]  # request.url would build the whole URL first
    if path.endswith(".xml"):
        return "xml"
    if path.endswith(".json"):
        return "json"
    return None


def format_param(request: Request) -> str | None:
    value = request.query_params.get("format")
    if value is None:
        return None
    value = value.strip().lower()
    if value not in ("json", "xml"):
        raise ApiError(Code.INVALID_INPUT, detail="format must be json or xml")
    return value


def request_format(request: Request) -> str:
    """The body's format: an explicit `format` or suffix, else the Content-Type (others: 415)."""
    chosen = format_param(request) or _suffix(request)
    if chosen:
        return chosen
    media = _media(request.headers.get("content-type"))
    if media in XML_TYPES:
        return "xml"
    if media in JSON_TYPES or media in ("", "*/*"):
        return "json"
    raise ApiError(Code.UNSUPPORTED_MEDIA_TYPE, detail=f"Content-Type {media} is neither JSON nor XML")


def response_format(request: Request, body_format: str | None = None) -> str:
    """`format` wins, then the suffix, then an Accept that asks for exactly one of the two."""
    try:
        chosen = format_param(request) or _suffix(request)
    except ApiError:
        # An invalid `format` is answered (400) in the format the suffix asks for, if any.
        chosen = _suffix(request)
    if chosen:
        return chosen
    accept = request.headers.get("accept", "").lower()
    wants_xml = any(media in accept for media in XML_TYPES)
    wants_json = any(media in accept for media in JSON_TYPES)
    if wants_xml and not wants_json:
        return "xml"
    if wants_json and not wants_xml:
        return "json"
    if body_format is None and _media(request.headers.get("content-type")) in XML_TYPES:
        # An error answered before the body was read still speaks the request's own format.
        return "xml"
    return body_format or "json"


def decode(body: bytes, body_format: str, most_items: int | None = None) -> Any:
    """The body as JSON-shaped data; `most_items`: how many items (children of the XML root) it
    may hold, refused while parsing. A JSON body is parsed whole (its size is bounded), and its
    items are counted by the caller."""
    if body_format == "xml":
        try:
            return xml.parse(body, most_items)
        except xml.TooManyItems as exc:
            raise ApiError(Code.INVALID_INPUT, detail=too_many_items(most_items or 0)) from exc
        except xml.XmlBodyError as exc:
            raise ApiError(Code.INVALID_INPUT, detail=str(exc)) from exc
    if most_items is not None:
        _refuse_more_values_than(body, most_items)
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(Code.INVALID_INPUT, detail=f"malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from exc


# What `most` items can hold at the most, generously: an item is an object of some twenty fields,
# with lists of fields and channels, so a handful of objects and a few dozen commas each. Parsing
# a body costs for every value in it (250,000 empty objects in 750 KB: 19 ms of the worker's loop,
# and 30 MB): a body with far more values than its items can hold is refused before it is parsed.
OBJECTS_PER_ITEM = 64
VALUES_PER_ITEM = 256


def _refuse_more_values_than(body: bytes, most: int) -> None:
    """Refuse, from counts of its bytes (fractions of a millisecond), a JSON body with more objects
    or more values (commas, an upper bound) than `most` items can hold; braces and commas inside
    strings count too, which only ever overstates a body that is far inside these bounds."""
    if body.count(b"{") > OBJECTS_PER_ITEM * most or body.count(b",") > VALUES_PER_ITEM * most:
        raise ApiError(
            Code.INVALID_INPUT,
            detail=f"the body holds more values than {most} items can (more than {OBJECTS_PER_ITEM} objects or"
            f" {VALUES_PER_ITEM} values an item): send at most BATCH_LIMIT items at a time",
        )


def too_many_items(most: int) -> str:
    return f"more than {most} items in one request: send at most BATCH_LIMIT items at a time"


def encode(document: Mapping[str, Any], response_format_: str, status_code: int, headers: dict[str, str] | None = None) -> Response:
    if response_format_ == "xml":
        return Response(xml.render(document), status_code, headers, media_type="application/xml")
    return Response(orjson.dumps(document), status_code, headers, media_type="application/json")


def status_block(code: Code, total: int | None = None, success_count: int | None = None) -> answers.RequestStatus:
    block: answers.RequestStatus = {
        "success": "true" if code in (Code.SUCCESS, Code.PARTIAL_SUCCESS) else "false",
        "code": int(code),
        "message": request_message(code),
    }
    if total is not None:
        block["total"] = str(total)
        block["success_count"] = str(success_count or 0)
    return block


@overload
def customers_document(
    code: Code, items: list[answers.AddedCustomer | answers.FailedItem], successes: int
) -> answers.AddResponse: ...
@overload
def customers_document(
    code: Code, items: list[answers.RetrievedCustomer | answers.MissingCustomer], successes: int
) -> answers.GetResponse: ...
@overload
def customers_document(code: Code, items: list[answers.IdentityChangeItem], successes: int) -> answers.IdentityResponse: ...
def customers_document(code: Code, items: Sequence[Mapping[str, Any]], successes: int) -> Mapping[str, Any]:
    """The answer of customer/add, get, update and update_identity: the batch's status, then each
    customer's item."""
    return {"response": {"status": status_block(code, len(items), successes), "customers": {"customer": items}}}


def search_document(
    count: int, capped: bool, start: int, rows: int, items: list[answers.FoundCustomer]
) -> answers.SearchResponse:
    """The answer of customer/search: the request's status, then the page of customers found."""
    return {
        "response": {
            "status": status_block(Code.SUCCESS),
            "customer": {
                "count": count, "count_capped": capped, "start": start, "rows": rows, "results": {"item": items}
            },
        }
    }


def error_document(error: ApiError) -> answers.ErrorResponse:
    status = status_block(error.code)
    if error.detail:
        status["detail"] = error.detail
    return {"response": {"status": status}}
