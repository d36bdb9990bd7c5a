"""The one table of request- and item-level codes and their exact messages."""

from enum import IntEnum


class Code(IntEnum):
    """Every code the v1.1 API answers with; the message lives in MESSAGES."""

    # Request level (also the HTTP status line).
    SUCCESS = 200
    PARTIAL_SUCCESS = 201
    ALL_FAILED = 500
    INVALID_INPUT = 400
    AUTHENTICATION_FAILED = 401
    ACCESS_DENIED = 403
    NOT_FOUND = 404
    METHOD_NOT_ALLOWED = 405
    # Answered by the connection itself (patron.api.server) when a request comes too slowly.
    REQUEST_TIMEOUT = 408
    # (Patron) GET /v1.1/events: the cursor is older than the org's event retention, so events
    # after it were removed; said rather than skipped (events.md §3).
    CURSOR_EXPIRED = 410
    BODY_TOO_LARGE = 413
    UNSUPPORTED_MEDIA_TYPE = 415
    TOO_MANY_REQUESTS = 429
    # Answered by the connection itself when a request head passes a PATRON_MAX_HEADER* limit.
    REQUEST_HEADER_FIELDS_TOO_LARGE = 431
    TOKEN_EXPIRED = 498
    # Never answered (the caller has gone): the status the request log shows for a body cut short.
    CLIENT_CLOSED_REQUEST = 499
    SERVICE_UNAVAILABLE = 503
    # A search that did not finish within PATRON_SEARCH_TIMEOUT_SECONDS: stopped, and said so.
    SEARCH_TIMED_OUT = 504
    # This server cannot do what was asked until its operator configures it (OAuth without
    # PATRON_SECRET_KEY): retrying does not help.
    NOT_CONFIGURED = 501

    # Item level: success, and warnings that ride on it.
    ITEM_OK = 1000
    INVALID_MOBILE = 1001
    INVALID_EMAIL = 1002
    INVALID_EXTERNAL_ID = 1003
    MOBILE_REQUIRED = 1006
    NO_VALID_IDENTIFIER = 1007
    POINTS_NOT_AWARDED = 1010
    CUSTOMER_NOT_FOUND = 1012
    INVALID_CUSTOM_FIELD = 1017
    INVALID_FIELD_VALUE = 1024
    REGISTRATION_DATE_OUT_OF_RANGE = 1034
    # customer/update_identity: the request is taken (success); `updated` says whether it applied.
    IDENTITY_CHANGE_REQUESTED = 1040
    # (Patron) customer/update_identity: the customer's identifier has another caller's pending
    # request, which only a caller with identity_review may supersede.
    PENDING_REQUEST_OF_ANOTHER_CALLER = 1041
    # (Patron) customer/update_identity: the caller has CONF_IDENTITY_CHANGE_PENDING_PER_CALLER
    # requests waiting for review already.
    TOO_MANY_PENDING_REQUESTS = 1042
    EMAIL_REQUIRED = 1039
    EXTERNAL_ID_REQUIRED = 1043
    NON_LOYALTY_WITHOUT_IDENTIFIER = 1045
    LOYALTY_TO_NON_LOYALTY = 1046
    PRIMARY_IDENTIFIER_MISMATCH = 1047
    BATCH_LIMIT_EXCEEDED = 1060
    INVALID_FRAUD_STATUS = 1061
    # (Patron) A field of the item holds a NUL character (U+0000): PostgreSQL cannot store one in
    # text, so no backend takes it.
    TEXT_WITH_NUL = 1098
    # Patron failed on this item itself (a fault, never the caller's input): the item alone fails,
    # nothing of it is written, and the log holds the request id with the cause.
    ITEM_NOT_PROCESSED = 1099
    REFERRER_NOT_FOUND = 1205
    PRIMARY_IDENTIFIER_NOT_UPDATABLE = 91005
    IDENTIFIER_UPDATE_NOT_ALLOWED = 91006
    IDENTIFIER_OCCUPIED = 91007
    INVALID_EXTENDED_FIELD = 91015
    INVALID_REGISTERED_TILL = 91020
    INVALID_ATTRIBUTION_TILL = 91021
    # (Patron) a new external id looks like another customer's but differs by a letter of another
    # script (docs/identity.md): written as sent, never merged, and `patron check` lists the pair.
    EXTERNAL_ID_LOOKS_ALIKE = 91030


# What is said of any text holding NUL (U+0000), which PostgreSQL cannot store: by the item error
# below, a search's refusal and the console's forms alike.
HOLDS_NUL = "holds a NUL character (U+0000), which is not allowed"


MESSAGES: dict[Code, str] = {
    Code.SUCCESS: "Success",
    Code.PARTIAL_SUCCESS: "Some requests have failed due to errors",
    Code.ALL_FAILED: "All requests have failed due to errors",
    Code.INVALID_INPUT: "Input is invalid, Please check request parameters or input xml/json",
    Code.AUTHENTICATION_FAILED: "Authentication failed. Please check username and password.",
    Code.ACCESS_DENIED: "Not authorized. Access is denied!",
    Code.NOT_FOUND: "Incorrect resource",
    Code.METHOD_NOT_ALLOWED: "Incorrect HTTP Method",
    Code.REQUEST_TIMEOUT: "Request timeout",
    Code.CURSOR_EXPIRED: (
        "The cursor is older than the retention of events: start again without after, or from a recent cursor"
    ),
    Code.BODY_TOO_LARGE: "Request body too large",
    Code.UNSUPPORTED_MEDIA_TYPE: "Unsupported media type",
    Code.TOO_MANY_REQUESTS: "Too many requests",
    Code.REQUEST_HEADER_FIELDS_TOO_LARGE: "Request header fields too large",
    Code.TOKEN_EXPIRED: "Token expired",
    Code.CLIENT_CLOSED_REQUEST: "The client closed the connection before its request was read",
    Code.SERVICE_UNAVAILABLE: "Service temporarily unavailable",
    Code.SEARCH_TIMED_OUT: "The search took too long and was stopped",
    Code.NOT_CONFIGURED: "Not configured on this server",
}

# Item-level errors: the item fails and nothing of it is written.
ITEM_ERRORS: dict[Code, str] = {
    Code.INVALID_MOBILE: "Unable to register. Invalid mobile number.",
    Code.INVALID_EMAIL: "Unable to register. Invalid email id.",
    Code.INVALID_EXTERNAL_ID: "Unable to register. Invalid external id.",
    Code.MOBILE_REQUIRED: "Unable to register. Mobile number is required.",
    Code.NO_VALID_IDENTIFIER: (
        "Error in customer registration: No Valid Mobile Number or External ID or Email provided."
        " Required for registration"
    ),
    Code.CUSTOMER_NOT_FOUND: (
        "Cannot find customer with the provided mobile number/external ID/e-mail ID."
    ),
    Code.REGISTRATION_DATE_OUT_OF_RANGE: (
        "Unable to register. Registration date is not within the allowed past or future date limit."
    ),
    Code.EMAIL_REQUIRED: "Unable to register. Email ID is required.",
    Code.EXTERNAL_ID_REQUIRED: "Unable to register. Customer's external id is required.",
    Code.NON_LOYALTY_WITHOUT_IDENTIFIER: "No valid identifier (mobile/email) passed for non-loyalty customer.",
    Code.LOYALTY_TO_NON_LOYALTY: "Conversion of loyalty customer to non-loyalty is not allowed.",
    Code.PRIMARY_IDENTIFIER_MISMATCH: "Customer's primary identifier not matching with other identifiers.",
    Code.BATCH_LIMIT_EXCEEDED: "Batch limit exceeded.",
    Code.TEXT_WITH_NUL: f"Unable to register. {{field}} {HOLDS_NUL}.",
    Code.ITEM_NOT_PROCESSED: (
        "Unable to register. This customer could not be processed; nothing of it was written."
        " Retry it, or report the request id."
    ),
}

# Item-level errors of customer/update_identity alone: what add and update answer as a warning
# (the identifier is ignored) fails a change of identifier. `{field}` as for WARNINGS.
IDENTITY_ERRORS: dict[Code, str] = {
    Code.IDENTIFIER_OCCUPIED: "{field} is already occupied by some other user",
    Code.PENDING_REQUEST_OF_ANOTHER_CALLER: (
        "{field} already has a change request of another caller waiting for review; a reviewer must decide it first"
    ),
    Code.TOO_MANY_PENDING_REQUESTS: (
        "Too many identity change requests of this caller are waiting for review; ask again once some are decided"
    ),
}

# Item-level successes: the base message of code 1000.
REGISTERED = "Customer registration successful"
UPDATED = "Customer successfully updated"
RETRIEVED = "Customer successfully retrieved"
# customer/update's message for 1000 (the API family's own spelling).
USER_UPDATED = "User Successfully Updated."
# customer/update_identity's message for 1040, and for 1000 when the change applied at once.
IDENTITY_CHANGE_TAKEN = "Customer Identity change request added successfully"

# Warnings: the item succeeds; the text is appended to its message. `{field}` is filled in
# with the field's display name ("Mobile", "Email", "External id", or a field name).
WARNINGS: dict[Code, str] = {
    Code.INVALID_MOBILE: "Mobile is invalid and is not the primary identifier, ignoring it",
    Code.INVALID_EMAIL: "Email is invalid and is not the primary identifier, ignoring it",
    Code.INVALID_EXTERNAL_ID: "External id is invalid and is not the primary identifier, ignoring it",
    Code.POINTS_NOT_AWARDED: "Unable to update loyalty points of the customer",
    Code.INVALID_CUSTOM_FIELD: "Provided Custom Field is invalid",
    Code.INVALID_FIELD_VALUE: "Invalid value for {field}, ignoring it",
    Code.INVALID_FRAUD_STATUS: "Invalid fraud status, ignoring it",
    Code.REFERRER_NOT_FOUND: "Unable to find referrer in campaign",
    Code.PRIMARY_IDENTIFIER_NOT_UPDATABLE: "{field} is primary identifier and cannot be updated",
    Code.IDENTIFIER_UPDATE_NOT_ALLOWED: "{field} update is not allowed",
    Code.IDENTIFIER_OCCUPIED: "{field} is already occupied by some other user, ignoring it",
    Code.INVALID_EXTENDED_FIELD: "Failed to update extended fields; or field {field} length too long",
    Code.INVALID_REGISTERED_TILL: "Invalid TILL passed for registration",
    Code.INVALID_ATTRIBUTION_TILL: "Invalid attribution TILL passed",
    Code.EXTERNAL_ID_LOOKS_ALIKE: "{field} looks like another customer's but has a letter of another script, check it",
}


# The OAuth gateway answers a wrong API-client key or secret with its own code.
INVALID_CLIENT = 320001
INVALID_CLIENT_MESSAGE = "Invalid client key and secret"


def request_message(code: Code) -> str:
    return MESSAGES[code]


def item_error_message(code: Code, field: str = "") -> str:
    """An item error's message, `{field}` filled in where it names one (as for WARNINGS)."""
    return ITEM_ERRORS[code].format(field=field)


def identity_error_message(code: Code, field: str) -> str:
    """An item error of customer/update_identity: its own (IDENTITY_ERRORS), else add's."""
    return IDENTITY_ERRORS[code].format(field=field) if code in IDENTITY_ERRORS else item_error_message(code, field)


def warning_text(code: Code, field: str = "") -> str:
    return WARNINGS[code].format(field=field)
