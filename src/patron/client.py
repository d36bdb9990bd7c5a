"""A small typed Python client of Patron's HTTP API, sync and async, on httpx (the `client` extra)."""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from patron.codes import Code

ADD_PATH = "/v1.1/customer/add"
GET_PATH = "/v1.1/customer/get"
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
        def identifier(name: str) -> str | None:
            value = raw.get(name)
            return None if value is None else str(value)

        return cls(
            status=ItemStatus.from_raw(raw["item_status"]),
            user_id=raw.get("user_id"),
            mobile=identifier("mobile"),
            email=identifier("email"),
            external_id=identifier("external_id"),
            raw=raw,
        )

    @property
    def success(self) -> bool:
        return self.status.success


@dataclass(frozen=True)
class BatchResult:
    """The envelope of customer/add and customer/get: the request-level outcome and one item per customer."""

    code: int
    message: str
    success: bool
    total: int
    success_count: int
    items: tuple[CustomerItem, ...]
    request_id: str | None
    raw: dict[str, Any]

    @classmethod
    def from_raw(cls, raw: dict[str, Any], request_id: str | None) -> BatchResult:
        response = raw["response"]
        status = response["status"]
        return cls(
            code=int(status["code"]),
            message=status["message"],
            success=status["success"] == "true",
            total=int(status.get("total", 0)),
            success_count=int(status.get("success_count", 0)),
            items=tuple(CustomerItem.from_raw(entry) for entry in response["customers"]["customer"]),
            request_id=request_id,
            raw=raw,
        )

    @property
    def all_succeeded(self) -> bool:
        return self.code == Code.SUCCESS


class AddResult(BatchResult):
    """What customer/add answered."""


class GetResult(BatchResult):
    """What customer/get answered."""


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


@dataclass(frozen=True)
class _Call:
    method: str
    path: str
    params: dict[str, str]
    json: Any = None
    headers: dict[str, str] | None = None


class _Protocol:
    """Everything but the I/O: credentials, request shapes and reading answers, shared by both clients."""

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

    def token_needed(self) -> bool:
        return self.uses_token and (self.token is None or time.monotonic() >= self.token_renews_at)

    def token_call(self) -> _Call:
        return _Call("POST", TOKEN_PATH, {}, {"key": self.api_key, "secret": self.api_secret})

    def accept_token(self, response: httpx.Response) -> None:
        body = _json(response)
        if response.status_code != 200 or not isinstance(body, dict) or not body.get("data"):
            raise _gateway_error(response, body)
        self.token = body["data"]["accessToken"]
        ttl = float(body["data"]["ttlSeconds"])
        self.token_renews_at = time.monotonic() + max(ttl - TOKEN_RENEWAL_MARGIN_SECONDS, ttl / 2)

    def forget_token(self) -> None:
        self.token = None

    def auth_headers(self) -> dict[str, str]:
        if self.basic is not None:
            return {"Authorization": self.basic}
        headers = {TOKEN_HEADER: self.token or ""}
        if self.attribution_till:
            headers[ATTRIBUTION_TYPE_HEADER] = "TILL"
            headers[ATTRIBUTION_CODE_HEADER] = self.attribution_till
        return headers

    # The three operations.

    @staticmethod
    def add_call(customers: Sequence[Mapping[str, Any]] | Mapping[str, Any], headers: Mapping[str, str] | None, query: Mapping[str, Any]) -> _Call:
        batch = [dict(customers)] if isinstance(customers, Mapping) else [dict(c) for c in customers]
        if not batch:
            raise ValueError("add needs at least one customer")
        return _Call("POST", ADD_PATH, _query(query), {"root": {"customer": batch}}, dict(headers or {}))

    @staticmethod
    def get_call(lookups: Mapping[str, Any], query: Mapping[str, Any]) -> _Call:
        given = {key: value for key, value in lookups.items() if value is not None}
        if len(given) != 1:
            raise ValueError(f"give exactly one of {', '.join(LOOKUP_KEYS)}")
        ((key, value),) = given.items()
        values = [value] if isinstance(value, (str, int)) else list(value)
        return _Call("GET", GET_PATH, {key: ",".join(str(v) for v in values), **_query(query)})

    @staticmethod
    def audits_call(user_id: int, include_user_context: bool) -> _Call:
        params = {"entityType": "CUSTOMER", "entityId": str(user_id), "includeUserContext": _flag(include_user_context)}
        return _Call("GET", AUDITS_PATH, params)

    @staticmethod
    def batch(response: httpx.Response, result_type: type[BatchResult]) -> Any:
        body = _json(response)
        response_block = body.get("response") if isinstance(body, dict) else None
        if response.status_code in BATCH_OUTCOMES and isinstance(response_block, dict) and "customers" in response_block:
            return result_type.from_raw(body, response.headers.get(REQUEST_ID_HEADER))
        status = response_block.get("status") if isinstance(response_block, dict) else None
        if not isinstance(status, dict):
            raise _unreadable(response)
        raise PatronError(
            int(status.get("code", response.status_code)),
            status.get("message", ""),
            http_status=response.status_code,
            detail=status.get("detail"),
            request_id=response.headers.get(REQUEST_ID_HEADER),
            raw=body,
        )

    @staticmethod
    def audits(response: httpx.Response) -> list[AuditRecord]:
        body = _json(response)
        if response.status_code != 200 or not isinstance(body, dict) or not isinstance(body.get("data"), list):
            raise _gateway_error(response, body)
        return [AuditRecord.from_raw(record) for record in body["data"]]


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


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _query(query: Mapping[str, Any]) -> dict[str, str]:
    return {key: _flag(value) if isinstance(value, bool) else str(value) for key, value in query.items()}


def _unreadable(response: httpx.Response) -> PatronError:
    return PatronError(
        response.status_code,
        f"unreadable answer ({response.headers.get('content-type', 'no content type')})",
        http_status=response.status_code,
        request_id=response.headers.get(REQUEST_ID_HEADER),
        raw=response.text,
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


class PatronClient:
    """A blocking client. Use as a context manager, or call close().

    >>> with PatronClient("http://127.0.0.1:8000", till="store123", password="Pass123") as patron:
    ...     result = patron.add({"mobile": "918123456789", "firstname": "Asha"})
    """

    def __init__(
        self,
        base_url: str,
        *,
        till: str | None = None,
        password: str | None = None,
        password_md5: str | None = None,
        api_key: str | None = None,
        api_secret: str | None = None,
        attribution_till: str | None = None,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 10.0,
    ) -> None:
        self._protocol = _Protocol(
            till=till,
            password=password,
            password_md5_hex=password_md5,
            api_key=api_key,
            api_secret=api_secret,
            attribution_till=attribution_till,
        )
        self._http = httpx.Client(base_url=base_url, transport=transport, timeout=timeout)

    def __enter__(self) -> PatronClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def add(
        self,
        customers: Sequence[Mapping[str, Any]] | Mapping[str, Any],
        *,
        headers: Mapping[str, str] | None = None,
        **query: Any,
    ) -> AddResult:
        """Register or update customers; `headers` may carry the USER-CONTEXT-* audit headers."""
        return self._protocol.batch(self._send(_Protocol.add_call(customers, headers, query)), AddResult)

    def get(
        self,
        *,
        mobile: str | Sequence[str] | None = None,
        email: str | Sequence[str] | None = None,
        external_id: str | Sequence[str] | None = None,
        id: int | Sequence[int] | None = None,  # noqa: A002 - the API's own name for the user_id
        **query: Any,
    ) -> GetResult:
        lookups = {"mobile": mobile, "email": email, "external_id": external_id, "id": id}
        return self._protocol.batch(self._send(_Protocol.get_call(lookups, query)), GetResult)

    def audits(self, user_id: int, *, include_user_context: bool = True) -> list[AuditRecord]:
        return self._protocol.audits(self._send(_Protocol.audits_call(user_id, include_user_context)))

    def _send(self, call: _Call) -> httpx.Response:
        if self._protocol.token_needed():
            self._renew_token()
        response = self._request(call)
        if self._protocol.uses_token and response.status_code in TOKEN_REFUSALS:
            # Patron's secret key may have rotated, or the clock moved: one fresh token, one retry.
            self._renew_token()
            response = self._request(call)
        return response

    def _renew_token(self) -> None:
        token_call = self._protocol.token_call()
        self._protocol.forget_token()
        self._protocol.accept_token(self._http.post(token_call.path, json=token_call.json))

    def _request(self, call: _Call) -> httpx.Response:
        headers = {**self._protocol.auth_headers(), **(call.headers or {})}
        return self._http.request(call.method, call.path, params=call.params, json=call.json, headers=headers)


class AsyncPatronClient:
    """The same client for asyncio. Use as an async context manager, or await aclose()."""

    def __init__(
        self,
        base_url: str,
        *,
        till: str | None = None,
        password: str | None = None,
        password_md5: str | None = None,
        api_key: str | None = None,
        api_secret: str | None = None,
        attribution_till: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 10.0,
    ) -> None:
        self._protocol = _Protocol(
            till=till,
            password=password,
            password_md5_hex=password_md5,
            api_key=api_key,
            api_secret=api_secret,
            attribution_till=attribution_till,
        )
        self._http = httpx.AsyncClient(base_url=base_url, transport=transport, timeout=timeout)

    async def __aenter__(self) -> AsyncPatronClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def add(
        self,
        customers: Sequence[Mapping[str, Any]] | Mapping[str, Any],
        *,
        headers: Mapping[str, str] | None = None,
        **query: Any,
    ) -> AddResult:
        """Register or update customers; `headers` may carry the USER-CONTEXT-* audit headers."""
        return self._protocol.batch(await self._send(_Protocol.add_call(customers, headers, query)), AddResult)

    async def get(
        self,
        *,
        mobile: str | Sequence[str] | None = None,
        email: str | Sequence[str] | None = None,
        external_id: str | Sequence[str] | None = None,
        id: int | Sequence[int] | None = None,  # noqa: A002 - the API's own name for the user_id
        **query: Any,
    ) -> GetResult:
        lookups = {"mobile": mobile, "email": email, "external_id": external_id, "id": id}
        return self._protocol.batch(await self._send(_Protocol.get_call(lookups, query)), GetResult)

    async def audits(self, user_id: int, *, include_user_context: bool = True) -> list[AuditRecord]:
        return self._protocol.audits(await self._send(_Protocol.audits_call(user_id, include_user_context)))

    async def _send(self, call: _Call) -> httpx.Response:
        if self._protocol.token_needed():
            await self._renew_token()
        response = await self._request(call)
        if self._protocol.uses_token and response.status_code in TOKEN_REFUSALS:
            # Patron's secret key may have rotated, or the clock moved: one fresh token, one retry.
            await self._renew_token()
            response = await self._request(call)
        return response

    async def _renew_token(self) -> None:
        token_call = self._protocol.token_call()
        self._protocol.forget_token()
        self._protocol.accept_token(await self._http.post(token_call.path, json=token_call.json))

    async def _request(self, call: _Call) -> httpx.Response:
        headers = {**self._protocol.auth_headers(), **(call.headers or {})}
        return await self._http.request(call.method, call.path, params=call.params, json=call.json, headers=headers)
