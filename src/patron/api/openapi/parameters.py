"""The parameters operations share, and how callers authenticate."""

from __future__ import annotations

from typing import Any

from patron import limits
from patron.api.customers import LOOKUP_KEYS, USER_CONTEXT_HEADERS
from patron.auth.authenticate import ATTRIBUTION_CODE, ATTRIBUTION_TILL_LEGACY, ATTRIBUTION_TYPE

TILL_AUTH = "tillBasic"
TOKEN_AUTH = "oauthToken"


def parameters() -> dict[str, Any]:
    parameters: dict[str, Any] = {
        "format": {
            "name": "format",
            "in": "query",
            "description": "Body and answer format; wins over the path suffix, Content-Type and Accept.",
            "schema": {"type": "string", "enum": ["json", "xml"]},
        },
        "userId": {
            "name": "user_id",
            "in": "query",
            "description": "Accepted for compatibility; `user_id` is always returned.",
            "schema": {"type": "string", "enum": ["true", "false"]},
        },
        "mlpSingleEnroll": {
            "name": "mlp_single_enroll",
            "in": "query",
            "description": "true: enrol new LOYALTY customers in all the org's programmes; "
            "default: the default programme only.",
            "schema": {"type": "string", "enum": ["true", "false"]},
        },
        "attributionType": {
            "name": ATTRIBUTION_TYPE.upper(),
            "in": "header",
            "description": "OAuth callers only: `TILL` to act for a till of the org (with the next header).",
            "schema": {"type": "string", "enum": ["TILL"]},
        },
        "attributionCode": {
            "name": ATTRIBUTION_CODE.upper(),
            "in": "header",
            "description": "OAuth callers only: the till code to act for; default: the client's default till. "
            "A till of another org is 400.",
            "schema": {"type": "string"},
        },
        "attributionTillLegacy": {
            "name": ATTRIBUTION_TILL_LEGACY.upper(),
            "in": "header",
            "description": "The older spelling of the attribution till code.",
            "schema": {"type": "string"},
        },
    }
    for key, header in USER_CONTEXT_HEADERS.items():
        parameters[f"userContext_{key}"] = {
            "name": header.upper(),
            "in": "header",
            "description": "Free text stored as sent in the customer's audit record.",
            "schema": {"type": "string", "maxLength": limits.USER_CONTEXT},
        }
    for key in LOOKUP_KEYS:
        parameters[f"lookup_{key}"] = {
            "name": key,
            "in": "query",
            "description": f"Give exactly one of {', '.join(LOOKUP_KEYS)} (`id` is the user_id). "
            "Several values may be comma-separated: one item each, in order. Normalised as add "
            "normalises them.",
            "schema": {"type": "string"},
        }
    return parameters


def param(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/parameters/{name}"}


CALLER_SECURITY: list[dict[str, list[str]]] = [{TILL_AUTH: []}, {TOKEN_AUTH: []}]
SUFFIX_NOTE = (
    "Also served at `{path}.json` and `{path}.xml`: the suffix sets the format, as `format=json|xml` does."
)


def write_parameters() -> list[dict[str, str]]:
    """The query and header parameters of a POST with customers in its body (add, update,
    update_identity read them alike: api.customers._write_request)."""
    return [
        param("format"),
        param("userId"),
        param("mlpSingleEnroll"),
        *(param(f"userContext_{key}") for key in USER_CONTEXT_HEADERS),
        *attribution(),
    ]


def attribution() -> list[dict[str, str]]:
    """The headers an OAuth caller acts for a till with."""
    return [param("attributionType"), param("attributionCode"), param("attributionTillLegacy")]
