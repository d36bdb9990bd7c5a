"""The console's forms as a hostile browser sends them (issue 29): a body larger than any form
is refused on the console's own page, on every backend and through a real `patron serve`."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from support.api import Org
from patron.console.web import MAX_FORM_BYTES, SECURITY_HEADERS
from support.processes import Server, served, sqlite_env
from test_console import a_customer

TOO_LARGE = "The form is larger than 64 KiB"


def a_form_over_the_limit(token: str = "") -> bytes:
    """A well-formed form, one byte over MAX_FORM_BYTES."""
    start = f"csrf_token={token}&reason=".encode()
    return start + b"r" * (MAX_FORM_BYTES + 1 - len(start))


def assert_console_refusal(response: httpx.Response, status: int, text: str) -> None:
    assert response.status_code == status, response.text[:500]
    assert response.headers["content-type"].startswith("text/html")
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value, name
    assert text in response.text
    assert "Traceback" not in response.text


async def test_a_sign_in_form_over_64_kib_is_refused_413_on_the_consoles_page(browser):
    response = await browser.http.post(
        "/console/login", content=a_form_over_the_limit(), headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert_console_refusal(response, 413, TOO_LARGE)
    assert "<title>Form too large" in response.text


async def test_a_form_over_64_kib_sent_without_its_length_is_refused_as_it_passes_the_limit(browser):
    async def chunks() -> AsyncIterator[bytes]:
        body = a_form_over_the_limit()
        for at in range(0, len(body), 8192):
            yield body[at : at + 8192]

    response = await browser.http.post(
        "/console/login", content=chunks(), headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert "content-length" not in response.request.headers
    assert_console_refusal(response, 413, TOO_LARGE)


async def test_a_form_of_64_kib_is_read(browser, org):
    login = org.console_user("priya")
    form = await browser.http.get("/console/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
    start = f"csrf_token={token}&login={login}&password=wrong&next=/console/".encode()
    body = start + b"x" * (MAX_FORM_BYTES - len(start))
    response = await browser.http.post(
        "/console/login", content=body, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert_console_refusal(response, 401, "The login or password is not right.")


@pytest.mark.parametrize("form", ["logout", "profile", "identity", "decision"])
async def test_every_form_of_a_signed_in_user_over_64_kib_is_refused_413_on_the_consoles_page(browser, org, form):
    customer = await a_customer(org)
    await browser.as_user(org, "priya")
    path = {
        "logout": "/console/logout",
        "profile": f"/console/customers/{customer}/profile",
        "identity": f"/console/customers/{customer}/identity",
        "decision": "/console/identity-requests/1/decision",
    }[form]
    response = await browser.http.post(
        path, content=a_form_over_the_limit(await browser.csrf()),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_console_refusal(response, 413, TOO_LARGE)
    # Signed in: the page is the console's, with its navigation.
    assert 'action="/console/logout"' in response.text
    # The session is left as it was.
    assert (await browser.http.get("/console/")).status_code == 200


# --- through a real server: the answer, and what the log says ------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("console-forms")
    with served(tmp, "console-forms", sqlite_env(tmp)) as running:
        yield running


def test_a_served_sign_in_form_over_64_kib_is_413_with_one_log_line_and_no_traceback(server):
    with httpx.Client(base_url=server.base) as client:
        logged_before = server.log.read_text()
        for _ in range(3):
            response = client.post(
                "/console/login", content=a_form_over_the_limit(),
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
            assert_console_refusal(response, 413, TOO_LARGE)
        # The connection is still good for the next request.
        assert client.get("/console/login").status_code == 200
    logged = server.log.read_text()[len(logged_before) :]
    assert "Traceback" not in logged
    # Request lines only, one each: no error, no warning beside them.
    lines = [json.loads(line) for line in logged.splitlines()]
    assert all("method" in line and line["level"] == "info" for line in lines), lines
    refused = [line for line in lines if line["path"] == "/console/login" and line["status"] == 413]
    assert len(refused) == 3
