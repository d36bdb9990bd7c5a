"""POST /v1.1/customer/add, GET /v1.1/customer/get, POST /v1.1/customer/update and /update_identity."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from patron import limits
from patron.api.codec import (
    customers_document,
    decode,
    encode,
    format_param,
    request_format,
    response_format,
    too_many_items,
)
from patron.api.context import authorized, read_body, request_id, services, utc_now
from patron.api.present import added_item, identity_item, missing_item, retrieved_item, updated_item
from patron.codes import Code
from patron.customers import fields
from patron.customers.identity_review import IdentityOutcome, request_changes
from patron.customers.lookup import LOOKUP_KEYS, Looked, LookupRefused, look_up
from patron.customers.model import Caller
from patron.customers.registration import ItemResult, batch_code, batch_status, register
from patron.errors import ApiError
from patron.observability.outcome import ItemOutcome
from patron.observability.record import record_of

USER_CONTEXT_HEADERS = {
    "entity_type": "user-context-entity-type",
    "entity_id": "user-context-entity-id",
    "entity_source": "user-context-entity-source",
    "entity_source_id": "user-context-entity-source-id",
}
# Items past BATCH_LIMIT fail one by one with 1060, as the spec says; a request with many times
# more is no batch a till sends, and answering each of its items would cost the server far more
# than the request cost its sender: it is refused whole (400) instead.
MOST_ITEMS_PER_BATCH_LIMIT = 10


async def add_customer(request: Request) -> Response:
    caller, items, body_format = await _write_request(request)
    results = await register(items, caller, services(request).storage, utc_now())
    return _registered(request, results, [added_item(result, caller.org) for result in results], body_format)


async def get_customer(request: Request) -> Response:
    app = services(request)
    principal = await authorized(request, "customer", "read")
    format_param(request)
    _query_flag(request, "user_id")
    asked = [key for key in LOOKUP_KEYS if request.query_params.get(key, "").strip()]
    if len(asked) != 1:
        raise ApiError(Code.INVALID_INPUT, detail="give exactly one of mobile, email, external_id, id")
    (key,) = asked
    values = [value.strip() for value in request.query_params[key].split(",") if value.strip()]
    org = principal.org
    try:
        looked = await look_up(org, key, values, app.storage)
    except LookupRefused as refused:
        raise ApiError(Code.INVALID_INPUT, detail=str(refused)) from refused
    items = [
        retrieved_item(one.customer, one.memberships, org) if one.customer else missing_item(key, one.asked)
        for one in looked
    ]
    record_of(request.scope).items = [_looked_outcome(key, one) for one in looked]
    found = sum(one.customer is not None for one in looked)
    code = batch_code(found, len(looked))
    return encode(customers_document(code, items, found), response_format(request), int(code))


async def update_customer(request: Request) -> Response:
    """customer/update (member-care.md §1): one customer, the add path's update, never a new one."""
    caller, items, body_format = await _write_request(request)
    # One customer: each item past the first fails with 1060, as a batch past its limit does.
    results = await register(items, caller, services(request).storage, utc_now(), batch_limit=1, updating=True)
    return _registered(request, results, [updated_item(result, caller.org) for result in results], body_format)


async def update_identity(request: Request) -> Response:
    """customer/update_identity (member-care.md §2): identifier changes, applied or queued for review."""
    caller, items, body_format = await _write_request(request)
    outcomes = await request_changes(items, caller, services(request).storage, utc_now())
    code = batch_code(sum(outcome.success for outcome in outcomes), len(outcomes))
    record_of(request.scope).items = [_identity_outcome(outcome) for outcome in outcomes]
    answered = [identity_item(outcome) for outcome in outcomes]
    body = customers_document(code, answered, sum(outcome.success for outcome in outcomes))
    return encode(body, response_format(request, body_format), int(code))


def _registered(request: Request, results: list[ItemResult], answered: list[Any], body_format: str) -> Response:
    """The answer of add or update: the batch's status around each item's answer, as the
    request line and the metrics count them."""
    code = batch_status(results)
    record_of(request.scope).items = [_added_outcome(result) for result in results]
    body = customers_document(code, answered, sum(result.success for result in results))
    return encode(body, response_format(request, body_format), int(code))


async def _write_request(request: Request) -> tuple[Caller, list[Any], str]:
    """What add, update and update_identity read alike: the caller (customer write) with its
    user-context headers, the body's format and its items."""
    app = services(request)
    principal = await authorized(request, "customer", "write")
    body_format = request_format(request)
    # mlp_single_enroll=true: a customer who joins (registered, or converted by an update) joins
    # every programme; update_identity enrols no one and reads it only as a flag.
    all_programmes = _query_flag(request, "mlp_single_enroll")
    _query_flag(request, "user_id")
    most_items = MOST_ITEMS_PER_BATCH_LIMIT * principal.org.configs.BATCH_LIMIT
    document = decode(await read_body(request, app.settings.max_body_bytes), body_format, most_items)
    items = _customer_items(document, most_items)
    caller = Caller(
        org=principal.org,
        till_code=principal.till_code,
        api_client_key=principal.api_client_key,
        request_id=request_id(request),
        user_context=_user_context(request),
        all_programmes=all_programmes,
    )
    return caller, items, body_format


def _identity_outcome(outcome: IdentityOutcome) -> ItemOutcome:
    """An item of update_identity as the request line and the metrics count it (no identifier:
    the old and new values are not the customer's mobile and email as the line means them)."""
    code = Code.ITEM_OK if outcome.success else outcome.code
    return ItemOutcome(code, (), outcome.customer_id)


def _added_outcome(result: ItemResult) -> ItemOutcome:
    """An item of add as the request line and the metrics count it."""
    customer = result.customer
    if result.success and customer is not None:
        return ItemOutcome(Code.ITEM_OK, tuple(result.warnings.codes), customer.id, customer.mobile, customer.email)
    sent = result.sent
    return ItemOutcome(
        result.code, (), customer.id if customer else None, _shown(sent.get("mobile")), _shown(sent.get("email"))
    )


def _looked_outcome(key: str, one: Looked) -> ItemOutcome:
    """An item of get as the request line and the metrics count it."""
    if one.customer is None:
        return ItemOutcome(Code.CUSTOMER_NOT_FOUND, mobile=one.asked if key == "mobile" else None,
                           email=one.asked if key == "email" else None)
    return ItemOutcome(Code.ITEM_OK, (), one.customer.id, one.customer.mobile, one.customer.email)


def _shown(value: Any) -> str | None:
    """An identifier as a failed item echoes it (a number as its digits), for the request line."""
    if isinstance(value, bool) or value is None:
        return None
    return str(value) if isinstance(value, (str, int)) else None


def _customer_items(document: Any, most: int) -> list[Any]:
    root = document.get("root") if isinstance(document, dict) else None
    items = root.get("customer") if isinstance(root, dict) else None
    if isinstance(items, dict):
        return [items]
    if isinstance(items, list) and len(items) > most:
        raise ApiError(Code.INVALID_INPUT, detail=too_many_items(most))
    if isinstance(items, list) and items:
        return items
    raise ApiError(Code.INVALID_INPUT, detail="the body must hold root.customer: one customer or a list of them")


def _user_context(request: Request) -> dict[str, str | None]:
    """The four user-context headers, as sent: UTF-8 text (Latin-1 when it is not), at most limits.USER_CONTEXT characters."""
    raw = {name.decode("latin-1").lower(): value for name, value in request.scope["headers"]}
    context = {}
    for key, header in USER_CONTEXT_HEADERS.items():
        sent = raw.get(header)
        value = _header_text(sent) if sent is not None else None
        if value is not None and "\x00" in value:
            raise ApiError(Code.INVALID_INPUT, detail=f"{header.upper()} holds a NUL character")
        if value is not None and len(value) > limits.USER_CONTEXT:
            raise ApiError(Code.INVALID_INPUT, detail=f"{header.upper()} is longer than {limits.USER_CONTEXT} characters")
        context[key] = value
    return context


def _header_text(value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


def _query_flag(request: Request, name: str) -> bool:
    value = request.query_params.get(name)
    if value is None:
        return False
    flag = fields.boolean(value)
    if flag is None:
        raise ApiError(Code.INVALID_INPUT, detail=f"{name} must be true or false")
    return flag
