"""A small typed Python client of Patron's HTTP API, sync and async, on httpx (the `client` extra).

Each operation is written once, as a flow: a generator that yields the HTTP requests it needs
(a token first, a retry after a refused token) and returns the typed result. `PatronClient` runs
flows on `httpx.Client`, `AsyncPatronClient` on `httpx.AsyncClient`; nothing else differs.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import inspect
import time
from collections.abc import Callable, Coroutine, Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Concatenate, Generic, ParamSpec, Self, TypeVar, overload

from typing_extensions import TypedDict, Unpack

import httpx

from patron.codes import Code

ADD_PATH = "/v1.1/customer/add"
GET_PATH = "/v1.1/customer/get"
UPDATE_PATH = "/v1.1/customer/update"
UPDATE_IDENTITY_PATH = "/v1.1/customer/update_identity"
SEARCH_PATH = "/v1.1/customer/search"
EVENTS_PATH = "/v1.1/events"
TOKEN_PATH = "/v3/oauth/token/generate"
AUDITS_PATH = "/api_gateway/v2/audits"
TOKEN_HEADER = "X-CAP-API-OAUTH-TOKEN"
ATTRIBUTION_TYPE_HEADER = "X-CAP-API-ATTRIBUTION-ENTITY-TYPE"
ATTRIBUTION_CODE_HEADER = "X-CAP-API-ATTRIBUTION-ENTITY-CODE"
REQUEST_ID_HEADER = "X-Cap-Requestid"
LOOKUP_KEYS = ("mobile", "email", "external_id", "id")
# A token is renewed this long before it expires, so that a request never races its expiry.
TOKEN_RENEWAL_MARGIN_SECONDS = 30.0
# Answers after which a fresh token may help: the token was refused or had expired.
TOKEN_REFUSALS = (int(Code.AUTHENTICATION_FAILED), int(Code.TOKEN_EXPIRED))
BATCH_OUTCOMES = (int(Code.SUCCESS), int(Code.PARTIAL_SUCCESS), int(Code.ALL_FAILED))

T = TypeVar("T")
P = ParamSpec("P")


class PatronError(Exception):
    """A request-level failure: the whole request was refused (401, 403, 4xx, 498, 503, ...)."""

    def __init__(
        self,
        code: int,
        message: str,
        *,
        http_status: int,
        detail: str | None = None,
        request_id: str | None = None,
        raw: Any = None,
    ) -> None:
        super().__init__(f"{code} {message}" + (f": {detail}" if detail else ""))
        self.code = code
        self.message = message
        self.http_status = http_status
        self.detail = detail
        self.request_id = request_id
        self.raw = raw


# --- Results ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ItemStatus:
    success: bool
    code: int
    message: str
    warnings: tuple[int, ...]

    @classmethod
    def from_raw(cls, raw: Mapping[str, Any]) -> ItemStatus:
        warnings = (raw.get("warnings") or {}).get("warning") or []
        return cls(
            success=raw.get("success") == "true",
            code=int(raw["code"]),
            message=raw.get("message", ""),
            warnings=tuple(int(code) for code in warnings),
        )


def _text_or_none(raw: Mapping[str, Any], name: str) -> str | None:
    value = raw.get(name)
    return None if value is None else str(value)


@dataclass(frozen=True)
class CustomerItem:
    """One item of a batch answer: its outcome and, when there is one, the customer."""

    status: ItemStatus
    user_id: int | None
    mobile: str | None
    email: str | None
    external_id: str | None
    raw: dict[str, Any]

    @classmethod
    def from_raw(cls, raw: dict[str, Any]) -> CustomerItem:
        return cls(
            status=ItemStatus.from_raw(raw["item_status"]),
            user_id=raw.get("user_id"),
            mobile=_text_or_none(raw, "mobile"),
            email=_text_or_none(raw, "email"),
            external_id=_text_or_none(raw, "external_id"),
            raw=raw,
        )

    @property
    def success(self) -> bool:
        return self.status.success


@dataclass(frozen=True)
class IdentityChange:
    """One item of customer/update_identity's answer: 1040 waiting for review, 1000 applied at
    once (`updated`), or an error; the values as stored on success, as sent on failure."""

    status: ItemStatus
    user_id: int | None
    identifier: str | None
    old_value: str | None
    new_value: str | None
    updated: bool
    raw: dict[str, Any]

    @classmethod
    def from_raw(cls, raw: dict[str, Any]) -> IdentityChange:
        return cls(
            status=ItemStatus.from_raw(raw["item_status"]),
            user_id=raw.get("user_id"),
            identifier=_text_or_none(raw, "identifier"),
            old_value=_text_or_none(raw, "old_value"),
            new_value=_text_or_none(raw, "new_value"),
            updated=raw.get("updated") == "true",
            raw=raw,
        )

    @property
    def success(self) -> bool:
        return self.status.success

    @property
    def waiting_for_review(self) -> bool:
        return self.status.code == Code.IDENTITY_CHANGE_REQUESTED


Item = TypeVar("Item", CustomerItem, IdentityChange)


@dataclass(frozen=True)
class _Batch(Generic[Item]):
    """The envelope of the batch answers: the request-level outcome and one item per item sent."""

    code: int
    message: str
    success: bool
    total: int
    success_count: int
    items: tuple[Item, ...]
    request_id: str | None
    raw: dict[str, Any]

    @property
    def all_succeeded(self) -> bool:
        return self.code == Code.SUCCESS


def _batch_fields(raw: dict[str, Any], request_id: str | None) -> dict[str, Any]:
    status = raw["response"]["status"]
    return {
        "code": int(status["code"]),
        "message": status["message"],
        "success": status["success"] == "true",
        "total": int(status.get("total", 0)),
        "success_count": int(status.get("success_count", 0)),
        "request_id": request_id,
        "raw": raw,
    }


class BatchResult(_Batch[CustomerItem]):
    """The envelope of customer/add, get and update: one CustomerItem per customer."""

    @classmethod
    def from_raw(cls, raw: dict[str, Any], request_id: str | None) -> Self:
        items = tuple(CustomerItem.from_raw(entry) for entry in raw["response"]["customers"]["customer"])
        return cls(items=items, **_batch_fields(raw, request_id))


class AddResult(BatchResult):
    """What customer/add answered."""


class GetResult(BatchResult):
    """What customer/get answered."""


class UpdateResult(BatchResult):
    """What customer/update answered: its one item is the customer as stored now."""


class IdentityResult(_Batch[IdentityChange]):
    """What customer/update_identity answered: one IdentityChange per change sent."""

    @classmethod
    def from_raw(cls, raw: dict[str, Any], request_id: str | None) -> Self:
        items = tuple(IdentityChange.from_raw(entry) for entry in raw["response"]["customers"]["customer"])
        return cls(items=items, **_batch_fields(raw, request_id))


@dataclass(frozen=True)
class FoundCustomer:
    """A customer a search found; points and slab of the default programme."""

    user_id: int
    firstname: str
    lastname: str
    mobile: str | None
    email: str | None
    external_id: str | None
    loyalty_points: int
    lifetime_points: int
    current_slab: str | None
    registered_on: str
    registered_by: str | None
    attributes: dict[str, str]
    raw: dict[str, Any]

    @classmethod
    def from_raw(cls, raw: dict[str, Any]) -> FoundCustomer:
        return cls(
            user_id=int(raw["user_id"]),
            firstname=raw.get("firstname") or "",
            lastname=raw.get("lastname") or "",
            mobile=_text_or_none(raw, "mobile"),
            email=_text_or_none(raw, "email"),
            external_id=_text_or_none(raw, "external_id"),
            loyalty_points=int(raw.get("loyalty_points") or 0),
            lifetime_points=int(raw.get("lifetime_points") or 0),
            current_slab=raw.get("current_slab"),
            registered_on=raw.get("registered_on", ""),
            registered_by=raw.get("registered_by"),
            attributes={entry["name"]: entry["value"] for entry in _listed(raw.get("attributes"), "attribute")},
            raw=raw,
        )


@dataclass(frozen=True)
class SearchResult:
    """A page of customer/search: `count` every match (up to the cap; `count_capped` beyond it),
    `customers` this page's, newest registration first."""

    count: int
    count_capped: bool
    start: int
    rows: int
    customers: tuple[FoundCustomer, ...]
    request_id: str | None
    raw: dict[str, Any]

    @classmethod
    def from_raw(cls, raw: dict[str, Any], request_id: str | None) -> SearchResult:
        page = raw["response"]["customer"]
        return cls(
            count=int(page["count"]),
            count_capped=bool(page["count_capped"]),
            start=int(page["start"]),
            rows=int(page["rows"]),
            customers=tuple(FoundCustomer.from_raw(entry) for entry in _listed(page.get("results"), "item")),
            request_id=request_id,
            raw=raw,
        )

    @property
    def next_start(self) -> int | None:
        """Where the next page starts, or None when this one is the last."""
        following = self.start + len(self.customers)
        return following if self.customers and following < self.count else None


@dataclass(frozen=True)
class Event:
    """An event of the feed: the same document a webhook or broker sink receives (docs/events.md)."""

    event_id: str
    name: str
    org_id: int
    ref_id: str
    customer_id: int | None
    api_request_id: str | None
    console_user: str | None
    source: str | None
    created_at: int
    sequence: int
    data: dict[str, Any]
    raw: dict[str, Any]

    @classmethod
    def from_raw(cls, raw: dict[str, Any]) -> Event:
        data = raw.get("data") or {}
        customer_id = (data.get("customerIdentifiers") or {}).get("customerId")
        return cls(
            event_id=raw["eventId"],
            name=raw["eventName"],
            org_id=int(raw["orgId"]),
            ref_id=raw["refId"],
            customer_id=None if customer_id is None else int(customer_id),
            api_request_id=raw.get("apiRequestId"),
            console_user=raw.get("consoleUser"),
            source=raw.get("source"),
            created_at=int(raw["createdAt"]),
            sequence=int(raw["sequence"]),
            data=data,
            raw=raw,
        )


@dataclass(frozen=True)
class EventPage:
    """A page of the feed, oldest first; pass `next` as `after` to read on (an empty page keeps
    its cursor: read again later for what comes)."""

    events: tuple[Event, ...]
    next: str
    request_id: str | None


@dataclass(frozen=True)
class AuditEvent:
    event_type: str
    field: str
    previous: Any
    current: Any


@dataclass(frozen=True)
class AuditRecord:
    request_id: str
    created_on: str
    till: str | None
    api_client: str | None
    user_context: dict[str, Any] | None
    events: tuple[AuditEvent, ...]
    raw: dict[str, Any]

    @classmethod
    def from_raw(cls, raw: dict[str, Any]) -> AuditRecord:
        return cls(
            request_id=raw["requestId"],
            created_on=raw["createdOn"],
            till=raw.get("till"),
            api_client=raw.get("apiClient"),
            user_context=raw.get("userContextDetails"),
            events=tuple(
                AuditEvent(
                    event_type=event["eventType"],
                    field=event["updatedField"],
                    previous=event["additionalFields"]["previousValue"],
                    current=event["additionalFields"]["currentValue"],
                )
                for event in raw.get("events", [])
            ),
            raw=raw,
        )


def password_md5(password: str) -> str:
    """What a till sends as its Basic-auth password: the lower-case MD5 hex of the password."""
    return hashlib.md5(password.encode("utf-8")).hexdigest()


# --- The protocol, without I/O ------------------------------------------------------------------


@dataclass(frozen=True)
class _Call:
    method: str
    path: str
    params: dict[str, str]
    json: Any = None
    headers: dict[str, str] | None = None


# A flow yields the calls it needs, is sent each one's response, and returns its result.
Flow = Generator[_Call, httpx.Response, T]


class _Session:
    """Credentials and the token: how every call is authorized, for both clients."""

    def __init__(
        self,
        *,
        till: str | None,
        password: str | None,
        password_md5_hex: str | None,
        api_key: str | None,
        api_secret: str | None,
        attribution_till: str | None,
    ) -> None:
        as_till = till is not None
        as_api_client = api_key is not None
        if as_till == as_api_client:
            raise ValueError("give either till=... with password= or password_md5=, or api_key=... with api_secret=...")
        self.basic: str | None = None
        if as_till:
            if (password is None) == (password_md5_hex is None):
                raise ValueError("give exactly one of password, password_md5")
            digest = password_md5(password) if password is not None else _md5_hex(password_md5_hex or "")
            self.basic = "Basic " + base64.b64encode(f"{till}:{digest}".encode()).decode()
        elif api_secret is None:
            raise ValueError("api_key needs api_secret")
        self.api_key = api_key
        self.api_secret = api_secret
        self.attribution_till = attribution_till
        self.token: str | None = None
        self.token_renews_at = 0.0

    @property
    def uses_token(self) -> bool:
        return self.basic is None

    def send(self, call: _Call) -> Flow[httpx.Response]:
        """The call, authorized: with a token fetched first when one is needed, and, when Patron
        refuses the token (its secret key rotated, the clock moved), one fresh token and one retry."""
        if self.uses_token and (self.token is None or time.monotonic() >= self.token_renews_at):
            yield from self._renew_token()
        response = yield self._authorized(call)
        if self.uses_token and response.status_code in TOKEN_REFUSALS:
            yield from self._renew_token()
            response = yield self._authorized(call)
        return response

    def _renew_token(self) -> Flow[None]:
        self.token = None
        response = yield _Call("POST", TOKEN_PATH, {}, {"key": self.api_key, "secret": self.api_secret})
        body = _json(response)
        if response.status_code != 200 or not isinstance(body, dict) or not body.get("data"):
            raise _gateway_error(response, body)
        self.token = body["data"]["accessToken"]
        ttl = float(body["data"]["ttlSeconds"])
        self.token_renews_at = time.monotonic() + max(ttl - TOKEN_RENEWAL_MARGIN_SECONDS, ttl / 2)

    def _authorized(self, call: _Call) -> _Call:
        if self.basic is not None:
            auth = {"Authorization": self.basic}
        else:
            auth = {TOKEN_HEADER: self.token or ""}
            if self.attribution_till:
                auth[ATTRIBUTION_TYPE_HEADER] = "TILL"
                auth[ATTRIBUTION_CODE_HEADER] = self.attribution_till
        return _Call(call.method, call.path, call.params, call.json, {**auth, **(call.headers or {})})


# The operations, each once. The first parameter is the session; the rest are the method's.


def _add(
    session: _Session,
    customers: Sequence[Mapping[str, Any]] | Mapping[str, Any],
    *,
    headers: Mapping[str, str] | None = None,
    **query: Any,
) -> Flow[AddResult]:
    """Register or update customers (customer/add); `headers` may carry the USER-CONTEXT-* audit
    headers, `query` the API's flags (`mlp_single_enroll=True`). Item failures are in the result."""
    batch = [dict(customers)] if isinstance(customers, Mapping) else [dict(c) for c in customers]
    if not batch:
        raise ValueError("add needs at least one customer")
    call = _Call("POST", ADD_PATH, _query(query), {"root": {"customer": batch}}, dict(headers or {}))
    return _batch(AddResult, (yield from session.send(call)))


def _get(
    session: _Session,
    *,
    mobile: str | Sequence[str] | None = None,
    email: str | Sequence[str] | None = None,
    external_id: str | Sequence[str] | None = None,
    id: int | Sequence[int] | None = None,  # noqa: A002 - the API's own name for the user_id
    **query: Any,
) -> Flow[GetResult]:
    """Look customers up (customer/get) by exactly one kind of identifier, one value or several."""
    given = {
        key: value
        for key, value in {"mobile": mobile, "email": email, "external_id": external_id, "id": id}.items()
        if value is not None
    }
    if len(given) != 1:
        raise ValueError(f"give exactly one of {', '.join(LOOKUP_KEYS)}")
    ((key, value),) = given.items()
    values = [value] if isinstance(value, (str, int)) else list(value)
    call = _Call("GET", GET_PATH, {key: ",".join(str(v) for v in values), **_query(query)})
    return _batch(GetResult, (yield from session.send(call)))


def _update(
    session: _Session,
    customer: Mapping[str, Any],
    *,
    headers: Mapping[str, str] | None = None,
    **query: Any,
) -> Flow[UpdateResult]:
    """Change one existing customer (customer/update), named by any of its identifiers; never
    registers one (item code 1012 when no customer matches)."""
    if not isinstance(customer, Mapping):
        raise TypeError("update changes one customer: give one mapping")
    call = _Call("POST", UPDATE_PATH, _query(query), {"root": {"customer": [dict(customer)]}}, dict(headers or {}))
    return _batch(UpdateResult, (yield from session.send(call)))


def _update_identity(
    session: _Session,
    changes: Sequence[Mapping[str, Any]] | Mapping[str, Any],
    *,
    headers: Mapping[str, str] | None = None,
) -> Flow[IdentityResult]:
    """Ask to change identifiers (customer/update_identity): each change names `identifier`
    (mobile, email, external_id), `old_value` and `new_value`; it waits for review (1040) or,
    where the org approves at once, is applied (1000, `updated`)."""
    batch = [dict(changes)] if isinstance(changes, Mapping) else [dict(c) for c in changes]
    if not batch:
        raise ValueError("update_identity needs at least one change")
    call = _Call("POST", UPDATE_IDENTITY_PATH, {}, {"root": {"customer": batch}}, dict(headers or {}))
    return _batch(IdentityResult, (yield from session.send(call)))


def _search(
    session: _Session,
    q: str | Sequence[str],
    *,
    start: int | None = None,
    rows: int | None = None,
) -> Flow[SearchResult]:
    """Find customers (customer/search) meeting every condition, `ATTRIBUTE:OPERATOR:VALUE`
    (docs/member-care.md); give one string with the conditions joined by `&`, or a list of them."""
    conditions = q if isinstance(q, str) else "&".join(q)
    params = {"q": conditions, **_query({"start": start, "rows": rows})}
    response = yield from session.send(_Call("GET", SEARCH_PATH, params))
    body = _json(response)
    if response.status_code == 200 and isinstance(body, dict) and "customer" in (body.get("response") or {}):
        return SearchResult.from_raw(body, response.headers.get(REQUEST_ID_HEADER))
    raise _request_error(response, body)


def _events(session: _Session, *, after: str | None = None, limit: int | None = None) -> Flow[EventPage]:
    """A page of the org's event feed (GET /v1.1/events), oldest first: from the oldest event kept,
    or after the cursor `after` (an earlier page's `next`); at most `limit` (1 to 1000) events."""
    params = _query({"after": after, "limit": limit})
    response = yield from session.send(_Call("GET", EVENTS_PATH, params))
    body = _json(response)
    if response.status_code == 200 and isinstance(body, dict) and isinstance(body.get("events"), list):
        return EventPage(
            events=tuple(Event.from_raw(event) for event in body["events"]),
            next=body["next"],
            request_id=response.headers.get(REQUEST_ID_HEADER),
        )
    raise _request_error(response, body)


def _audits(session: _Session, user_id: int, *, include_user_context: bool = True) -> Flow[list[AuditRecord]]:
    """A customer's audit trail (/api_gateway/v2/audits), oldest first."""
    params = {"entityType": "CUSTOMER", "entityId": str(user_id), "includeUserContext": _flag(include_user_context)}
    response = yield from session.send(_Call("GET", AUDITS_PATH, params))
    body = _json(response)
    if response.status_code != 200 or not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise _gateway_error(response, body)
    return [AuditRecord.from_raw(record) for record in body["data"]]


Batch = TypeVar("Batch", AddResult, GetResult, UpdateResult, IdentityResult)


def _batch(result_type: type[Batch], response: httpx.Response) -> Batch:
    body = _json(response)
    response_block = body.get("response") if isinstance(body, dict) else None
    if response.status_code in BATCH_OUTCOMES and isinstance(response_block, dict) and "customers" in response_block:
        return result_type.from_raw(body, response.headers.get(REQUEST_ID_HEADER))
    raise _request_error(response, body)


def _md5_hex(value: str) -> str:
    digest = value.strip().lower()
    if len(digest) != 32 or any(c not in "0123456789abcdef" for c in digest):
        raise ValueError("password_md5 must be an MD5 digest: 32 hexadecimal digits")
    return digest


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _listed(value: Any, key: str) -> list[Any]:
    """A list of the answers' wrapped shape (`{"item": [...]}`), empty when absent."""
    inner = value.get(key) if isinstance(value, dict) else None
    return inner if isinstance(inner, list) else []


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _query(query: Mapping[str, Any]) -> dict[str, str]:
    return {
        key: _flag(value) if isinstance(value, bool) else str(value) for key, value in query.items() if value is not None
    }


def _unreadable(response: httpx.Response) -> PatronError:
    return PatronError(
        response.status_code,
        f"unreadable answer ({response.headers.get('content-type', 'no content type')})",
        http_status=response.status_code,
        request_id=response.headers.get(REQUEST_ID_HEADER),
        raw=response.text,
    )


def _request_error(response: httpx.Response, body: Any) -> PatronError:
    """A v1.1 refusal: the status block of the envelope, with its detail."""
    response_block = body.get("response") if isinstance(body, dict) else None
    status = response_block.get("status") if isinstance(response_block, dict) else None
    if not isinstance(status, dict):
        return _unreadable(response)
    return PatronError(
        int(status.get("code", response.status_code)),
        status.get("message", ""),
        http_status=response.status_code,
        detail=status.get("detail"),
        request_id=response.headers.get(REQUEST_ID_HEADER),
        raw=body,
    )


def _gateway_error(response: httpx.Response, body: Any) -> PatronError:
    errors = body.get("errors") if isinstance(body, dict) else None
    if not errors:
        return _unreadable(response)
    first = errors[0]
    return PatronError(
        int(first.get("code", response.status_code)),
        first.get("message", ""),
        http_status=response.status_code,
        request_id=response.headers.get(REQUEST_ID_HEADER),
        raw=body,
    )


# --- The two clients: one set of operations, two ways to run a flow -----------------------------


class _Operation(Generic[P, T]):
    """An operation as a method of both clients: on a PatronClient it returns the result, on an
    AsyncPatronClient a coroutine of it; the signature and docstring are the flow's."""

    def __init__(self, flow: Callable[Concatenate[_Session, P], Flow[T]]) -> None:
        self.flow = flow
        self.__doc__ = flow.__doc__
        # What help() shows: the flow's parameters after the session (the result is the flow's
        # return value, or for the async client a coroutine of it).
        signature = inspect.signature(flow)
        self.signature = signature.replace(
            parameters=list(signature.parameters.values())[1:], return_annotation=inspect.Signature.empty
        )

    @overload
    def __get__(self, client: None, owner: type[Any]) -> _Operation[P, T]: ...
    @overload
    def __get__(self, client: PatronClient, owner: type[Any]) -> Callable[P, T]: ...
    @overload
    def __get__(self, client: AsyncPatronClient, owner: type[Any]) -> Callable[P, Coroutine[Any, Any, T]]: ...

    def __get__(self, client: _Client | None, owner: type[Any]) -> Any:
        if client is None:
            return self
        flow = self.flow

        @functools.wraps(flow)
        def operation(*args: P.args, **kwargs: P.kwargs) -> Any:
            return client._run(flow(client._session, *args, **kwargs))

        operation.__name__ = operation.__qualname__ = flow.__name__.lstrip("_")
        operation.__signature__ = self.signature  # type: ignore[attr-defined]
        return operation


class Credentials(TypedDict, total=False):
    """Who calls: a till (`till` with `password` or its `password_md5`), or an API client (`api_key`
    and `api_secret`, with `attribution_till` naming the till it registers for)."""

    till: str | None
    password: str | None
    password_md5: str | None
    api_key: str | None
    api_secret: str | None
    attribution_till: str | None


class _Client:
    add = _Operation(_add)
    get = _Operation(_get)
    update = _Operation(_update)
    update_identity = _Operation(_update_identity)
    search = _Operation(_search)
    events = _Operation(_events)
    audits = _Operation(_audits)

    def __init__(self, **credentials: Unpack[Credentials]) -> None:
        unknown = sorted(set(credentials) - set(Credentials.__annotations__))
        if unknown:
            raise TypeError(f"unexpected keyword arguments: {', '.join(unknown)}")
        self._session = _Session(
            till=credentials.get("till"),
            password=credentials.get("password"),
            password_md5_hex=credentials.get("password_md5"),
            api_key=credentials.get("api_key"),
            api_secret=credentials.get("api_secret"),
            attribution_till=credentials.get("attribution_till"),
        )

    def _run(self, flow: Flow[Any]) -> Any:
        raise NotImplementedError


@dataclass(frozen=True)
class _Done(Generic[T]):
    value: T


def _step(flow: Flow[T], answer: httpx.Response | None) -> _Call | _Done[T]:
    """What a flow asks next, given the answer to its last call (None to start it), or its result:
    the one driver of the blocking client and the asyncio one alike."""
    try:
        return next(flow) if answer is None else flow.send(answer)
    except StopIteration as finished:
        return _Done(finished.value)


def _request_of(call: _Call) -> dict[str, Any]:
    return {"method": call.method, "url": call.path, "params": call.params, "json": call.json, "headers": call.headers}


class PatronClient(_Client):
    """A blocking client. Use as a context manager, or call close().

    >>> with PatronClient("http://127.0.0.1:8000", till="store123", password="Pass123") as patron:
    ...     result = patron.add({"mobile": "918123456789", "firstname": "Asha"})
    """

    def __init__(
        self, base_url: str, *, transport: httpx.BaseTransport | None = None, timeout: float = 10.0,
        **credentials: Unpack[Credentials],
    ) -> None:
        super().__init__(**credentials)
        self._http = httpx.Client(base_url=base_url, transport=transport, timeout=timeout)

    def __enter__(self) -> PatronClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _run(self, flow: Flow[T]) -> T:
        step = _step(flow, None)
        while not isinstance(step, _Done):
            step = _step(flow, self._http.request(**_request_of(step)))
        return step.value


class AsyncPatronClient(_Client):
    """The same client for asyncio: the same methods, awaited. Use as an async context manager,
    or await aclose()."""

    def __init__(
        self, base_url: str, *, transport: httpx.AsyncBaseTransport | None = None, timeout: float = 10.0,
        **credentials: Unpack[Credentials],
    ) -> None:
        super().__init__(**credentials)
        self._http = httpx.AsyncClient(base_url=base_url, transport=transport, timeout=timeout)

    async def __aenter__(self) -> AsyncPatronClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _run(self, flow: Flow[T]) -> T:
        step = _step(flow, None)
        while not isinstance(step, _Done):
            step = _step(flow, await self._http.request(**_request_of(step)))
        return step.value
