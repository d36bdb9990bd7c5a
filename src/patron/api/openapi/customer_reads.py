"""The operations that read customers: customer/get and customer/search."""

from __future__ import annotations

from typing import Any

from patron.api.customers import LOOKUP_KEYS
from patron.api.openapi import examples
from patron.api.openapi.parameters import CALLER_SECURITY, SUFFIX_NOTE, attribution, param
from patron.api.openapi.responses import batch_response, both_formats, common_failures, envelope_error
from patron.codes import Code
from patron.customers.search.query import ATTRIBUTES as SEARCH_ATTRIBUTES
from patron.customers.search.query import (
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


def get_operation() -> dict[str, Any]:
    found = examples.get_examples()
    return {
        "tags": ["customers"],
        "operationId": "getCustomers",
        "summary": "Read customers back by mobile, email, external_id or id",
        "description": (
            "Only customers of the caller's org are visible. Found: 1000; not found: 1012, echoing the "
            "value asked for. Needs `customer` read.\n\n" + SUFFIX_NOTE.format(path="/v1.1/customer/get")
        ),
        "security": CALLER_SECURITY,
        "parameters": [
            *(param(f"lookup_{key}") for key in LOOKUP_KEYS),
            param("format"),
            param("userId"),
            *attribution(),
        ],
        "responses": {
            "200": batch_response(Code.SUCCESS, "GetResponse", {"found": found["found"]}),
            "201": batch_response(Code.PARTIAL_SUCCESS, "GetResponse", {"oneOfTwoFound": found["oneOfTwoFound"]}),
            "500": batch_response(Code.ALL_FAILED, "GetResponse", {"noneFound": found["noneFound"]}, or_error=True),
            "400": envelope_error(Code.INVALID_INPUT, "give exactly one of mobile, email, external_id, id"),
            **common_failures(envelope_error),
        },
    }


def _search_operators() -> str:
    """Each attribute with the operators it takes, from the reader's own table (customers.search.query)."""
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


def _search_description() -> str:
    return (
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
        "`customer` read (or write).\n\n" + SUFFIX_NOTE.format(path="/v1.1/customer/search")
    )


def search_operation() -> dict[str, Any]:
    found = examples.search_examples()
    return {
        "tags": ["customers"],
        "operationId": "searchCustomers",
        "summary": "Search the org's customers by conditions on their attributes, a page at a time",
        "description": _search_description(),
        "security": CALLER_SECURITY,
        "parameters": [
            {
                "name": "q",
                "in": "query",
                "required": True,
                "description": "The conditions, `ATTRIBUTE:OPERATOR:VALUE` joined by `&`.",
                "schema": {"type": "string"},
                "examples": {
                    "prefix": {"value": examples.SEARCH_QUERY},
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
            param("format"),
            *attribution(),
        ],
        "responses": {
            "200": both_formats(
                "The count of every match and one page of them (none found is a 200 too).", "SearchResponse", found
            ),
            "400": envelope_error(Code.INVALID_INPUT, '"loyalty_points:LESS:abc": abc is not a whole number'),
            **common_failures(envelope_error),
            "504": envelope_error(Code.SEARCH_TIMED_OUT, "the search did not finish within 3 s and was stopped: narrow it"),
        },
    }
