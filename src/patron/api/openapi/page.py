"""Serving the document: /openapi.json, and /docs, Swagger UI from Patron's own files."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib.resources import files
from pathlib import Path
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

# Swagger UI's own files, as the swagger-ui-py package ships them: served by Patron itself at
# DOCS_ASSETS, so that /docs works on a machine without internet.
SWAGGER_UI_FILES = Path(str(files("swagger_ui").joinpath("static")))
DOCS_ASSETS = "/docs/assets"

# The page opens on the operations, listed and folded, without the schemas' section below them
# (each operation shows its own schemas and examples).
_UI_CONFIG = {
    "url": "/openapi.json",
    "dom_id": "#swagger-ui",
    "deepLinking": True,
    "validatorUrl": None,
    "docExpansion": "list",
    "defaultModelsExpandDepth": -1,
    "defaultModelExpandDepth": 2,
    "defaultModelRendering": "example",
    "displayRequestDuration": True,
}

_PAGE = f"""<!doctype html>
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
    window.ui = SwaggerUIBundle({orjson.dumps(_UI_CONFIG).decode()});
  </script>
</body>
</html>
"""


Handler = Callable[[Request], Awaitable[Response]]


def document_handlers(document: dict[str, Any]) -> tuple[Handler, Handler]:
    """The handlers of /openapi.json (the document, encoded once) and /docs."""
    encoded = orjson.dumps(document)

    async def openapi_document(request: Request) -> Response:
        return Response(encoded, media_type="application/json")

    async def docs_page(request: Request) -> Response:
        return HTMLResponse(_PAGE)

    return openapi_document, docs_page
