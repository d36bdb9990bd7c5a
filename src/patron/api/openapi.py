"""The OpenAPI 3.1 description of Patron's HTTP API, and the two pages that serve it: requests and
examples written here as data, responses read from the answers' types (api.answers)."""

from __future__ import annotations

import copy
from dataclasses import replace
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import orjson
import swagger_ui
from pydantic import TypeAdapter
from pydantic.json_schema import GenerateJsonSchema
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from patron import limits
from patron.api import answers, xml
from patron.api.auth import (
    ATTRIBUTION_CODE,
    ATTRIBUTION_TILL_LEGACY,
    ATTRIBUTION_TYPE,
    TOKEN_HEADER,
)
from patron.api.codec import customers_document, error_document, search_document
from patron.api.customers import LOOKUP_KEYS, USER_CONTEXT_HEADERS
from patron.api.errors import ApiError
from patron.api.events import DEFAULT_LIMIT, MAX_LIMIT, cursor_text, refusal
from patron.api.gateway import OAUTH_NOT_CONFIGURED
from patron.api.present import item_status
from patron.codes import (
    INVALID_CLIENT,
    INVALID_CLIENT_MESSAGE,
    IDENTITY_CHANGE_TAKEN,
    IDENTITY_ERRORS,
    ITEM_ERRORS,
    MESSAGES,
    REGISTERED,
    RETRIEVED,
    UPDATED,
    USER_UPDATED,
    WARNINGS,
    Code,
    identity_error_message,
)
from patron.events import build as event_bodies
from patron.events.model import StoredEvent
from patron.orgs.file import parse_org_document
from patron.orgs.model import OrgSettings
from patron.orgs.policy import STANDARD_EXTENDED_FIELDS
from patron.registration.model import IDENTIFIER_LABELS, Customer
from patron.registration.search import ATTRIBUTES as SEARCH_ATTRIBUTES
from patron.registration.search import (
    CUSTOM_FIELD_KINDS,
    DEFAULT_ROWS,
    DEFAULT_START,
    MAX_CONDITIONS,
    MAX_COUNTED,
    MAX_ROWS,
    MAX_SCANNING,
    MAX_SUFFIX,
    MAX_VALUE,
    OPERATORS,
    Kind,
)
from patron.registration.reading import (
    FRAUD_STATUSES,
    SOURCES,
    SUBSCRIPTION_CHANNELS,
    SUBSCRIPTION_PRIORITIES,
    TYPES,
)

REQUEST_ID_HEADER = "X-Cap-Requestid"
# Swagger UI's own files, as the swagger-ui-py package ships them: served by Patron itself at
# DOCS_ASSETS, so that /docs works on a machine without internet.
SWAGGER_UI_FILES = Path(swagger_ui.__file__).parent / "static"
DOCS_ASSETS = "/docs/assets"
TILL_AUTH = "tillBasic"
TOKEN_AUTH = "oauthToken"
SCHEMAS = "#/components/schemas/"

# When each request-level code is answered; the messages themselves come from patron.codes.
REQUEST_CODE_WHEN: dict[Code, str] = {
    Code.SUCCESS: "every item succeeded",
    Code.PARTIAL_SUCCESS: "some items failed",
    Code.ALL_FAILED: "every item failed (or Patron failed unexpectedly: `detail` says `internal error`)",
    Code.INVALID_INPUT: "malformed body, missing `root.customer`, a bad query parameter or header",
    Code.AUTHENTICATION_FAILED: "no, unknown or wrong credentials; an invalid OAuth token",
    Code.ACCESS_DENIED: "the caller's access group lacks the permission",
    Code.NOT_CONFIGURED: "token generation on a server without PATRON_SECRET_KEY: OAuth is off there",
    Code.NOT_FOUND: "unknown path",
    Code.METHOD_NOT_ALLOWED: "wrong method on a known path",
    Code.REQUEST_TIMEOUT: (
        "a request head not in within PATRON_HEADER_TIMEOUT_SECONDS of its first byte, or a body not in within "
        "PATRON_BODY_TIMEOUT_SECONDS of its head; the connection is closed"
    ),
    Code.CURSOR_EXPIRED: (
        "GET /v1.1/events with an `after` older than the org's CONF_EVENT_RETENTION_DAYS: events after it were "
        "removed, so the feed says so instead of skipping them; `detail` names the retention"
    ),
    Code.BODY_TOO_LARGE: "body over PATRON_MAX_BODY_BYTES",
    Code.UNSUPPORTED_MEDIA_TYPE: "a body that is neither JSON nor XML",
    Code.TOO_MANY_REQUESTS: (
        "the till's or API client's RATE_LIMIT_PER_SECOND is spent, or too many failed credential checks for this "
        "till, API client or address (PATRON_AUTH_FAILURES_*), or a search beyond PATRON_SEARCHES_PER_CALLER of "
        "this caller's or PATRON_SEARCHES_PER_WORKER of the worker's running at once (`detail` says which); "
        "`Retry-After` says when to retry"
    ),
    Code.REQUEST_HEADER_FIELDS_TOO_LARGE: (
        "a header line over PATRON_MAX_HEADER_LINE_BYTES, a head over PATRON_MAX_HEADER_BYTES, or more than "
        "PATRON_MAX_HEADERS headers; the connection is closed"
    ),
    Code.TOKEN_EXPIRED: "an expired OAuth token",
    Code.CLIENT_CLOSED_REQUEST: "never answered: the caller hung up before its body arrived (the request log shows it)",
    Code.SERVICE_UNAVAILABLE: (
        "Patron cannot reach its database, the worker already holds PATRON_MAX_CONNECTIONS connections, or its "
        "queue of password checks is full (PATRON_AUTH_HASH_QUEUE); nothing was written, safe to retry"
    ),
    Code.SEARCH_TIMED_OUT: (
        "customer/search did not finish within PATRON_SEARCH_TIMEOUT_SECONDS; the database stopped working on it "
        "then. `detail` says how to narrow it (a condition an index serves)"
    ),
}

# Item-level codes that only customer/get answers.
GET_ONLY_ITEM_CODES = (Code.CUSTOMER_NOT_FOUND,)


def _ref(name: str) -> dict[str, str]:
    return {"$ref": SCHEMAS + name}


# ---------------------------------------------------------------------------------------------
# The code table, shared by the document's description and docs/codes.md.


def codes_markdown() -> str:
    """Every code of patron.codes with its exact message, as Markdown tables."""
    lines = [
        "### Request level: `response.status.code`, and the HTTP status line",
        "",
        "| code | name | message | when |",
        "|---|---|---|---|",
        *(f"| {int(c)} | `{c.name}` | {m} | {REQUEST_CODE_WHEN[c]} |" for c, m in MESSAGES.items()),
        "",
        "### Item level: success (`item_status.success` `\"true\"`)",
        "",
        "| code | name | message |",
        "|---|---|---|",
        f"| {int(Code.ITEM_OK)} | `{Code.ITEM_OK.name}` | {REGISTERED} (a new customer) |",
        f"| {int(Code.ITEM_OK)} | `{Code.ITEM_OK.name}` | {UPDATED} (an existing customer) |",
        f"| {int(Code.ITEM_OK)} | `{Code.ITEM_OK.name}` | {RETRIEVED} (customer/get) |",
        f"| {int(Code.ITEM_OK)} | `{Code.ITEM_OK.name}` | {USER_UPDATED} (customer/update) |",
        f"| {int(Code.ITEM_OK)} | `{Code.ITEM_OK.name}` | {IDENTITY_CHANGE_TAKEN} (customer/update_identity: "
        "applied at once, `updated` \"true\") |",
        f"| {int(Code.IDENTITY_CHANGE_REQUESTED)} | `{Code.IDENTITY_CHANGE_REQUESTED.name}` | {IDENTITY_CHANGE_TAKEN} "
        "(customer/update_identity: waiting for review, `updated` \"false\") |",
        "",
        "### Item level: errors (`item_status.success` `\"false\"`, nothing of the item written)",
        "",
        "| code | name | message |",
        "|---|---|---|",
        *(
            f"| {int(c)} | `{c.name}` | {m}{' (customer/get only)' if c in GET_ONLY_ITEM_CODES else ''} |"
            for c, m in ITEM_ERRORS.items()
        ),
        *(f"| {int(c)} | `{c.name}` | {m} (customer/update_identity only) |" for c, m in IDENTITY_ERRORS.items()),
        "",
        "### Item level: warnings (`item_status.code` stays 1000, the code is listed in "
        "`item_status.warnings.warning`, the text is appended to `item_status.message` after `\", \"`)",
        "",
        "`{field}` stands for the field's name as the API shows it: `Mobile`, `Email`, `External id`, "
        "or the name of the field that was sent.",
        "",
        "| code | name | text |",
        "|---|---|---|",
        *(f"| {int(c)} | `{c.name}` | {m} |" for c, m in WARNINGS.items()),
        "",
        "### Gateway endpoints (`/v3/`, `/api_gateway/`): `errors[].code`",
        "",
        "| code | message | when |",
        "|---|---|---|",
        f"| {INVALID_CLIENT} | {INVALID_CLIENT_MESSAGE} | wrong API-client key or secret at /v3/oauth/token/generate |",
        "| any request-level code above | its message (or the problem's detail) | as above |",
    ]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# Schemas: what Patron accepts, and exactly what it answers (see present.py and customers.py).

_LENIENT_TEXT = {"type": ["string", "number"], "description": "Text; a JSON number is read as its digits."}
_LENIENT_FLAG = {
    "type": ["string", "boolean", "integer"],
    "description": "true/false, 1/0, yes/no in any case; a string is fine.",
}


def _name_value_list(value_schema: dict[str, Any], description: str) -> dict[str, Any]:
    entry = {
        "type": "object",
        "required": ["name", "value"],
        "properties": {"name": {"type": "string"}, "value": value_schema},
    }
    return {
        "type": "object",
        "description": description,
        "properties": {"field": {"oneOf": [{"type": "array", "items": entry}, entry]}},
    }


def _request_schemas() -> dict[str, Any]:
    customer_input = {
        "type": "object",
        "description": (
            "One customer. Parsed leniently (numbers for strings, strings for booleans, any case), "
            "validated strictly; what is invalid is skipped with a warning or fails the item with an "
            "error code (see the code table). Which identifiers are required depends on the org's "
            "configs (CONF_REGISTRATION_PRIMARY_KEY and friends). Unknown keys are ignored."
        ),
        "properties": {
            "mobile": {
                **_LENIENT_TEXT,
                "description": "With the country code; `+`, spaces, dashes and brackets are stripped. "
                "Returned as E.164 digits without `+`.",
                "examples": [917755876888, "+91 77558 76888"],
            },
            "email": {"type": "string", "maxLength": limits.EMAIL, "description": "Stored lower-cased."},
            "external_id": {**_LENIENT_TEXT, "description": f"At most {limits.EXTERNAL_ID} characters; trimmed."},
            "firstname": {"type": "string", "maxLength": limits.NAME},
            "lastname": {"type": "string", "maxLength": limits.NAME},
            "registered_on": {
                "type": "string",
                "description": "`YYYY-MM-DD HH:MM:SS`, `YYYY-MM-DD` or ISO 8601; at most 24 h ahead and "
                "not before CONF_MIN_REGISTRATION_DATE (else 1034). Ignored on update.",
            },
            "updated_on": {"type": "string", "description": "Same formats; default now."},
            "type": {
                "type": "string",
                "description": "Any case; default " + TYPES["loyalty"] + ".",
                "examples": sorted(TYPES.values()),
            },
            "source": {
                "type": "string",
                "description": "Any case; default INSTORE. One of: " + ", ".join(SOURCES.values()) + ".",
            },
            "accountId": {"type": "string", "maxLength": limits.ACCOUNT_ID, "description": "Stored with the source."},
            "fraud_status": {
                "description": "One of: " + ", ".join(FRAUD_STATUSES.values()) + " (any case).",
                "oneOf": [
                    {"type": "string"},
                    {"type": "object", "properties": {"status": {"type": "string"}}},
                ],
            },
            "registered_till": {"type": "string", "maxLength": limits.TILL_CODE, "description": "A till code of the org."},
            "associated_with": {"type": "string", "maxLength": limits.TILL_CODE, "description": "A till code of the org."},
            "referral_code": {"type": "string", "description": "The referrer's referral_code."},
            "commChannels": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "type": {"type": "string"},
                        "value": _LENIENT_TEXT,
                        "primary": _LENIENT_FLAG,
                        "verified": _LENIENT_FLAG,
                        "meta": {"type": "object"},
                    },
                },
            },
            "subscriptions": {
                "type": "object",
                "properties": {
                    "subscription": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "channel": {"type": "string", "enum": sorted(SUBSCRIPTION_CHANNELS.values())},
                                "priority": {"type": "string", "enum": sorted(SUBSCRIPTION_PRIORITIES.values())},
                                "scope": {"type": "string"},
                                "is_subscribed": _LENIENT_FLAG,
                            },
                        },
                    }
                },
            },
            "custom_fields": _name_value_list(
                {"type": ["string", "number", "boolean"]},
                "Fields the org declares (names case-insensitive); unknown or invalid: skipped, warning 1017.",
            ),
            "extended_fields": _name_value_list(
                {"type": ["string", "number", "boolean"]},
                "Standard extended fields ("
                + ", ".join(field.name for field in STANDARD_EXTENDED_FIELDS.values())
                + ") or ones the org declares; unknown or invalid: skipped, warning 91015.",
            ),
        },
    }
    return {
        "CustomerInput": customer_input,
        "AddRequest": {
            "type": "object",
            "required": ["root"],
            "description": "XML bodies have the same structure: `<root><customer>…</customer>…</root>`, "
            "with `<custom_fields><field><name/><value/></field></custom_fields>` (likewise "
            "`extended_fields`, `subscriptions/subscription`, `commChannels/commChannel`).",
            "xml": {"name": "root"},
            "properties": {
                "root": {
                    "type": "object",
                    "required": ["customer"],
                    "properties": {
                        "customer": {
                            "description": "A list of customers (a batch), or one customer.",
                            "oneOf": [
                                {"type": "array", "minItems": 1, "items": _ref("CustomerInput")},
                                _ref("CustomerInput"),
                            ],
                        }
                    },
                }
            },
        },
        "UpdateRequest": {
            "type": "object",
            "required": ["root"],
            "description": "One customer, named by any one of mobile, email, external_id, with the fields to "
            "change; XML as for add. A list is accepted, but each item past the first fails with 1060.",
            "xml": {"name": "root"},
            "properties": {
                "root": {
                    "type": "object",
                    "required": ["customer"],
                    "properties": {
                        "customer": {
                            "oneOf": [
                                _ref("CustomerInput"),
                                {"type": "array", "minItems": 1, "items": _ref("CustomerInput")},
                            ]
                        }
                    },
                }
            },
        },
        "IdentityChangeInput": {
            "type": "object",
            "description": "One identifier change. Older clients' spellings are read too: `old_identifier` and "
            "`new_identifier` for the values, and `identifier` holding the old value itself (then the field "
            "is read from it: an `@` makes it an email, a valid mobile of the org's countries a mobile, "
            "else an external id).",
            "properties": {
                "identifier": {
                    **_LENIENT_TEXT,
                    "description": "mobile, email or external_id (any case); or, older spelling, the old value.",
                    "examples": ["mobile", "email", "external_id"],
                },
                "old_value": {**_LENIENT_TEXT, "description": "The value the customer holds now; none holds it: 1012."},
                "new_value": {
                    **_LENIENT_TEXT,
                    "description": "Read by the field's rules (1001/1002/1003); held by another customer: 91007.",
                },
                "old_identifier": {**_LENIENT_TEXT, "description": "Older spelling of old_value."},
                "new_identifier": {**_LENIENT_TEXT, "description": "Older spelling of new_value."},
            },
        },
        "UpdateIdentityRequest": {
            "type": "object",
            "required": ["root"],
            "description": "XML: `<root><customer><identifier/><old_value/><new_value/></customer>…</root>`.",
            "xml": {"name": "root"},
            "properties": {
                "root": {
                    "type": "object",
                    "required": ["customer"],
                    "properties": {
                        "customer": {
                            "description": "A list of changes (a batch, at most BATCH_LIMIT), or one change.",
                            "oneOf": [
                                {"type": "array", "minItems": 1, "items": _ref("IdentityChangeInput")},
                                _ref("IdentityChangeInput"),
                            ],
                        }
                    },
                }
            },
        },
        "TokenRequest": {
            "type": "object",
            "required": ["key", "secret"],
            "properties": {"key": {"type": "string"}, "secret": {"type": "string"}},
        },
    }


class _Document(GenerateJsonSchema):
    """JSON Schema as the document shows it: a property is titled by its name already."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False


def answer_schemas() -> dict[str, Any]:
    """The response half of the components, read from the answers' own types (api.answers)."""
    schemas: dict[str, Any] = {}
    for answer in answers.DOCUMENTED:
        schema = TypeAdapter(answer).json_schema(ref_template=SCHEMAS + "{model}", schema_generator=_Document)
        schemas.update(schema.pop("$defs", {}))
        schemas[answer.__name__] = schema
    for schema in schemas.values():
        schema.pop("title", None)  # the component's name
    return schemas


# ---------------------------------------------------------------------------------------------
# Examples: the seed's samples (the original API page), with the envelope built by Patron's own code.


def _item_status(code: Code, message: str, warnings: tuple[Code, ...] = ()) -> answers.ItemStatus:
    message = ", ".join([message, *(WARNINGS[warning] for warning in warnings)])
    return item_status(code == Code.ITEM_OK, code, message, list(warnings))


SEED_REQUEST_MOBILE_AND_EMAIL: dict[str, Any] = {
    "root": {
        "customer": [
            {
                "mobile": 917755876888,
                "email": "testNee113@gmail.com",
                "external_id": "12on",
                "firstname": "Neeraj",
                "lastname": "loyal",
                "updated_on": "2025-05-29 09:10:00",
                "registered_till": "rutuja_capillary",
                "associated_with": "rutuja_capillary",
                "type": "NON_LOYALTY",
                "source": "WEB_ENGAGE",
                "accountId": "123456",
                "fraud_status": {"status": "Fraus_Suspected"},
                "commChannels": [
                    {
                        "type": "mobile",
                        "value": "917755876888",
                        "primary": "true",
                        "verified": "true",
                        "meta": {"residence": "true"},
                    }
                ],
                "custom_fields": {"field": [{"name": "City_name", "value": "Bangalore"}, {"name": "address", "value": "BTM"}]},
                "extended_fields": {"field": [{"name": "age", "value": "25"}]},
            }
        ]
    }
}

# The seed prints this sample without the comma after external_id (and must get a 400 for it);
# here it is as it was meant.
SEED_REQUEST_EXTERNAL_ID: dict[str, Any] = {
    "root": {
        "customer": [
            {
                "external_id": "123445901",
                "registered_on": "2024-07-29 11:11:11",
                "registered_till": "till_name",
                "associated_with": "till_name",
            }
        ]
    }
}

XML_REQUEST = (
    "<root>\n  <customer>\n    <mobile>917755876888</mobile>\n    <email>testNee113@gmail.com</email>\n"
    "    <firstname>Neeraj</firstname>\n    <custom_fields>\n      <field><name>City_name</name>"
    "<value>Bangalore</value></field>\n    </custom_fields>\n    <commChannels>\n      <commChannel>"
    "<type>mobile</type><value>917755876888</value><primary>true</primary></commChannel>\n"
    "    </commChannels>\n  </customer>\n</root>\n"
)


def _seed_points_summary(program_id: str, lifetime: str, current: str, upcoming: tuple[str, str, str], expiry: str) -> dict[str, str]:
    next_name, next_serial, next_description = upcoming
    return {
        "programId": program_id,
        "redeemed": "0",
        "expired": "0",
        "returned": "0",
        "adjusted": "0",
        "lifetimePoints": lifetime,
        "loyaltyPoints": lifetime,
        "cumulativePurchases": "0",
        "currentSlab": current,
        "nextSlab": next_name,
        "nextSlabSerialNumber": next_serial,
        "nextSlabDescription": next_description,
        "slabSNo": "1",
        "slabExpiryDate": expiry,
        "totalPoints": "",
    }


def _seed_customer_mobile_and_email() -> dict[str, Any]:
    return {
        "user_id": 557408687,
        "firstname": "testuwser",
        "lastname": "promo54",
        "mobile": "919876532218",
        "email": "demopromo412@gmail.com",
        "external_id": "000003880203",
        "lifetime_points": 0,
        "loyalty_points": 0,
        "current_slab": "Base",
        "tier_expiry_date": "2124-08-01 23:59:59",
        "points_summaries": {
            "points_summary": [
                _seed_points_summary("469", "0", "Base", ("Bronze", "2", "Tier 2"), "2124-08-01 23:59:59")
            ]
        },
        "lifetime_purchases": 0,
        "registered_on": "2024-08-01 07:28:32",
        "updated_on": "2023-07-11 10:12:00",
        "type": "LOYALTY",
        "source": "instore",
        "fraud_status": "NONE",
        "reason": "",
        "custom_fields": {"field": [{"name": "address", "value": "Bangalore1234"}, {"name": "pincode", "value": "54321"}]},
        "extended_fields": {"field": []},
        "subscriptions": {"subscription": []},
    }


def _batch_example(summary: str, code: Code, items: list[Any]) -> dict[str, Any]:
    """A named example of a customers answer: its summary, and the envelope Patron builds (its
    success_count counted from the items)."""
    successes = sum(item["item_status"]["success"] == "true" for item in items)
    return {"summary": summary, "value": customers_document(code, items, successes)}


def _seed_responses() -> dict[str, dict[str, Any]]:
    """The seed's three sample responses; the second is completed with what Patron always sends."""
    with_mobile = {
        **_seed_customer_mobile_and_email(),
        "side_effects": {
            "effect": [
                {"awarded_points": 100, "total_points": 100, "customer_id": "424133043", "type": "points"},
                {"awarded_points": 100, "customer_id": "424133021", "is_referrer": "true", "type": "points"},
            ]
        },
        "item_status": _item_status(Code.ITEM_OK, REGISTERED, (Code.INVALID_CUSTOM_FIELD,)),
    }
    with_external_id = {
        "user_id": 84230513,
        "firstname": "",
        "lastname": "",
        "mobile": None,
        "email": None,
        "external_id": "123445901",
        "lifetime_points": 100,
        "loyalty_points": 100,
        "current_slab": "Base",
        "tier_expiry_date": "2124-08-01 23:59:59",
        "points_summaries": {
            "points_summary": [
                _seed_points_summary("1204", "100", "Base", ("Milestone 1", "2", "Milestone 1"), "2124-08-01 23:59:59")
            ]
        },
        "lifetime_purchases": 0,
        "registered_on": "2024-08-01 02:31:17",
        "updated_on": "2024-08-01 02:31:17",
        "type": "LOYALTY",
        "source": "instore",
        "fraud_status": "NONE",
        "reason": "",
        "custom_fields": {"field": []},
        "extended_fields": {"field": []},
        "subscriptions": {"subscription": []},
        "side_effects": {
            "effect": [{"awarded_points": 100, "total_points": 100, "customer_id": "84230513", "type": "points"}]
        },
        "item_status": _item_status(Code.ITEM_OK, REGISTERED),
    }
    with_currency = {
        **_seed_customer_mobile_and_email(),
        "user_id": 553639618,
        "firstname": "testuser",
        "lastname": "promo4",
        "mobile": "919876543218",
        "email": "demopromo4@gmail.com",
        "external_id": None,
        "current_slab": "NONE",
        "tier_expiry_date": "2123-09-12 23:59:59",
        "points_summaries": {
            "points_summary": [_seed_points_summary("2088", "0", "NONE", ("", "-1", ""), "2123-09-12 23:59:59")]
        },
        "registered_on": "2023-09-12 16:05:01",
        "custom_fields": {"field": []},
        "side_effects": {
            "effect": [
                {
                    "alternate_currency_identifier": "rgpws7",
                    "alternate_currency_name": "ac1",
                    "awarded_value": "110",
                    "type": "alternate_currency",
                }
            ]
        },
        "item_status": _item_status(Code.ITEM_OK, REGISTERED, (Code.INVALID_CUSTOM_FIELD,)),
    }
    failed = {
        "mobile": None,
        "email": None,
        "external_id": None,
        "item_status": _item_status(Code.NO_VALID_IDENTIFIER, ITEM_ERRORS[Code.NO_VALID_IDENTIFIER]),
    }
    invalid_mobile = {
        "mobile": "12345",
        "email": None,
        "external_id": None,
        "item_status": _item_status(Code.INVALID_MOBILE, ITEM_ERRORS[Code.INVALID_MOBILE]),
    }
    return {
        "withMobileAndEmail": _batch_example(
            "Original API page sample: with mobile and email (a referral awarded the referrer too)",
            Code.SUCCESS, [with_mobile],
        ),
        "withExternalId": {
            "summary": "Original API page sample: with external id",
            "description": "The original API page's sample omits fraud_status, reason and the effect's customer_id; "
            "Patron always sends them.",
            "value": customers_document(Code.SUCCESS, [with_external_id], 1),
        },
        "withAlternateCurrency": _batch_example(
            "Original API page sample: an alternate currency as side effect",
            Code.SUCCESS, [with_currency],
        ),
        "someFailed": _batch_example(
            "A batch of two: one registered, one with an invalid mobile",
            Code.PARTIAL_SUCCESS, [copy.deepcopy(with_external_id), invalid_mobile],
        ),
        "allFailed": _batch_example(
            "Every item failed (the original API page's 500 sample, as Patron fills it in)",
            Code.ALL_FAILED, [failed],
        ),
    }


def _get_examples() -> dict[str, dict[str, Any]]:
    found = {
        **_seed_customer_mobile_and_email(),
        "fraud_details": {"status": "NONE"},
        "registered_till": {"code": "blr.koramangala.till001", "name": "Till 1"},
        "registered_store": {"code": "blr.koramangala", "name": "Koramangala"},
        "associated_with": "blr.koramangala.till001",
        "referral_code": "K7Q2M9XA",
        "commChannels": [
            {"type": "mobile", "value": "919876532218", "primary": "true", "verified": "false", "meta": {}}
        ],
        "identifiers": [
            {"type": "mobile", "value": "919876532218"},
            {"type": "email", "value": "demopromo412@gmail.com"},
            {"type": "external_id", "value": "000003880203"},
        ],
        "item_status": _item_status(Code.ITEM_OK, RETRIEVED),
    }
    missing = {
        "mobile": "919800000000",
        "item_status": _item_status(Code.CUSTOMER_NOT_FOUND, ITEM_ERRORS[Code.CUSTOMER_NOT_FOUND]),
    }
    return {
        "found": {"summary": "Found", "value": customers_document(Code.SUCCESS, [found], 1)},
        "oneOfTwoFound": _batch_example(
            "mobile=919876532218,919800000000: one found, one not",
            Code.PARTIAL_SUCCESS, [copy.deepcopy(found), missing],
        ),
        "noneFound": {"summary": "mobile=919800000000: not found", "value": customers_document(Code.ALL_FAILED, [missing], 0)},
    }


def _as_xml(examples: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The same examples as Patron renders them in XML."""
    return {
        name: {**{k: v for k, v in example.items() if k != "value"}, "value": xml.render(example["value"]).decode()}
        for name, example in examples.items()
    }


# ---------------------------------------------------------------------------------------------
# Parameters, headers and responses.

_REQUEST_ID = {"$ref": "#/components/headers/RequestId"}


def _parameters() -> dict[str, Any]:
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


def _param(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/parameters/{name}"}


_RETRY_AFTER = {"description": "Whole seconds to wait before trying again.", "schema": {"type": "string", "pattern": "^[0-9]+$"}}


def _retry_later(response: dict[str, Any]) -> dict[str, Any]:
    """The response with its Retry-After header."""
    return {**response, "headers": {**response["headers"], "Retry-After": _RETRY_AFTER}}


def _envelope_error(code: Code, detail: str | None = None) -> dict[str, Any]:
    """A request-level failure of the customer endpoints, in JSON and XML."""
    example = error_document(ApiError(code, detail=detail))
    return {
        "description": f"{MESSAGES[code]}: {REQUEST_CODE_WHEN[code]}.",
        "headers": {REQUEST_ID_HEADER: _REQUEST_ID},
        "content": {
            "application/json": {"schema": _ref("ErrorResponse"), "example": example},
            "application/xml": {"schema": _ref("ErrorResponse"), "example": xml.render(example).decode()},
        },
    }


def _gateway_error(code: Code, message: str | None = None, error_code: int | None = None) -> dict[str, Any]:
    """A request-level failure of the /v3/ and /api_gateway/ endpoints."""
    example = {"data": None, "errors": [{"code": error_code or int(code), "message": message or MESSAGES[code]}]}
    return {
        "description": f"{message or MESSAGES[code]}: {REQUEST_CODE_WHEN[code]}.",
        "headers": {REQUEST_ID_HEADER: _REQUEST_ID},
        "content": {"application/json": {"schema": _ref("GatewayErrorResponse"), "example": example}},
    }


def _batch_response(
    code: Code, schema: str, examples: dict[str, dict[str, Any]], names: tuple[str, ...], *, or_error: bool = False
) -> dict[str, Any]:
    """A batch answer; `or_error`: the same status may also come without items (an unexpected failure)."""
    chosen = {name: examples[name] for name in names}
    shape = {"oneOf": [_ref(schema), _ref("ErrorResponse")]} if or_error else _ref(schema)
    return {
        "description": f"{MESSAGES[code]}: {REQUEST_CODE_WHEN[code]}.",
        "headers": {REQUEST_ID_HEADER: _REQUEST_ID},
        "content": {
            "application/json": {"schema": shape, "examples": chosen},
            "application/xml": {"schema": shape, "examples": _as_xml(chosen)},
        },
    }


_CALLER_SECURITY = [{TILL_AUTH: []}, {TOKEN_AUTH: []}]
_SUFFIX_NOTE = (
    "Also served at `{path}.json` and `{path}.xml`: the suffix sets the format, as `format=json|xml` does."
)


def _write_parameters() -> list[dict[str, str]]:
    """The query and header parameters of a POST with customers in its body (add, update,
    update_identity read them alike: api.customers._write_request)."""
    return [
        _param("format"),
        _param("userId"),
        _param("mlpSingleEnroll"),
        *(_param(f"userContext_{key}") for key in USER_CONTEXT_HEADERS),
        _param("attributionType"),
        _param("attributionCode"),
        _param("attributionTillLegacy"),
    ]


def _write_failures(invalid: str) -> dict[str, Any]:
    """The request-level failures of a POST with customers in its body (add, update,
    update_identity); `invalid`: the detail its 400 example shows."""
    return {
        "400": _envelope_error(Code.INVALID_INPUT, invalid),
        "401": _envelope_error(Code.AUTHENTICATION_FAILED),
        "403": _envelope_error(Code.ACCESS_DENIED),
        "429": _retry_later(_envelope_error(Code.TOO_MANY_REQUESTS)),
        "413": _envelope_error(Code.BODY_TOO_LARGE, "the limit is 1048576 bytes"),
        "415": _envelope_error(Code.UNSUPPORTED_MEDIA_TYPE, "Content-Type text/plain is neither JSON nor XML"),
        "498": _envelope_error(Code.TOKEN_EXPIRED),
        "503": _envelope_error(Code.SERVICE_UNAVAILABLE),
    }


def _add_operation() -> dict[str, Any]:
    examples = _seed_responses()
    return {
        "tags": ["customers"],
        "operationId": "addCustomers",
        "summary": "Register or update customers (an upsert), one or a batch",
        "description": (
            "Each item is resolved to an existing customer by its identifiers (the org's primary "
            "identifier first) and updated, or registered as new; each item is atomic and independent, "
            "and a later item sees what an earlier one wrote. Needs `customer` write.\n\n"
            "Format: JSON unless `format=xml`, the `.xml` suffix or `Content-Type: application/xml` "
            "(or `text/xml`); the answer uses the request's format unless `format` or `Accept` says "
            "otherwise.\n\n" + _SUFFIX_NOTE.format(path="/v1.1/customer/add")
        ),
        "security": _CALLER_SECURITY,
        "parameters": _write_parameters(),
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": _ref("AddRequest"),
                    "examples": {
                        "withMobileAndEmail": {
                            "summary": "Original API page sample: with mobile and email",
                            "value": SEED_REQUEST_MOBILE_AND_EMAIL,
                        },
                        "withExternalId": {
                            "summary": "Original API page sample: with external id",
                            "description": "The original API page prints it without the comma after external_id; that "
                            "body is malformed JSON and gets 400 naming line and column.",
                            "value": SEED_REQUEST_EXTERNAL_ID,
                        },
                    },
                },
                "application/xml": {
                    "schema": _ref("AddRequest"),
                    "examples": {"oneCustomer": {"summary": "One customer in XML", "value": XML_REQUEST}},
                },
            },
        },
        "responses": {
            "200": _batch_response(
                Code.SUCCESS, "AddResponse", examples, ("withMobileAndEmail", "withExternalId", "withAlternateCurrency")
            ),
            "201": _batch_response(Code.PARTIAL_SUCCESS, "AddResponse", examples, ("someFailed",)),
            "500": _batch_response(Code.ALL_FAILED, "AddResponse", examples, ("allFailed",), or_error=True),
            **_write_failures("malformed JSON at line 6, column 17: unexpected character, expected ',' or '}'"),
        },
    }


def _get_operation() -> dict[str, Any]:
    examples = _get_examples()
    return {
        "tags": ["customers"],
        "operationId": "getCustomers",
        "summary": "Read customers back by mobile, email, external_id or id",
        "description": (
            "Only customers of the caller's org are visible. Found: 1000; not found: 1012, echoing the "
            "value asked for. Needs `customer` read.\n\n" + _SUFFIX_NOTE.format(path="/v1.1/customer/get")
        ),
        "security": _CALLER_SECURITY,
        "parameters": [
            *(_param(f"lookup_{key}") for key in LOOKUP_KEYS),
            _param("format"),
            _param("userId"),
            _param("attributionType"),
            _param("attributionCode"),
            _param("attributionTillLegacy"),
        ],
        "responses": {
            "200": _batch_response(Code.SUCCESS, "GetResponse", examples, ("found",)),
            "201": _batch_response(Code.PARTIAL_SUCCESS, "GetResponse", examples, ("oneOfTwoFound",)),
            "500": _batch_response(Code.ALL_FAILED, "GetResponse", examples, ("noneFound",), or_error=True),
            "400": _envelope_error(Code.INVALID_INPUT, "give exactly one of mobile, email, external_id, id"),
            "401": _envelope_error(Code.AUTHENTICATION_FAILED),
            "403": _envelope_error(Code.ACCESS_DENIED),
            "429": _retry_later(_envelope_error(Code.TOO_MANY_REQUESTS)),
            "498": _envelope_error(Code.TOKEN_EXPIRED),
            "503": _envelope_error(Code.SERVICE_UNAVAILABLE),
        },
    }


def _update_examples() -> dict[str, dict[str, Any]]:
    updated = {
        **_get_examples()["found"]["value"]["response"]["customers"]["customer"][0],
        "lastname": "Rao",
        "item_status": _item_status(Code.ITEM_OK, USER_UPDATED, (Code.IDENTIFIER_UPDATE_NOT_ALLOWED,)),
    }
    updated["item_status"]["message"] = updated["item_status"]["message"].replace("{field}", "Email")
    missing = {
        "mobile": "919800000000",
        "email": None,
        "external_id": None,
        "item_status": _item_status(Code.CUSTOMER_NOT_FOUND, ITEM_ERRORS[Code.CUSTOMER_NOT_FOUND]),
    }
    beyond = {**missing, "mobile": "919800000001",
              "item_status": _item_status(Code.BATCH_LIMIT_EXCEEDED, ITEM_ERRORS[Code.BATCH_LIMIT_EXCEEDED])}
    return {
        "updated": _batch_example(
            "Updated; a new email was refused (CONF_ALLOW_EMAIL_UPDATE is off)",
            Code.SUCCESS, [updated],
        ),
        "secondRefused": _batch_example(
            "A list of two: one customer is updated, the second item fails with 1060",
            Code.PARTIAL_SUCCESS, [copy.deepcopy(updated), beyond],
        ),
        "notFound": _batch_example(
            "No customer holds the mobile: update never creates one",
            Code.ALL_FAILED, [missing],
        ),
    }


def _update_operation() -> dict[str, Any]:
    examples = _update_examples()
    return {
        "tags": ["customers"],
        "operationId": "updateCustomer",
        "summary": "Change one existing customer's fields",
        "description": (
            "The customer is named by any one of mobile, email, external_id, resolved as add resolves "
            "them, and updated exactly as add's update path does (same readings, warnings and audit "
            "record); it is never created (1012). `registered_on` is ignored. The primary identifier "
            "never changes here (91005); a secondary one only where the org allows it (91006), never "
            "to a value another customer holds (91007): customer/update_identity changes any of them. "
            "The answer item is the customer as stored, as customer/get shows it. Needs `customer` "
            "write.\n\n" + _SUFFIX_NOTE.format(path="/v1.1/customer/update")
        ),
        "security": _CALLER_SECURITY,
        "parameters": _write_parameters(),
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": _ref("UpdateRequest"),
                    "example": {
                        "root": {
                            "customer": {
                                "mobile": "919876532218",
                                "lastname": "Rao",
                                "custom_fields": {"field": [{"name": "City_name", "value": "Mysuru"}]},
                            }
                        }
                    },
                },
                "application/xml": {
                    "schema": _ref("UpdateRequest"),
                    "example": "<root><customer><mobile>919876532218</mobile><lastname>Rao</lastname></customer></root>",
                },
            },
        },
        "responses": {
            "200": _batch_response(Code.SUCCESS, "UpdateResponse", examples, ("updated",)),
            "201": _batch_response(Code.PARTIAL_SUCCESS, "UpdateResponse", examples, ("secondRefused",)),
            "500": _batch_response(Code.ALL_FAILED, "UpdateResponse", examples, ("notFound",), or_error=True),
            **_write_failures("the body must hold root.customer: one customer or a list of them"),
        },
    }


def _identity_item(code: Code, identifier: Any, old: Any, new: Any, *, updated: bool = False,
                   user_id: int | None = None) -> dict[str, Any]:
    taken = code in (Code.ITEM_OK, Code.IDENTITY_CHANGE_REQUESTED)
    message = IDENTITY_CHANGE_TAKEN if taken else identity_error_message(code, IDENTIFIER_LABELS[identifier])
    shown: dict[str, Any] = {} if user_id is None else {"user_id": user_id}
    return {
        **shown,
        "identifier": identifier,
        "old_value": old,
        "new_value": new,
        "updated": "true" if updated else "false",
        "item_status": item_status(code in (Code.ITEM_OK, Code.IDENTITY_CHANGE_REQUESTED), code, message, []),
    }


def _update_identity_examples() -> dict[str, dict[str, Any]]:
    pending = _identity_item(
        Code.IDENTITY_CHANGE_REQUESTED, "mobile", "919876532218", "919876500001", user_id=557408687
    )
    applied = _identity_item(
        Code.ITEM_OK, "email", "old@example.com", "new@example.com", updated=True, user_id=557408687
    )
    occupied = _identity_item(Code.IDENTIFIER_OCCUPIED, "mobile", "919876532218", "919811111111", user_id=557408687)
    missing = _identity_item(Code.CUSTOMER_NOT_FOUND, "mobile", "919800000000", "919800000001")
    elsewhere = _identity_item(
        Code.PENDING_REQUEST_OF_ANOTHER_CALLER, "mobile", "919876532218", "919876500002", user_id=557408687
    )
    capped = _identity_item(Code.TOO_MANY_PENDING_REQUESTS, "mobile", "919876532219", "919876500003", user_id=557408688)
    return {
        "pending": _batch_example(
            "Taken for review (CONF_IDENTITY_CHANGE_APPROVAL on, the default)",
            Code.SUCCESS, [pending],
        ),
        "applied": _batch_example(
            "Applied at once (CONF_IDENTITY_CHANGE_APPROVAL off)",
            Code.SUCCESS, [applied],
        ),
        "oneOccupied": _batch_example(
            "A batch of two: one taken, one whose new value another customer holds",
            Code.PARTIAL_SUCCESS, [copy.deepcopy(pending), occupied],
        ),
        "notFound": _batch_example("No customer holds the old value", Code.ALL_FAILED, [missing]),
        "refused": _batch_example(
            "Another caller's request waits for the first mobile (1041), and this caller has"
            " CONF_IDENTITY_CHANGE_PENDING_PER_CALLER requests waiting already (1042)",
            Code.ALL_FAILED, [elsewhere, capped],
        ),
    }


def _update_identity_operation() -> dict[str, Any]:
    examples = _update_identity_examples()
    return {
        "tags": ["customers"],
        "operationId": "updateCustomerIdentity",
        "summary": "Change customers' identifiers (the primary one included), through review",
        "description": (
            "Each item names an identifier, the value a customer holds and the value it should hold; "
            "each is independent and atomic. With CONF_IDENTITY_CHANGE_APPROVAL on (the default) the "
            "change waits as a PENDING request (1040, `updated` \"false\") until a member-care user "
            "whose access group has identity_review approves it in the console (checked again then) or "
            "rejects it, and never approves a request they stand behind, by whatever till, API client or "
            "user-context entity id they asked (four eyes). A newer request for the same customer and "
            "identifier supersedes the pending one when it is the same caller's (or the same person's), or "
            "when the caller's access group has identity_review; otherwise the item fails with 1041. At most "
            "CONF_IDENTITY_CHANGE_PENDING_PER_CALLER (default 100) of one caller's requests wait at once; "
            "past it, 1042. "
            "With it off the change applies at once (1000, `updated` \"true\"). Does not depend on "
            "CONF_ALLOW_*_UPDATE. Needs `customer` write.\n\n"
            + _SUFFIX_NOTE.format(path="/v1.1/customer/update_identity")
        ),
        "security": _CALLER_SECURITY,
        "parameters": _write_parameters(),
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": _ref("UpdateIdentityRequest"),
                    "examples": {
                        "current": {
                            "summary": "The current spelling",
                            "value": {
                                "root": {
                                    "customer": [
                                        {"identifier": "mobile", "old_value": "919876532218", "new_value": "919876500001"}
                                    ]
                                }
                            },
                        },
                        "older": {
                            "summary": "An older client's spelling: the old value in `identifier`",
                            "value": {"root": {"customer": {"identifier": "old@example.com", "new_identifier": "new@example.com"}}},
                        },
                    },
                },
                "application/xml": {
                    "schema": _ref("UpdateIdentityRequest"),
                    "example": "<root><customer><identifier>mobile</identifier><old_value>919876532218</old_value>"
                    "<new_value>919876500001</new_value></customer></root>",
                },
            },
        },
        "responses": {
            "200": _batch_response(Code.SUCCESS, "IdentityResponse", examples, ("pending", "applied")),
            "201": _batch_response(Code.PARTIAL_SUCCESS, "IdentityResponse", examples, ("oneOccupied",)),
            "500": _batch_response(Code.ALL_FAILED, "IdentityResponse", examples, ("notFound",), or_error=True),
            **_write_failures("the body must hold root.customer: one customer or a list of them"),
        },
    }


def _search_operators() -> str:
    """Each attribute with the operators it takes, from the reader's own table (registration.search)."""
    lines = [
        f"- `{attribute.value}`: {', '.join(OPERATORS[rule.kind])}" for attribute, rule in SEARCH_ATTRIBUTES.items()
    ]
    lines += [
        f"- a custom field of type {', '.join(types)}: {', '.join(OPERATORS[kind])}"
        for kind, types in (
            (Kind.TEXT, [name for name, (k, _, _) in CUSTOM_FIELD_KINDS.items() if k is Kind.TEXT]),
            (Kind.ORDERED_FIELD, [name for name, (k, _, _) in CUSTOM_FIELD_KINDS.items() if k is Kind.ORDERED_FIELD]),
        )
    ]
    return "\n".join(lines)


def _search_examples() -> dict[str, dict[str, Any]]:
    found = {
        "user_id": 557408687,
        "org_id": 1001,
        "firstname": "Asha",
        "lastname": "Rao",
        "mobile": "919876532218",
        "email": "asha.rao@example.com",
        "external_id": "000003880203",
        "loyalty_points": 100,
        "lifetime_points": 100,
        "current_slab": "Base",
        "registered_on": "2024-08-01 07:28:32",
        "registered_by": "blr.koramangala.till001",
        "attributes": {"attribute": [{"name": "City_name", "value": "Bangalore"}]},
    }
    return {
        "found": {
            "summary": "q=firstname:STARTS:as&registered_date:RANGE:2024-08-01;2024-08-31, rows=10: one match",
            "value": search_document(1, False, 0, 10, [found]),
        },
        "none": {"summary": "q=mobile:EQUALS:919800000000: no match", "value": search_document(0, False, 0, 10, [])},
    }


def _search_operation() -> dict[str, Any]:
    examples = _search_examples()
    return {
        "tags": ["customers"],
        "operationId": "searchCustomers",
        "summary": "Search the org's customers by conditions on their attributes, a page at a time",
        "description": (
            "`q` holds one or more conditions joined by `&` (URL-encoded inside the value: `%26`; a `+` "
            "as `%2B`), each `ATTRIBUTE:OPERATOR:VALUE`, and all of them hold. EQUALS, STARTS, ENDS "
            "and IN ignore case, EXACT does not; LESS and GREATER are strict; RANGE `low;high` includes "
            "both; IN takes `a;b;c`. Values are read as customer/add reads them (a mobile in any usual "
            "form, an email in any case). `registered_date` is a day (`YYYY-MM-DD`) of the org's "
            "timezone; points and slab are of the default programme's membership; `registered_store` "
            f"is the store of the registering till. At most {MAX_CONDITIONS} conditions, values of at "
            f"most {MAX_VALUE} characters, an ENDS value at most {MAX_SUFFIX}; the same condition twice is "
            f"asked once. A condition that cannot be read is answered 400 naming it.\n\n"
            "Operators by attribute:\n\n" + _search_operators() + "\n\n"
            "Only customers of the caller's org are searched. Identifier and name equality and "
            "prefixes are served by indexes; ENDS, custom fields, points, slab, type and "
            f"registered_till read every customer of the org: at most {MAX_SCANNING} such conditions. "
            f"Newest registration first. Matches are counted up to {MAX_COUNTED:,} (`count_capped` says "
            f"there are more) and paged through that far. A search is answered within "
            "PATRON_SEARCH_TIMEOUT_SECONDS (3 s by default) or stopped with 504; a caller runs at most "
            "PATRON_SEARCHES_PER_CALLER searches at once (1), a worker PATRON_SEARCHES_PER_WORKER (4): "
            "beyond, 429 with Retry-After. Needs "
            "`customer` read (or write).\n\n" + _SUFFIX_NOTE.format(path="/v1.1/customer/search")
        ),
        "security": _CALLER_SECURITY,
        "parameters": [
            {
                "name": "q",
                "in": "query",
                "required": True,
                "description": "The conditions, `ATTRIBUTE:OPERATOR:VALUE` joined by `&`.",
                "schema": {"type": "string"},
                "examples": {
                    "prefix": {"value": "firstname:STARTS:as&registered_date:RANGE:2024-08-01;2024-08-31"},
                    "mobile": {"value": "mobile:EQUALS:+91 98765 32218"},
                    "custom": {"value": "City_name:IN:Bangalore;Pune&loyalty_points:GREATER:99"},
                },
            },
            {
                "name": "start",
                "in": "query",
                "description": "How many matches to skip.",
                "schema": {"type": "string", "pattern": "^[0-9]+$", "default": str(DEFAULT_START)},
            },
            {
                "name": "rows",
                "in": "query",
                "description": f"The page size, at most {MAX_ROWS}; 0 answers only the count.",
                "schema": {"type": "string", "pattern": "^[0-9]+$", "default": str(DEFAULT_ROWS)},
            },
            _param("format"),
            _param("attributionType"),
            _param("attributionCode"),
            _param("attributionTillLegacy"),
        ],
        "responses": {
            "200": {
                "description": "The count of every match and one page of them (none found is a 200 too).",
                "headers": {REQUEST_ID_HEADER: _REQUEST_ID},
                "content": {
                    "application/json": {"schema": _ref("SearchResponse"), "examples": examples},
                    "application/xml": {"schema": _ref("SearchResponse"), "examples": _as_xml(examples)},
                },
            },
            "400": _envelope_error(Code.INVALID_INPUT, '"loyalty_points:LESS:abc": abc is not a whole number'),
            "401": _envelope_error(Code.AUTHENTICATION_FAILED),
            "403": _envelope_error(Code.ACCESS_DENIED),
            "429": _retry_later(_envelope_error(Code.TOO_MANY_REQUESTS)),
            "498": _envelope_error(Code.TOKEN_EXPIRED),
            "503": _envelope_error(Code.SERVICE_UNAVAILABLE),
            "504": _envelope_error(Code.SEARCH_TIMED_OUT, "the search did not finish within 3 s and was stopped: narrow it"),
        },
    }


def _token_operation() -> dict[str, Any]:
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
                    "schema": _ref("TokenRequest"),
                    "example": {"key": "acme-backend", "secret": "a-long-random-secret"},
                }
            },
        },
        "responses": {
            "200": {
                "description": "A signed token and its lifetime.",
                "headers": {REQUEST_ID_HEADER: _REQUEST_ID},
                "content": {
                    "application/json": {
                        "schema": _ref("TokenResponse"),
                        "example": {"data": {"accessToken": "eyJhbGciOiJIUzI1NiJ9.…", "ttlSeconds": 3600}, "errors": None},
                    }
                },
            },
            "400": _gateway_error(Code.INVALID_INPUT),
            "401": _gateway_error(Code.AUTHENTICATION_FAILED, INVALID_CLIENT_MESSAGE, INVALID_CLIENT),
            "413": _gateway_error(Code.BODY_TOO_LARGE),
            "429": _retry_later(_gateway_error(Code.TOO_MANY_REQUESTS)),
            "501": _gateway_error(Code.NOT_CONFIGURED, OAUTH_NOT_CONFIGURED),
            "503": _gateway_error(Code.SERVICE_UNAVAILABLE),
        },
    }


def _audits_operation() -> dict[str, Any]:
    record = {
        "requestId": "5f0c1d2e3b4a49c8a7e6d5c4b3a29180",
        "entityType": "CUSTOMER",
        "entityId": 557408687,
        "createdOn": "2024-08-01 07:28:32",
        "updatedByMode": "API",
        "till": "blr.koramangala.till001",
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
                "updatedField": "firstname",
                "additionalFields": {"previousValue": "Old", "currentValue": "New"},
            }
        ],
    }
    return {
        "tags": ["audit"],
        "operationId": "listAudits",
        "summary": "A customer's audit records, newest first",
        "description": "Needs `audit` read.",
        "security": _CALLER_SECURITY,
        "parameters": [
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
            _param("attributionType"),
            _param("attributionCode"),
            _param("attributionTillLegacy"),
        ],
        "responses": {
            "200": {
                "description": "The records (an empty list for an unknown customer).",
                "headers": {REQUEST_ID_HEADER: _REQUEST_ID},
                "content": {
                    "application/json": {"schema": _ref("AuditsResponse"), "example": {"data": [record], "errors": None}}
                },
            },
            "400": _gateway_error(Code.INVALID_INPUT),
            "401": _gateway_error(Code.AUTHENTICATION_FAILED),
            "403": _gateway_error(Code.ACCESS_DENIED),
            "429": _retry_later(_gateway_error(Code.TOO_MANY_REQUESTS)),
            "498": _gateway_error(Code.TOKEN_EXPIRED),
            "503": _gateway_error(Code.SERVICE_UNAVAILABLE),
        },
    }


# The feed's example: events built by the domain (patron.events.build) for a sample org, in the
# envelope every sink sends (events.build.envelope), as a caller with and without customer read sees it.
_SAMPLE_ORG_ID = 100458


def _sample_events() -> list[StoredEvent]:
    org = OrgSettings.from_file(parse_org_document({
        "org": {"id": _SAMPLE_ORG_ID, "name": "Acme", "base_country": "IN", "timezone": "Asia/Kolkata"},
        "access_groups": [{"name": "pos", "customer": "write"}],
        "stores": [{"code": "blr.koramangala", "name": "Koramangala", "access_group": "pos",
                    "tills": [{"code": "blr.koramangala.till001", "name": "Till 1"}]}],
    }, stored=True))
    at = datetime(2024, 8, 1, 1, 58, 32)
    writer = event_bodies.Writer(org, "blr.koramangala.till001", None, at, "api")
    customer = Customer(
        org_id=_SAMPLE_ORG_ID, id=557408687, mobile="919876532218", email="asha.rao@example.com", external_id=None,
        firstname="Asha", lastname="Rao", type="LOYALTY", source="INSTORE", account_id=None, fraud_status="NONE",
        registered_on=at, updated_on=at, registered_till="blr.koramangala.till001",
        associated_with="blr.koramangala.till001", referral_code=None, custom_fields={"City_name": "Bangalore"},
    )
    moved = replace(customer, email="asha@example.org", lastname="Rao-Kumar")
    later = replace(writer, at=datetime(2024, 8, 1, 2, 4, 10))
    added = event_bodies.customer_added(customer, writer)
    updated = event_bodies.customer_updated(moved, [
        {"field": "email", "previous": customer.email, "current": moved.email},
        {"field": "lastname", "previous": customer.lastname, "current": moved.lastname},
    ], later)
    assert updated is not None
    return [
        StoredEvent(
            org_id=_SAMPLE_ORG_ID, position=position, event_id=event_id, customer_id=557408687, sequence=sequence,
            name=event.name.value, created_at=made.at, request_id=request_id, origin="api", console_user=None,
            data=event.data,
        )
        for position, sequence, event_id, event, made, request_id in (
            (4101, 1, "0b6f9a52-3c1e-4d4b-9a8e-2f7c1d5e6a90", added, writer, "5f0c1d2e3b4a49c8a7e6d5c4b3a29180"),
            (4102, 2, "7d2e4f18-9b3a-4c6d-8e1f-5a0b2c3d4e5f", updated, later, "9a8b7c6d5e4f40312a1b0c9d8e7f6a5b"),
        )
    ]


def _events_examples() -> dict[str, dict[str, Any]]:
    sample = _sample_events()
    page_next = cursor_text(_SAMPLE_ORG_ID, sample[-1].position)
    return {
        "withIdentifiers": {
            "summary": "A caller whose access group may also read customers: identifiers and names",
            "value": {"events": [event_bodies.envelope(event, pii=True) for event in sample], "next": page_next},
        },
        "thin": {
            "summary": "A caller with events read only: identifiers, names and identifier values null",
            "value": {"events": [event_bodies.envelope(event, pii=False) for event in sample], "next": page_next},
        },
        "caughtUp": {
            "summary": "Nothing after the cursor yet: the same cursor back, to poll again with",
            "value": {"events": [], "next": page_next},
        },
    }


def _json_error(code: Code, detail: str | None = None) -> dict[str, Any]:
    """A request-level failure of the event feed: the v1.1 envelope, in JSON only."""
    example = error_document(ApiError(code, detail=detail))
    return {
        "description": f"{MESSAGES[code]}: {REQUEST_CODE_WHEN[code]}.",
        "headers": {REQUEST_ID_HEADER: _REQUEST_ID},
        "content": {"application/json": {"schema": _ref("ErrorResponse"), "example": example}},
    }


def _events_operation() -> dict[str, Any]:
    expired = refusal(1, 4000, 4102, 30)
    assert expired is not None
    return {
        "tags": ["events"],
        "operationId": "readEvents",
        "summary": "The org's events after a cursor, oldest first: for CRM sync and for a new consumer to catch up",
        "description": (
            "The same events the org's webhooks and brokers receive (`customerAdded`, `customerUpdated`, "
            "`pointsIssued`, `requestUpdated`), each once in the org's stream, oldest first, each customer's in "
            "`sequence` order. Start without `after` (from the oldest event kept), then pass each answer's `next` "
            "as `after`: pages chain without gap or repeat, and an answer without events gives back the same "
            "cursor to poll again with. Only committed events appear, given their place in the stream by the "
            "relay (`patron relay`) within moments of their commit. A cursor is opaque text, valid for its org "
            "only.\n\n"
            "Events are kept CONF_EVENT_RETENTION_DAYS (30 by default) once every sink has had them: a cursor "
            "older than that is answered 410, never with a silent gap; start again without `after`.\n\n"
            "**Personal data**: identifiers (mobile, email, external id), names and the values of changed "
            "identifiers are sent only to a caller whose access group may also read customers (`customer` "
            "read or write). Any other caller gets the events thin, as a sink without `pii = true` does: those "
            "fields present but null, `customerId` and what changed still named.\n\n"
            "Needs `events` read (or write) in the caller's access group. Answers JSON only, its errors too "
            "(in the v1.1 `response.status` envelope), whatever Accept says; `format=xml` is refused."
        ),
        "security": _CALLER_SECURITY,
        "parameters": [
            {
                "name": "after",
                "in": "query",
                "description": "The `next` of an earlier answer; absent (or empty): from the oldest event kept.",
                "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,48}$"},
                "example": cursor_text(_SAMPLE_ORG_ID, 4100),
            },
            {
                "name": "limit",
                "in": "query",
                "description": f"At most this many events, 1 to {MAX_LIMIT}.",
                "schema": {"type": "string", "pattern": "^[0-9]+$", "default": str(DEFAULT_LIMIT)},
            },
            {
                "name": "format",
                "in": "query",
                "description": "Only `json` (the default); the feed has no XML form.",
                "schema": {"type": "string", "enum": ["json"]},
            },
            _param("attributionType"),
            _param("attributionCode"),
            _param("attributionTillLegacy"),
        ],
        "responses": {
            "200": {
                "description": "The events after the cursor (none is a 200 too), and the cursor to pass next.",
                "headers": {REQUEST_ID_HEADER: _REQUEST_ID},
                "content": {"application/json": {"schema": _ref("EventsResponse"), "examples": _events_examples()}},
            },
            "400": _json_error(Code.INVALID_INPUT, f"limit must be a whole number from 1 to {MAX_LIMIT} (default {DEFAULT_LIMIT})"),
            "401": _json_error(Code.AUTHENTICATION_FAILED),
            "403": _json_error(Code.ACCESS_DENIED),
            "410": _json_error(Code.CURSOR_EXPIRED, expired.detail),
            "429": _retry_later(_json_error(Code.TOO_MANY_REQUESTS)),
            "498": _json_error(Code.TOKEN_EXPIRED),
            "503": _json_error(Code.SERVICE_UNAVAILABLE),
        },
    }


def _probe(operation_id: str, summary: str, states: dict[str, tuple[str, str]]) -> dict[str, Any]:
    return {
        "tags": ["operations"],
        "operationId": operation_id,
        "summary": summary,
        "security": [],
        "responses": {
            status: {
                "description": description,
                "headers": {REQUEST_ID_HEADER: _REQUEST_ID},
                "content": {
                    "application/json": {
                        "schema": _ref("ProbeResponse"),
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


def build_document() -> dict[str, Any]:
    """The whole OpenAPI 3.1 document."""
    return {
        "openapi": "3.1.0",
        "info": {
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
                "own `item_status`.\n\n## Codes\n\n" + codes_markdown()
            ),
        },
        "tags": [
            {"name": "customers", "description": "Registration and look-up (the v1.1 API)."},
            {"name": "oauth", "description": "Tokens for API clients."},
            {"name": "audit", "description": "Who changed what, and when."},
            {"name": "events", "description": "What happened to the org's customers, as a feed to read."},
            {"name": "operations", "description": "Probes for load balancers and orchestrators."},
            {"name": "documentation", "description": "This document and its interactive page."},
        ],
        "paths": {
            "/v1.1/customer/add": {"post": _add_operation()},
            "/v1.1/customer/get": {"get": _get_operation()},
            "/v1.1/customer/search": {"get": _search_operation()},
            "/v1.1/customer/update": {"post": _update_operation()},
            "/v1.1/customer/update_identity": {"post": _update_identity_operation()},
            "/v3/oauth/token/generate": {"post": _token_operation()},
            "/api_gateway/v2/audits": {"get": _audits_operation()},
            "/v1.1/events": {"get": _events_operation()},
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
        },
        "components": {
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
            "parameters": _parameters(),
            "schemas": {**_request_schemas(), **answer_schemas()},
        },
    }


DOCUMENT: dict[str, Any] = build_document()
_DOCUMENT_JSON = orjson.dumps(DOCUMENT)

_DOCS_PAGE = f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Patron API</title>
  <link rel="stylesheet" href="{DOCS_ASSETS}/swagger-ui.css">
</head>
<body>
  <noscript>The interactive page needs JavaScript; the document itself is at <a href="/openapi.json">openapi.json</a>.</noscript>
  <div id="swagger-ui"></div>
  <script src="{DOCS_ASSETS}/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({{url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true, validatorUrl: null}});
  </script>
</body>
</html>
"""


async def openapi_document(request: Request) -> Response:
    return Response(_DOCUMENT_JSON, media_type="application/json")


async def docs_page(request: Request) -> Response:
    return HTMLResponse(_DOCS_PAGE)
