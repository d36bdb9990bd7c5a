"""The console's Events page in a real browser (Debian's chromium, driven by Playwright) against a real
`patron serve` and `patron relay --once` delivering to webhook endpoints on loopback that refuse,
fail or take the events: the sinks' health, a sink's dead letters, and their replay with a reason;
screenshotted (desktop and phone width, in var/screenshots/console/) and checked by axe-core."""

from __future__ import annotations

import base64
import hashlib
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from support.processes import ROOT, VENV_BIN, Server, free_port, served, sqlite_env
from test_console_browser import DESKTOP, PHONE, TILLS, Visit, serious_violations

RENDERED = "the console's Events page"
SECRET_ENV = "PATRON_TEST_BROWSER_HOOK_SECRET"
SECRET = "whsec_" + base64.b64encode(b"the-console-events-page-hook-key").decode()
# What each endpoint answers: every event refused (dead letters), failing, taken.
ANSWERS = {"crm": 422, "warehouse": 503, "analytics": 200}


class Endpoints:
    """Webhook endpoints on loopback, one path per sink, each answering as ANSWERS (or `answers`) says."""

    def __init__(self) -> None:
        self.answers = dict(ANSWERS)
        answers = self.answers

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status = answers.get(self.path.strip("/"), 404)
                body = b'{"error": "schema mismatch: loyaltyType"}' if status == 422 else b"{}"
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, sink: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/{sink}"


def org_file_text(endpoints: Endpoints) -> str:
    """tests/orgs/retail.toml, its admin group (priya) with events write, and three webhooks."""
    text = (ROOT / "tests" / "orgs" / "retail.toml").read_text()
    admin = 'name = "admin"\ncustomer = "write"\n'
    assert admin in text
    text = text.replace(admin, admin + 'events = "write"\n')
    for sink in ANSWERS:
        text += (f'\n[[webhooks]]\nname = "{sink}"\nurl = "{endpoints.url(sink)}"\nsecret_env = "{SECRET_ENV}"\n'
                 "allow_private = true\n")
    return text


def _basic(till: str) -> dict[str, str]:
    md5 = hashlib.md5(TILLS[till].encode()).hexdigest()
    return {"Authorization": "Basic " + base64.b64encode(f"{till}:{md5}".encode()).decode()}


def relay_once(env: dict[str, str]) -> None:
    subprocess.run([str(VENV_BIN / "patron"), "relay", "--once"], env=env, cwd=ROOT, check=True, capture_output=True,
                   timeout=120)


@pytest.fixture(scope="module")
def endpoints() -> Iterator[Endpoints]:
    running = Endpoints()
    running.thread.start()
    try:
        yield running
    finally:
        running.server.shutdown()
        running.server.server_close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, endpoints: Endpoints) -> Iterator[tuple[Server, dict[str, str]]]:
    tmp = tmp_path_factory.mktemp("console-events-browser")
    env = {**sqlite_env(tmp), SECRET_ENV: SECRET}
    org_file = tmp / "retail-events.toml"
    org_file.write_text(org_file_text(endpoints))
    subprocess.run([str(VENV_BIN / "patron"), "org", "apply", str(org_file)], env=env, cwd=ROOT, check=True,
                   capture_output=True, timeout=60)
    with served(tmp, "console-events", env) as running:
        with httpx.Client(base_url=running.base, timeout=30) as client:
            for index, (first, last) in enumerate([("Asha", "Rao"), ("Vikram", "Shah"), ("Meena", "Iyer")]):
                customer = {"mobile": f"91987651{index:04d}", "firstname": first, "lastname": last}
                response = client.post("/v1.1/customer/add", json={"root": {"customer": [customer]}},
                                       headers=_basic("till.one"))
                assert response.status_code == 200, response.text
        relay_once(env)
        yield running, env


def test_an_operator_sees_the_sinks_health_and_replays_a_sinks_dead_letters_with_a_reason(server, browser, endpoints):
    running, env = server
    visit = Visit(browser, running, DESKTOP)
    page = visit.page
    visit.sign_in("priya")
    page.get_by_role("link", name="Events").click()
    page.get_by_role("heading", name="Event deliveries").wait_for()
    sinks = page.get_by_role("table").first
    assert "Failing" in sinks.get_by_role("row", name="warehouse").inner_text()
    assert "OK" in sinks.get_by_role("row", name="analytics").inner_text()
    crm = sinks.get_by_role("row", name="crm")
    assert "HTTP 422" in crm.inner_text()
    visit.shoot("events")
    problems = {"events": serious_violations(page)}

    crm.get_by_role("link", name="crm").click()
    page.get_by_role("heading", name="Dead letters").wait_for()
    dead = page.locator("section", has=page.get_by_role("heading", name="Dead letters"))
    assert "6 events given up" in dead.inner_text()
    assert dead.locator('a[href^="/console/customers/"]').count() == 6
    visit.shoot("event-sink")
    problems["sink"] = serious_violations(page)

    # The CRM is fixed: its dead letters go back, with the reason on record.
    endpoints.answers["crm"] = 200
    page.get_by_label("All 6 dead letters").check()
    page.get_by_label("Reason").fill("CRM accepts loyaltyType since its release 4.2")
    page.get_by_role("button", name="Send again").click()
    status = page.get_by_role("status")
    status.wait_for()
    assert "6 events put back in the queue of crm, due now." in status.inner_text()
    replays = page.locator("section", has=page.get_by_role("heading", name="Recent replays"))
    assert "CRM accepts loyaltyType since its release 4.2" in replays.inner_text()
    assert "console:priya" in replays.inner_text()
    visit.shoot("event-sink-replayed")
    relay_once(env)
    page.reload()
    assert "None: no event was given up." in dead.inner_text()
    visit.close()

    phone = Visit(browser, running, PHONE)
    phone.sign_in("priya")
    phone.go("/console/events/warehouse")
    phone.shoot("event-sink-phone")
    problems["sink (phone)"] = serious_violations(phone.page)
    assert phone.page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    phone.close()
    assert {name: found for name, found in problems.items() if found} == {}

