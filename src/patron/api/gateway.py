"""The v2/v3 gateway endpoints: OAuth token generation and the audit log."""

from __future__ import annotations

from typing import Any, cast

import orjson
from starlette.requests import Request
from starlette.responses import Response

from patron.api import answers
from patron.api.context import authorized, read_body, services
from patron.codes import INVALID_CLIENT, INVALID_CLIENT_MESSAGE, Code
from patron.customers.audit import AuditRecord, audit_trail
from patron.customers.fields import local_text
from patron.errors import ApiError
from patron.observability.record import record_of


def gateway_response(data: Any, status_code: int = 200, errors: list[dict[str, Any]] | None = None) -> Response:
    return Response(orjson.dumps({"data": data, "errors": errors}), status_code, media_type="application/json")


# Without a key to sign them, no token is issued, whatever the key and secret.
OAUTH_NOT_CONFIGURED = "OAuth is not configured on this server: its operator must set PATRON_SECRET_KEY"


async def generate_token(request: Request) -> Response:
    app = services(request)
    try:
        body = orjson.loads(await read_body(request, app.settings.max_body_bytes) or b"{}")
    except orjson.JSONDecodeError as exc:
        raise ApiError(Code.INVALID_INPUT, detail=f"malformed JSON at line {exc.lineno}, column {exc.colno}") from exc
    if not isinstance(body, dict):
        raise ApiError(Code.INVALID_INPUT, detail="the body must be a JSON object with key and secret")
    key = body.get("key")
    record_of(request.scope).api_client = key if isinstance(key, str) else None
    if not app.auth.secret_key:
        raise ApiError(Code.NOT_CONFIGURED, detail=OAUTH_NOT_CONFIGURED)
    try:
        token, ttl = await app.auth.issue_token(body.get("key"), body.get("secret"), request)
    except ApiError as exc:
        # 429 (too many failures for this key or address) and 503 (the slow-hash queue is full)
        # go to the app's error handler, which answers them in this envelope with Retry-After.
        if exc.code != Code.AUTHENTICATION_FAILED:
            raise
        record_of(request.scope).code = INVALID_CLIENT
        return gateway_response(None, 401, [{"code": INVALID_CLIENT, "message": INVALID_CLIENT_MESSAGE}])
    return gateway_response({"accessToken": token, "ttlSeconds": ttl})


async def list_audits(request: Request) -> Response:
    app = services(request)
    principal = await authorized(request, "audit", "read")
    query = request.query_params
    if query.get("entityType", "CUSTOMER").upper() != "CUSTOMER":
        raise ApiError(Code.INVALID_INPUT, detail="entityType must be CUSTOMER")
    entity_id = query.get("entityId", "")
    if not (entity_id.isdecimal() and entity_id.isascii()) or len(entity_id) > 18:
        raise ApiError(Code.INVALID_INPUT, detail="entityId must be a customer's user_id")
    with_context = query.get("includeUserContext", "false").lower() == "true"
    org = principal.org
    records = await audit_trail(org.org_id, int(entity_id), app.storage)
    return gateway_response([_audit_record(record, org.tz, with_context) for record in records])


def _audit_record(record: AuditRecord, tz: Any, with_context: bool) -> answers.AuditRecord:
    shown: dict[str, Any] = {
        "requestId": record.request_id,
        "entityType": "CUSTOMER",
        "entityId": record.customer_id,
        "createdOn": local_text(record.created_at, tz),
        "updatedByMode": "API" if record.console_user is None else "MEMBER_CARE",
        "till": record.till_code,
        "apiClient": record.api_client_key,
    }
    if record.console_user is not None:
        shown["consoleUser"] = record.console_user
    if record.reason is not None:
        # A console user's, or Patron's own for a request it superseded (an API request's too).
        shown["reason"] = record.reason
    if with_context:
        context = record.user_context
        shown["userContextDetails"] = {
            "entityType": context["entity_type"],
            "entityId": context["entity_id"],
            "entitySource": context["entity_source"],
            "entitySourceId": context["entity_source_id"],
        }
    shown["events"] = [
        {
            "eventType": record.event_type,
            "updatedField": change["field"],
            "additionalFields": {"previousValue": change["previous"], "currentValue": change["current"]},
        }
        for change in record.changes
    ]
    # Built key by key, in the order of the family's answer: the optional keys before the events.
    return cast(answers.AuditRecord, shown)
