"""ApiError: a request-level failure that carries its own code, and so its HTTP status, at any door."""

from __future__ import annotations

from patron.codes import Code


class ApiError(Exception):
    """Answered in the envelope with `code` as both the request code and the HTTP status."""

    def __init__(self, code: Code, detail: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail or code.name)
        self.code = code
        self.detail = detail
        self.headers = headers or {}
