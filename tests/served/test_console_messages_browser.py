"""The console's result messages and people's words in a real browser (Debian's chromium) against a
real `patron serve`, on SQLite and PostgreSQL (issue 30, items 2 and 7): a value not saved is amber,
named with its value and rule, its field marked in the form shown again; all saved is green; a
refused decision is red; the customer's page shows labels, a grouped mobile, till names and
"never". Screenshots in var/screenshots/console/ (messages-*.png)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import subprocess
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from support.backends import PG_ADMIN_DSN, REQUIRE_PG, admin, pg_reachable
from support.processes import ROOT, VENV_BIN, Server, served, sqlite_env
from test_console_browser import SCREENSHOTS, Visit, serious_violations

RENDERED = "the console's messages"
# retail.toml's org with a labelled pincode of six digits.
ORG_FILE = (ROOT / "tests" / "orgs" / "retail.toml").read_text() + """
[[custom_fields]]
name = "pincode"
label = "PIN code"
type = "string"
max_length = 6
regex = "^[0-9]{6}$"
"""
MOBILE = "919876501234"
AMBER, RED, GREEN = "rgb(255, 251, 235)", "rgb(254, 242, 242)", "rgb(236, 253, 245)"


def _aside(call: Any, *args: Any) -> Any:
    # Playwright's sync API keeps an event loop running in this thread: asyncio.run in another.
    with ThreadPoolExecutor(1) as aside:
        return aside.submit(call, *args).result()


def _admin_aside(statement: str) -> None:
    _aside(lambda: asyncio.run(admin(statement)))


def _database(kind: str, tmp: Path) -> Iterator[dict[str, str]]:
    if kind == "sqlite":
        yield sqlite_env(tmp)
        return
    problem = _aside(pg_reachable)
    if problem:
        if REQUIRE_PG:
            pytest.fail(f"PostgreSQL is required (PATRON_TEST_REQUIRE_PG=1) but unreachable: {problem}")
        pytest.skip(f"no PostgreSQL at {PG_ADMIN_DSN} ({problem})")
    name = f"patron_test_{uuid.uuid4().hex[:12]}"
    _admin_aside(f'CREATE DATABASE "{name}"')
    env = {
        **os.environ,
        "PATRON_DATABASE_URL": PG_ADMIN_DSN.rsplit("/", 1)[0] + f"/{name}",
        "PATRON_SECRET_KEY": "served-test-secret-key-" + "k" * 32,
        "PATRON_LOG_FORMAT": "json",
        "PATRON_METRICS_DIR": str(tmp / "metrics"),
    }
    try:
        subprocess.run([str(VENV_BIN / "patron"), "db", "upgrade"], env=env, cwd=ROOT, check=True, capture_output=True,
                       timeout=60)
        yield env
    finally:
        _admin_aside(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp(f"console-messages-{request.param}")
    for env in _database(request.param, tmp):
        org_file = tmp / "org.toml"
        org_file.write_text(ORG_FILE)
        subprocess.run([str(VENV_BIN / "patron"), "org", "apply", str(org_file)], env=env, cwd=ROOT, check=True,
                       capture_output=True, timeout=60)
        with served(tmp, "console", env) as running:
            running.kind = request.param  # type: ignore[attr-defined]
            yield running


def a_customer(server: Server, mobile: str) -> int:
    customer = {
        "mobile": mobile, "firstname": "Asha", "lastname": "Rao", "email": f"asha.{mobile[-4:]}@example.com",
        "custom_fields": {"field": [{"name": "pincode", "value": "560001"}, {"name": "City_name", "value": "Pune"}]},
    }
    basic = "Basic " + base64.b64encode(f"till.one:{hashlib.md5(b'Pass123').hexdigest()}".encode()).decode()
    response = httpx.post(
        f"{server.base}/v1.1/customer/add", json={"root": {"customer": [customer]}}, params={"user_id": "true"},
        headers={"Authorization": basic}, timeout=30,
    )
    assert response.status_code == 200, response.text
    return int(response.json()["response"]["customers"]["customer"][0]["user_id"])


def background(locator: Any) -> str:
    return str(locator.evaluate("e => getComputedStyle(e).backgroundColor"))


def test_a_value_not_saved_is_amber_with_its_field_marked_and_all_saved_is_green(server, browser):
    customer = a_customer(server, MOBILE)
    visit = Visit(browser, server, {"width": 1280, "height": 900})
    page = visit.page
    visit.sign_in("ravi")
    visit.go(f"/console/customers/{customer}")
    # The customer's page in people's words.
    profile = page.locator("section", has_text="Identifiers").first.inner_text()
    assert "+91 98765 01234" in profile and MOBILE not in profile
    assert "Till One (till.one), Store One" in page.locator("section", has_text="Profile").first.inner_text()
    assert "never" in page.locator("section", has_text="Memberships").first.inner_text()
    assert page.get_by_label("PIN code").input_value() == "560001"
    assert page.get_by_label("City name").input_value() == "Pune"

    page.get_by_label("First name").fill("Ashwini")
    page.get_by_label("PIN code").fill("56001x")
    page.locator("#profile-reason").fill("Customer called in")
    page.get_by_role("button", name="Save changes").click()
    message = page.locator("div.flash")
    message.wait_for()
    assert background(message) == AMBER
    text = message.inner_text()
    assert "Saved: First name." in text
    assert "PIN code was not saved: “56001x” is not text of at most 6 characters matching ^[0-9]{6}$" in text
    assert "User Successfully Updated.," not in text
    field = page.get_by_label("PIN code")
    assert field.input_value() == "56001x" and field.get_attribute("aria-invalid") == "true"
    assert "it keeps “560001”" in page.locator(f"#{field.get_attribute('id')}-warning").inner_text()
    assert page.get_by_label("First name").input_value() == "Ashwini"
    visit.shoot(f"messages-not-saved-{server.kind}")
    assert serious_violations(page) == []

    field.fill("560002")
    page.get_by_role("button", name="Save changes").click()
    page.wait_for_url(f"{server.base}/console/customers/{customer}")
    message = page.get_by_role("status")
    assert background(message) == GREEN
    assert message.inner_text() == "User Successfully Updated. Saved: PIN code."
    assert page.get_by_label("PIN code").get_attribute("aria-invalid") is None
    visit.shoot(f"messages-saved-{server.kind}")
    visit.close()


def test_a_decision_refused_is_red(server, browser):
    customer = a_customer(server, "919876501299")
    visit = Visit(browser, server, {"width": 1280, "height": 900})
    page = visit.page
    visit.sign_in("ravi")
    visit.go(f"/console/customers/{customer}")
    page.get_by_label("Identifier", exact=True).select_option("email")
    page.get_by_label("New value", exact=True).fill(f"asha.new.{customer}@example.com")
    page.locator("#identity-reason").fill("Customer asked by e-mail")
    page.get_by_role("button", name="Request the change").click()
    assert background(page.get_by_role("status")) == GREEN
    visit.sign_out()

    # A reviewer with the queue open in two tabs rejects in one and then approves in the other.
    visit.sign_in("priya")
    visit.go("/console/identity-requests")
    other = visit.context.new_page()
    other.route("**/*", visit._only_patron)
    other.goto(f"{server.base}/console/identity-requests")
    card = page.locator("li.card", has_text=f"asha.new.{customer}@example.com")
    card.get_by_label("Reason for the decision").fill("Not the customer's address")
    card.get_by_role("button", name="Reject").click()
    assert background(page.get_by_role("status")) == GREEN
    late = other.locator("li.card", has_text=f"asha.new.{customer}@example.com")
    late.get_by_label("Reason for the decision").fill("Checked")
    late.get_by_role("button", name="Approve").click()
    alert = other.get_by_role("alert")
    alert.wait_for()
    assert background(alert) == RED
    assert "was not decided" in alert.inner_text() and "REJECTED, not PENDING" in alert.inner_text()
    other.screenshot(path=str(SCREENSHOTS / f"messages-refused-{server.kind}.png"), full_page=True)
    assert serious_violations(other) == []
    visit.close()
