"""The member-care console as a browser uses it over HTTP: sign-ins, CSRF tokens, forms."""

from __future__ import annotations

import re

import httpx

from support.api import Org


class Console:
    """A browser on the console: its own cookie jar, from an address of its own."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.http = client

    async def sign_in(self, login: str, password: str, next_page: str | None = None) -> httpx.Response:
        form = await self.http.get("/console/login", params={"next": next_page} if next_page else None)
        token = csrf_of(form.text)
        data = {"login": login, "password": password, "csrf_token": token}
        if next_page:
            data["next"] = next_page
        return await self.http.post("/console/login", data=data)

    async def as_user(self, org: Org, who: str) -> httpx.Response:
        login = org.console_user(who)
        response = await self.sign_in(login, org.passwords[login])
        assert response.status_code == 303, response.text
        return response

    async def csrf(self, path: str = "/console/") -> str:
        return csrf_of((await self.http.get(path)).text)

    async def post(self, path: str, data: dict[str, str], token_from: str = "/console/") -> httpx.Response:
        return await self.http.post(path, data={"csrf_token": await self.csrf(token_from), **data})


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, html[:2000]
    return found.group(1)
