"""What every answer must be however hostile the request: the envelope, never a traceback, and no
5xx but the documented ones (a batch whose every item failed, and 503)."""

from __future__ import annotations

from typing import Any
from xml.etree.ElementTree import fromstring

import httpx
import orjson

from patron.codes import Code

GATEWAY_PREFIXES = ("/v3/", "/api_gateway/")
# The one detail Patron gives when it failed itself: never expected, whatever the request.
INTERNAL_ERROR = "internal error"


def wire(app: Any) -> httpx.AsyncClient:
    """A client that sees what a caller sees: an unexpected failure arrives as the answer Patron
    sent, not as the exception the in-process transport would otherwise re-raise."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://patron.test")


def answer(response: httpx.Response) -> dict[str, Any]:
    """The answer's status block (or gateway document), once it is shown to be a proper answer."""
    assert "Traceback" not in response.text, response.text
    if response.request.url.path.startswith(GATEWAY_PREFIXES):
        document = orjson.loads(response.content)
        assert set(document) == {"data", "errors"}, document
        for error in document["errors"] or []:
            assert error["message"] != INTERNAL_ERROR, document
        assert response.status_code < 500 or response.status_code == Code.SERVICE_UNAVAILABLE, document
        return document
    if response.headers["content-type"].startswith("application/xml"):
        status = _xml_status(response.content)
    else:
        status = orjson.loads(response.content)["response"]["status"]
    assert status["code"] == response.status_code, (status, response.status_code)
    assert status.get("detail") != INTERNAL_ERROR, response.text
    if response.status_code >= 500:
        # 500 only as a batch outcome (it carries the items); else only 503.
        assert response.status_code in (Code.ALL_FAILED, Code.SERVICE_UNAVAILABLE), response.text
        if response.status_code == Code.ALL_FAILED:
            assert "total" in status, response.text
    return status


def _xml_status(body: bytes) -> dict[str, Any]:
    root = fromstring(body)  # raises on a body that is not well-formed
    assert root.tag == "response", body
    status = {child.tag: child.text for child in root.find("status")}
    status["code"] = int(status["code"])
    return status
