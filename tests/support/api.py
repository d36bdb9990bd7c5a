"""Calling the API as a test org's till: an applied org, fresh mobiles, an answer's items."""

from __future__ import annotations

import base64
import hashlib
import itertools
import uuid
from typing import Any

import httpx
import orjson

from patron.orgs.policy import OrgFile

# The key the contract's settings sign tokens with.
SECRET_KEY = "test-secret-key-that-is-long-enough-for-hs256"


class Org:
    """An applied org of a test, with helpers that call the API as one of its tills."""

    def __init__(self, http: httpx.AsyncClient, org_file: OrgFile, passwords: dict[str, str], engine: Any) -> None:
        self.http = http
        self.file = org_file
        self.id = org_file.org.id
        self.passwords = passwords
        self.engine = engine

    def till(self, index: int = 0) -> str:
        return [t.code for s in self.file.stores for t in s.tills][index]

    def till_named(self, suffix: str) -> str:
        return next(t.code for s in self.file.stores for t in s.tills if t.code.endswith(suffix))

    def console_user(self, prefix: str) -> str:
        """The login of a console user of this org, by the login the org file gives it (priya, ravi, meera)."""
        return next(u.login for u in self.file.console_users if u.login.startswith(f"{prefix}."))

    def basic(self, till: str | None = None, password: str | None = None) -> dict[str, str]:
        till = till or self.till()
        md5 = hashlib.md5((password or self.passwords[till]).encode()).hexdigest()
        return {"Authorization": "Basic " + base64.b64encode(f"{till}:{md5}".encode()).decode()}

    async def add(
        self, *customers: dict[str, Any], till: str | None = None, headers: dict[str, str] | None = None, **params: Any
    ) -> httpx.Response:
        body = {"root": {"customer": list(customers)}}
        return await self.http.post(
            "/v1.1/customer/add",
            content=orjson.dumps(body),
            params=params,
            headers={"Content-Type": "application/json", **self.basic(till), **(headers or {})},
        )

    async def get(self, till: str | None = None, **params: Any) -> httpx.Response:
        return await self.http.get("/v1.1/customer/get", params=params, headers=self.basic(till))


_mobiles = itertools.count(int(uuid.uuid4().int % 9_000_000))


def new_mobile() -> str:
    """A valid Indian mobile that no other test uses in this session."""
    return f"9198{next(_mobiles) % 100_000_000:08d}"


def item(response: httpx.Response, index: int = 0) -> dict[str, Any]:
    return response.json()["response"]["customers"]["customer"][index]
