"""What every request handler shares: the app's services, the caller, the request's id, its body."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import cast

from starlette.requests import Request

from patron.auth.principals import Principal
from patron.bootstrap import Services
from patron.codes import Code
from patron.errors import ApiError
from patron.observability.record import record_of

# Every answer names its request's id (given by api.app's middleware, kept in the audit log).
REQUEST_ID_HEADER = b"x-cap-requestid"


def services(request: Request) -> Services:
    return cast(Services, request.app.state.services)


async def authorized(request: Request, resource: str, level: str) -> Principal:
    """The caller, authenticated (401), named on the request line, and allowed `level` on
    `resource` by its access group (403)."""
    principal = await services(request).auth.authenticate(request)
    record_of(request.scope).principal = principal
    principal.require(resource, level)
    return principal


def request_id(request: Request) -> str:
    return record_of(request.scope).request_id


def utc_now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refused with 413 as soon as it passes `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(Code.BODY_TOO_LARGE, detail=f"the limit is {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(Code.BODY_TOO_LARGE, detail=f"the limit is {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
