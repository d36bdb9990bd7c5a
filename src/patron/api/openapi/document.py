"""The whole OpenAPI 3.1 document: its description, tags, paths and components."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from patron.api.openapi.codes import codes_markdown
from patron.api.openapi.customer_reads import get_operation, search_operation
from patron.api.openapi.customer_writes import add_operation, update_identity_operation, update_operation
from patron.api.openapi.feed import events_operation
from patron.api.openapi.gateway import audits_operation, token_operation
from patron.api.openapi.parameters import TILL_AUTH, TOKEN_AUTH, parameters
from patron.api.openapi.requests import request_schemas
from patron.api.openapi.responses import REQUEST_ID, REQUEST_ID_HEADER, answer_schemas
from patron.api.openapi.schemas import ref
from patron.auth.authenticate import TOKEN_HEADER


def _schemas() -> dict[str, Any]:
    """The request and the answer components; one name never stands for two."""
    requests, answers = request_schemas(), answer_schemas()
    shared = set(requests) & set(answers)
    assert not shared, f"request and answer components share names: {sorted(shared)}"
    return {**requests, **answers}


def _probe(operation_id: str, summary: str, states: dict[str, tuple[str, str]]) -> dict[str, Any]:
    return {
        "tags": ["operations"],
        "operationId": operation_id,
        "summary": summary,
        "security": [],
        "responses": {
            status: {
                "description": description,
                "headers": {REQUEST_ID_HEADER: REQUEST_ID},
                "content": {
                    "application/json": {
                        "schema": ref("ProbeResponse"),
                        "example": {"data": {"status": state}, "errors": None},
                    }
                },
            }
            for status, (state, description) in states.items()
        },
    }


def _documentation_operation(operation_id: str, summary: str, media: str, kind: str) -> dict[str, Any]:
    return {
        "tags": ["documentation"],
        "operationId": operation_id,
        "summary": summary,
        "security": [],
        "responses": {"200": {"description": summary, "content": {media: {"schema": {"type": kind}}}}},
    }


def _package_version() -> str:
    try:
        return version("patron")
    except PackageNotFoundError:
        return "0+unknown"


def _info() -> dict[str, Any]:
    return {
        "title": "Patron",
        "version": _package_version(),
        "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        "summary": "Open, self-hostable loyalty-CRM core, wire-compatible with POST /v1.1/customer/add.",
        "description": (
            "Tills call with Basic auth (their code and the MD5 hex of their password); API clients "
            "exchange a key and secret for a token at /v3/oauth/token/generate and send it in "
            "X-CAP-API-OAUTH-TOKEN. Bodies are JSON or XML. Every answer carries X-Cap-Requestid. "
            "Errors of the whole request come in the same `response.status` envelope as successes "
            "(the gateway endpoints answer `{data, errors}`), and each customer of a batch gets its "
            "own `item_status`.\n\n"
            # Folded, so that the page opens on the operations rather than screens of tables.
            "<details><summary><strong>Codes</strong>: every code Patron answers, with its message</summary>\n\n"
            + codes_markdown() + "\n</details>\n"
        ),
    }


def _tags() -> list[dict[str, str]]:
    return [
        {"name": "customers", "description": "Registration and look-up (the v1.1 API)."},
        {"name": "oauth", "description": "Tokens for API clients."},
        {"name": "audit", "description": "Who changed what, and when."},
        {"name": "events", "description": "What happened to the org's customers, as a feed to read."},
        {"name": "operations", "description": "Probes for load balancers and orchestrators."},
        {"name": "documentation", "description": "This document and its interactive page."},
    ]


def _paths() -> dict[str, Any]:
    return {
        "/v1.1/customer/add": {"post": add_operation()},
        "/v1.1/customer/get": {"get": get_operation()},
        "/v1.1/customer/search": {"get": search_operation()},
        "/v1.1/customer/update": {"post": update_operation()},
        "/v1.1/customer/update_identity": {"post": update_identity_operation()},
        "/v3/oauth/token/generate": {"post": token_operation()},
        "/api_gateway/v2/audits": {"get": audits_operation()},
        "/v1.1/events": {"get": events_operation()},
        "/health": {
            "get": _probe("health", "The process is up", {"200": ("up", "Up (says nothing of the database).")})
        },
        "/ready": {
            "get": _probe(
                "ready",
                "The process can reach its database",
                {
                    "200": ("ready", "Ready to serve."),
                    "503": ("database unreachable", "The database does not answer; take this instance out."),
                },
            )
        },
        "/openapi.json": {"get": _documentation_operation("openapi", "This document", "application/json", "object")},
        "/docs": {"get": _documentation_operation("docs", "Interactive documentation", "text/html", "string")},
        "/": {"get": _documentation_operation("home", "A page leading to /docs and /console", "text/html", "string")},
        "/favicon.ico": {"get": _documentation_operation("favicon", "Patron's icon (SVG)", "image/svg+xml", "string")},
    }


def _components() -> dict[str, Any]:
    return {
        "securitySchemes": {
            TILL_AUTH: {
                "type": "http",
                "scheme": "basic",
                "description": "Tills: `Basic base64(<till code>:<md5 hex of the password, lower case>)`. "
                "Example: till `store123`, password `Pass123` → user `store123`, password "
                "`2f23fa3579f3f75175793649115c1b25`.",
            },
            TOKEN_AUTH: {
                "type": "apiKey",
                "in": "header",
                "name": TOKEN_HEADER.upper(),
                "description": "API clients: the accessToken from POST /v3/oauth/token/generate.",
            },
        },
        "headers": {
            "RequestId": {
                "description": "A unique id of the request, also kept in the audit log.",
                "schema": {"type": "string"},
            }
        },
        "parameters": parameters(),
        "schemas": _schemas(),
    }


def build_document() -> dict[str, Any]:
    """The whole OpenAPI 3.1 document."""
    return {"openapi": "3.1.0", "info": _info(), "tags": _tags(), "paths": _paths(), "components": _components()}
