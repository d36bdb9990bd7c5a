"""The gateway's operations, answered `{data, errors}`: OAuth tokens and a customer's audit records."""

from __future__ import annotations

from typing import Any

from patron.api import answers
from patron.api.gateway import OAUTH_NOT_CONFIGURED
from patron.api.openapi import samples
from patron.api.openapi.parameters import CALLER_SECURITY, attribution
from patron.api.openapi.responses import common_failures, gateway_error, json_answer, retry_later
from patron.api.openapi.schemas import ref
from patron.codes import INVALID_CLIENT, INVALID_CLIENT_MESSAGE, Code
from patron.customers.fields import local_text


def token_operation() -> dict[str, Any]:
    issued = {"data": {"accessToken": "eyJhbGciOiJIUzI1NiJ9.…", "ttlSeconds": 3600}, "errors": None}
    return {
        "tags": ["oauth"],
        "operationId": "generateToken",
        "summary": "Exchange an API client's key and secret for a token",
        "description": "Send the token in X-CAP-API-OAUTH-TOKEN until it expires (then 498; get a new one).",
        "security": [],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": ref("TokenRequest"),
                    "example": {"key": "acme-backend", "secret": "a-long-random-secret"},
                }
            },
        },
        "responses": {
            "200": json_answer("A signed token and its lifetime.", "TokenResponse", issued),
            "400": gateway_error(Code.INVALID_INPUT),
            "401": gateway_error(Code.AUTHENTICATION_FAILED, INVALID_CLIENT_MESSAGE, INVALID_CLIENT),
            "413": gateway_error(Code.BODY_TOO_LARGE),
            "429": retry_later(gateway_error(Code.TOO_MANY_REQUESTS)),
            "501": gateway_error(Code.NOT_CONFIGURED, OAUTH_NOT_CONFIGURED),
            "503": gateway_error(Code.SERVICE_UNAVAILABLE),
        },
    }


def audit_record() -> answers.AuditRecord:
    """The record of Asha's update (samples), as the gateway answers it with includeUserContext=true."""
    return {
        "requestId": "9a8b7c6d5e4f40312a1b0c9d8e7f6a5b",
        "entityType": "CUSTOMER",
        "entityId": samples.ASHA_ID,
        "createdOn": local_text(samples.UPDATED_AT, samples.ORG.tz) or "",
        "updatedByMode": "API",
        "till": samples.TILL,
        "apiClient": None,
        "userContextDetails": {
            "entityType": "STAFF",
            "entityId": "emp-42",
            "entitySource": "MEMBER_CARE",
            "entitySourceId": "ticket 7",
        },
        "events": [
            {
                "eventType": "UPDATE",
                "updatedField": "lastname",
                "additionalFields": {"previousValue": samples.ASHA.lastname, "currentValue": samples.ASHA_UPDATED.lastname},
            }
        ],
    }


_AUDIT_QUERY = [
    {
        "name": "entityType",
        "in": "query",
        "description": "Only CUSTOMER (any case).",
        "schema": {"type": "string", "enum": ["CUSTOMER"], "default": "CUSTOMER"},
    },
    {
        "name": "entityId",
        "in": "query",
        "required": True,
        "description": "The customer's user_id.",
        "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"},
    },
    {
        "name": "includeUserContext",
        "in": "query",
        "description": "true: each record carries userContextDetails.",
        "schema": {"type": "string", "enum": ["true", "false"], "default": "false"},
    },
]


def audits_operation() -> dict[str, Any]:
    listed = {"data": [audit_record()], "errors": None}
    return {
        "tags": ["audit"],
        "operationId": "listAudits",
        "summary": "A customer's audit records, newest first",
        "description": "Needs `audit` read.",
        "security": CALLER_SECURITY,
        "parameters": [*_AUDIT_QUERY, *attribution()],
        "responses": {
            "200": json_answer("The records (an empty list for an unknown customer).", "AuditsResponse", listed),
            "400": gateway_error(Code.INVALID_INPUT),
            **common_failures(gateway_error),
        },
    }
