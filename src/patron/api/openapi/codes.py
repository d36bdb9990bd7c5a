"""The table of codes: when each request-level code is answered, and every code with its exact
message as Markdown, for the document's description and docs/codes.md alike."""

from __future__ import annotations

from patron.codes import (
    IDENTITY_CHANGE_TAKEN,
    IDENTITY_ERRORS,
    INVALID_CLIENT,
    INVALID_CLIENT_MESSAGE,
    ITEM_ERRORS,
    MESSAGES,
    REGISTERED,
    RETRIEVED,
    UPDATED,
    USER_UPDATED,
    WARNINGS,
    Code,
)

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
