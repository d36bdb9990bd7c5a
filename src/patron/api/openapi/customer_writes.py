"""The operations that write customers: customer/add, customer/update and customer/update_identity."""

from __future__ import annotations

from typing import Any

from patron.api import xml
from patron.api.openapi import examples, samples
from patron.api.openapi.parameters import CALLER_SECURITY, SUFFIX_NOTE, write_parameters
from patron.api.openapi.responses import batch_response, common_failures, envelope_error
from patron.api.openapi.schemas import ref
from patron.codes import Code

# The list fields whose XML form wraps each entry in an element of its own.
_XML_ENTRIES = {"commChannels": "commChannel"}


def xml_body(items: list[Any]) -> str:
    """A JSON request's items as the same request in XML."""
    customers = [
        {key: {_XML_ENTRIES[key]: value} if key in _XML_ENTRIES else value for key, value in item.items()}
        for item in items
    ]
    return xml.render({"root": {"customer": customers}}).decode()


def _write_failures(invalid: str) -> dict[str, Any]:
    """The request-level failures of a POST with customers in its body; `invalid`: its 400's detail."""
    return {
        "400": envelope_error(Code.INVALID_INPUT, invalid),
        **common_failures(envelope_error),
        "413": envelope_error(Code.BODY_TOO_LARGE, "the limit is 1048576 bytes"),
        "415": envelope_error(Code.UNSUPPORTED_MEDIA_TYPE, "Content-Type text/plain is neither JSON nor XML"),
    }


def _body(schema: str, json_examples: dict[str, Any], xml_example: str) -> dict[str, Any]:
    return {
        "required": True,
        "content": {
            "application/json": {"schema": ref(schema), "examples": json_examples},
            "application/xml": {"schema": ref(schema), "example": xml_example},
        },
    }


def _outcomes(schema: str, answered: dict[str, dict[str, Any]], chosen: tuple[tuple[str, ...], ...]) -> dict[str, Any]:
    """The 200, 201 and 500 of a batch, each with its examples."""
    success, partial, failed = ({name: answered[name] for name in names} for names in chosen)
    return {
        "200": batch_response(Code.SUCCESS, schema, success),
        "201": batch_response(Code.PARTIAL_SUCCESS, schema, partial),
        "500": batch_response(Code.ALL_FAILED, schema, failed, or_error=True),
    }


def add_operation() -> dict[str, Any]:
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
            "otherwise.\n\n" + SUFFIX_NOTE.format(path="/v1.1/customer/add")
        ),
        "security": CALLER_SECURITY,
        "parameters": write_parameters(),
        "requestBody": _body("AddRequest", examples.add_requests(), xml_body([samples.ASHA_ITEM])),
        "responses": {
            **_outcomes(
                "AddResponse", examples.add_examples(),
                (("withMobileAndEmail", "withExternalId"), ("someFailed",), ("allFailed",)),
            ),
            **_write_failures("malformed JSON at line 6, column 17: unexpected character, expected ',' or '}'"),
        },
    }


def update_operation() -> dict[str, Any]:
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
            "write.\n\n" + SUFFIX_NOTE.format(path="/v1.1/customer/update")
        ),
        "security": CALLER_SECURITY,
        "parameters": write_parameters(),
        "requestBody": _body(
            "UpdateRequest",
            {"asha": {"summary": "Asha's new last name and city", "value": {"root": {"customer": samples.ASHA_UPDATE_ITEM}}}},
            xml_body([samples.ASHA_UPDATE_ITEM]),
        ),
        "responses": {
            **_outcomes("UpdateResponse", examples.update_examples(), (("updated",), ("secondRefused",), ("notFound",))),
            **_write_failures("the body must hold root.customer: one customer or a list of them"),
        },
    }


_IDENTITY_DESCRIPTION = (
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
)


def update_identity_operation() -> dict[str, Any]:
    return {
        "tags": ["customers"],
        "operationId": "updateCustomerIdentity",
        "summary": "Change customers' identifiers (the primary one included), through review",
        "description": _IDENTITY_DESCRIPTION + SUFFIX_NOTE.format(path="/v1.1/customer/update_identity"),
        "security": CALLER_SECURITY,
        "parameters": write_parameters(),
        "requestBody": _body(
            "UpdateIdentityRequest", examples.identity_requests(), xml_body([samples.MOBILE_CHANGE])
        ),
        "responses": {
            **_outcomes(
                "IdentityResponse", examples.identity_examples(), (("pending", "applied"), ("oneOccupied",), ("notFound", "refused"))
            ),
            **_write_failures("the body must hold root.customer: one customer or a list of them"),
        },
    }
