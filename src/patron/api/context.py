"""What every request handler shares: the services of the running app and request-level helpers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request

from patron.api.admission import SearchGate
from patron.api.auth import Authenticator, Principal
from patron.api.errors import ApiError
from patron.codes import Code
from patron.orgs.cache import OrgCache
from patron.settings import Settings
from patron.store.unit import Storage


@dataclass
class Services:
    settings: Settings
    engine: AsyncEngine
    orgs: OrgCache
    auth: Authenticator
    # Customers and loyalty: the store of the database's engine (store.postgres, store.sqlite).
    storage: Storage
    # Searches running in this worker, of the API and the console alike (api.admission).
    searches: SearchGate


def services(request: Request) -> Services:
    return request.app.state.services


async def authorized(request: Request, resource: str, level: str) -> Principal:
    """The caller, authenticated (401), named on the request line, and allowed `level` on
    `resource` by its access group (403)."""
    principal = await services(request).auth.authenticate(request)
    request.scope["state"]["principal"] = principal
    principal.require(resource, level)
    return principal


def request_id(request: Request) -> str:
    return request.scope["state"]["request_id"]


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
