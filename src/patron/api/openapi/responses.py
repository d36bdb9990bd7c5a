"""The response half: components read from the answers' own types (api.answers), and the responses
operations share, each with an example Patron's own code renders."""

from __future__ import annotations

from typing import Any, cast

from patron.api import answers, xml
from patron.api.codec import error_document
from patron.api.openapi.codes import REQUEST_CODE_WHEN
from patron.api.openapi.schemas import component_schemas, ref
from patron.codes import MESSAGES, Code
from patron.errors import ApiError

REQUEST_ID_HEADER = "X-Cap-Requestid"
REQUEST_ID = {"$ref": "#/components/headers/RequestId"}
_RETRY_AFTER = {"description": "Whole seconds to wait before trying again.", "schema": {"type": "string", "pattern": "^[0-9]+$"}}


def answer_schemas() -> dict[str, Any]:
    """The response half of the components, read from the answers' own types (api.answers)."""
    return component_schemas(answers.DOCUMENTED)


def _when(code: Code, message: str | None = None) -> str:
    return f"{message or MESSAGES[code]}: {REQUEST_CODE_WHEN[code]}."


def as_xml(examples: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The same examples as Patron renders them in XML."""
    return {
        name: {**{k: v for k, v in example.items() if k != "value"}, "value": xml.render(example["value"]).decode()}
        for name, example in examples.items()
    }


def retry_later(response: dict[str, Any]) -> dict[str, Any]:
    """The response with its Retry-After header."""
    return {**response, "headers": {**response["headers"], "Retry-After": _RETRY_AFTER}}


def envelope_error(code: Code, detail: str | None = None, *, json_only: bool = False) -> dict[str, Any]:
    """A request-level failure in the v1.1 envelope: JSON and XML, or (the event feed) JSON only."""
    example = error_document(ApiError(code, detail=detail))
    content: dict[str, dict[str, Any]] = {"application/json": {"schema": ref("ErrorResponse"), "example": example}}
    if not json_only:
        rendered = xml.render(cast("dict[str, Any]", example)).decode()
        content["application/xml"] = {"schema": ref("ErrorResponse"), "example": rendered}
    return {"description": _when(code), "headers": {REQUEST_ID_HEADER: REQUEST_ID}, "content": content}


def gateway_error(code: Code, message: str | None = None, error_code: int | None = None) -> dict[str, Any]:
    """A request-level failure of the /v3/ and /api_gateway/ endpoints."""
    example = {"data": None, "errors": [{"code": error_code or int(code), "message": message or MESSAGES[code]}]}
    return {
        "description": _when(code, message),
        "headers": {REQUEST_ID_HEADER: REQUEST_ID},
        "content": {"application/json": {"schema": ref("GatewayErrorResponse"), "example": example}},
    }


def common_failures(failure: Any, *, too_large: bool = False) -> dict[str, Any]:
    """The failures every authenticated operation shares, each as `failure(code)` shapes it."""
    failures = {
        "401": failure(Code.AUTHENTICATION_FAILED),
        "403": failure(Code.ACCESS_DENIED),
        "429": retry_later(failure(Code.TOO_MANY_REQUESTS)),
        "498": failure(Code.TOKEN_EXPIRED),
        "503": failure(Code.SERVICE_UNAVAILABLE),
    }
    if too_large:
        failures["413"] = failure(Code.BODY_TOO_LARGE)
    return failures


def json_answer(description: str, schema: str, example: Any) -> dict[str, Any]:
    """A success answered in JSON alone, with its one example."""
    return {
        "description": description,
        "headers": {REQUEST_ID_HEADER: REQUEST_ID},
        "content": {"application/json": {"schema": ref(schema), "example": example}},
    }


def both_formats(description: str, schema: Any, examples: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A success answered in JSON or XML, with the same named examples in each."""
    shape = ref(schema) if isinstance(schema, str) else schema
    return {
        "description": description,
        "headers": {REQUEST_ID_HEADER: REQUEST_ID},
        "content": {
            "application/json": {"schema": shape, "examples": examples},
            "application/xml": {"schema": shape, "examples": as_xml(examples)},
        },
    }


def batch_response(code: Code, schema: str, examples: dict[str, dict[str, Any]], *, or_error: bool = False) -> dict[str, Any]:
    """A batch answer; `or_error`: the same status may also come without items (an unexpected failure)."""
    shape = {"oneOf": [ref(schema), ref("ErrorResponse")]} if or_error else ref(schema)
    return both_formats(_when(code), shape, examples)
