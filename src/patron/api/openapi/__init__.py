"""The OpenAPI 3.1 description of Patron's HTTP API, and the two pages that serve it: request schemas
read from the items the domain declares (customers.inputs), responses from the answers' types
(api.answers), examples made by Patron's own reader and presenters from sample customers (samples)."""

from __future__ import annotations

from typing import Any

from patron.api.openapi.codes import codes_markdown
from patron.api.openapi.document import build_document
from patron.api.openapi.page import DOCS_ASSETS, SWAGGER_UI_FILES, document_handlers
from patron.api.openapi.responses import answer_schemas

DOCUMENT: dict[str, Any] = build_document()
openapi_document, docs_page = document_handlers(DOCUMENT)

__all__ = [
    "DOCS_ASSETS",
    "DOCUMENT",
    "SWAGGER_UI_FILES",
    "answer_schemas",
    "build_document",
    "codes_markdown",
    "docs_page",
    "openapi_document",
]
