"""The request record: what a request tells its log line and metrics, one typed record in its scope."""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any, Protocol

from patron.observability.outcome import ItemOutcome

# The record's one key in the ASGI scope's state (what Starlette's `request.state` reads).
_KEY = "patron.record"


class Identified(Protocol):
    """The authenticated caller as the line names it (auth.principals.Principal is one)."""

    @property
    def org_id(self) -> int: ...

    @property
    def till_code(self) -> str: ...

    @property
    def api_client_key(self) -> str | None: ...


@dataclass(slots=True)
class RequestRecord:
    """Filled in as the request goes: its id at the door, the caller once authenticated, each
    item's outcome once decided; read by the middleware when the answer has gone."""

    # Given by the request-id middleware, answered in X-Cap-Requestid.
    request_id: str = ""
    principal: Identified | None = None
    items: list[ItemOutcome] | None = None
    # The line's code when it is not the HTTP status (the gateway's invalid client).
    code: int | None = None
    # The client key a token request named, before anyone is authenticated.
    api_client: str | None = None
    # Why authentication failed, when the caller can be told what to change (never a secret).
    hint: str | None = None


def record_of(scope: MutableMapping[str, Any]) -> RequestRecord:
    """The request's record, begun empty if nothing began it (a request the middleware did not see)."""
    state = scope.setdefault("state", {})
    record = state.get(_KEY)
    if record is None:
        record = state[_KEY] = RequestRecord()
    return record


def begin_record(scope: MutableMapping[str, Any], request_id: str) -> RequestRecord:
    """A new request's record, with its id."""
    record = RequestRecord(request_id)
    scope.setdefault("state", {})[_KEY] = record
    return record
