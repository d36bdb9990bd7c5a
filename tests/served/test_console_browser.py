"""The member-care console in a real browser (Debian's chromium, driven by Playwright) against a
real `patron serve`: sign in, search, open a customer, request an identity change, approve it as
the reviewer and find it in the timeline; every main page screenshotted (desktop and phone width,
in var/screenshots/console/) and checked by axe-core for serious or critical violations."""

from __future__ import annotations

import base64
import hashlib
import subprocess
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from support.processes import ROOT, VENV_BIN, Server, served, sqlite_env
from support.processes import SCREENSHOTS as SCREENSHOT_ROOT

RENDERED = "the console"
SCREENSHOTS = SCREENSHOT_ROOT / "console"
ORG_FILE = ROOT / "tests" / "orgs" / "retail.toml"
PASSWORDS = {"priya": "priya-passphrase", "ravi": "ravi-passphrase", "meera": "meera-passphrase"}
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
TILLS = {"till.one": "Pass123", "till.two": "Pass456"}


def _basic(till: str) -> dict[str, str]:
    md5 = hashlib.md5(TILLS[till].encode()).hexdigest()
    return {"Authorization": "Basic " + base64.b64encode(f"{till}:{md5}".encode()).decode()}


def _seed(base: str) -> None:
    """Customers over the last weeks, from two tills and several sources, a few with warnings."""
    now = datetime.now()
    names = ["Asha Rao", "Vikram Shah", "Meena Iyer", "Rahul Nair", "Divya Menon", "Arjun Das", "Kavya Pillai",
             "Rohan Gupta", "Sneha Kulkarni", "Imran Khan", "Lakshmi Reddy", "Farah Ali"]
    with httpx.Client(base_url=base, timeout=30) as client:
        for index in range(36):
            first, last = names[index % len(names)].split()
            customer: dict[str, Any] = {
                "mobile": f"91987650{index:04d}",
                "firstname": first,
                "lastname": last,
                "email": f"{first.lower()}.{last.lower()}{index}@example.com",
                "type": "NON_LOYALTY" if index % 5 == 0 else "LOYALTY",
                "source": ["INSTORE", "WEBSITE", "MOBILE_APP"][index % 3],
                "registered_on": (now - timedelta(days=(index * 7) % 29, hours=index % 5)).strftime("%Y-%m-%d %H:%M:%S"),
                "custom_fields": {"field": [{"name": "City_name", "value": ["Pune", "Chennai", "Delhi"][index % 3]}]},
            }
            if index % 6 == 0:
                customer["extended_fields"] = {"field": [{"name": "age_group", "value": "ninety"}]}  # a warning
            till = "till.one" if index % 3 else "till.two"
            response = client.post("/v1.1/customer/add", json={"root": {"customer": [customer]}}, headers=_basic(till))
            assert response.status_code == 200, response.text


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("console-browser")
    env = sqlite_env(tmp)
    subprocess.run(
        [str(VENV_BIN / "patron"), "org", "apply", str(ORG_FILE)], env=env, cwd=ROOT, check=True, capture_output=True,
        timeout=60,
    )
    with served(tmp, "console", env) as running:
        _seed(running.base)
        yield running


class Visit:
    """A browser context on the server that lets nothing but Patron answer, as on a machine offline."""

    def __init__(self, browser: Any, server: Server, viewport: dict[str, int]) -> None:
        self.server = server
        self.context = browser.new_context(viewport=viewport)
        self.page = self.context.new_page()
        self.refused: list[str] = []
        self.page.route("**/*", self._only_patron)

    def _only_patron(self, route: Any, request: Any) -> None:
        if request.url.startswith(self.server.base):
            route.continue_()
        else:
            self.refused.append(request.url)
            route.abort()

    def go(self, path: str) -> Any:
        self.page.goto(self.server.base + path)
        return self.page

    def sign_in(self, who: str) -> None:
        page = self.go("/console/login")
        page.get_by_label("Login").fill(who)
        page.get_by_label("Password").fill(PASSWORDS[who])
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{self.server.base}/console/")

    def sign_out(self) -> None:
        self.page.get_by_role("button", name="Sign out").click()
        self.page.wait_for_url(f"{self.server.base}/console/login")

    def shoot(self, name: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)

    def close(self) -> None:
        self.context.close()
        assert self.refused == []


def serious_violations(page: Any) -> list[str]:
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def test_a_member_care_agent_requests_an_identity_change_and_a_reviewer_approves_it(server, browser):
    visit = Visit(browser, server, DESKTOP)
    page = visit.page
    visit.sign_in("ravi")
    page.get_by_role("link", name="Customers").click()
    page.get_by_label("Search customers").fill("Vikram")
    page.get_by_role("button", name="Search").click()
    page.get_by_role("heading", name="customers found").wait_for()
    page.get_by_role("table").get_by_role("link").first.click()
    page.get_by_role("heading", level=1, name="Vikram Shah").wait_for()
    customer_path = page.url.removeprefix(server.base)
    page.get_by_label("Identifier", exact=True).select_option("mobile")
    page.get_by_label("New value", exact=True).fill("919800000999")
    page.locator("#identity-reason").fill("Customer lost the old phone")
    page.get_by_role("button", name="Request the change").click()
    page.get_by_role("status").wait_for()
    assert "Customer Identity change request added successfully" in page.get_by_role("status").inner_text()
    assert "PENDING" in page.content()
    visit.sign_out()

    visit.sign_in("priya")
    assert "1" in page.get_by_role("link", name="Review queue").inner_text()
    page.get_by_role("link", name="Review queue").click()
    card = page.locator("li.card", has_text="+91 98000 00999")  # a mobile is shown grouped
    card.get_by_label("Reason for the decision").fill("Checked the customer's ID at the store")
    card.get_by_role("button", name="Approve").click()
    assert "approved" in page.get_by_role("status").inner_text()
    visit.go(customer_path)
    timeline = page.locator("ol.timeline")
    assert "Identity change approved" in timeline.inner_text()
    assert "Checked the customer's ID at the store" in timeline.inner_text()
    assert "+91 98000 00999" in page.locator("section", has_text="Identifiers").first.inner_text()
    visit.close()


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_every_main_page_renders_with_no_serious_accessibility_violation(server, browser, viewport):
    suffix = "" if viewport is DESKTOP else "-phone"
    visit = Visit(browser, server, viewport)
    page = visit.go("/console/login")
    visit.shoot(f"sign-in{suffix}")
    problems = {"sign-in": serious_violations(page)}
    visit.sign_in("priya")
    visit.shoot(f"overview{suffix}")
    problems["overview"] = serious_violations(page)
    assert page.locator("svg.chart").count() >= 5
    visit.go("/console/customers?q=Asha")
    visit.shoot(f"search-results{suffix}")
    problems["search"] = serious_violations(page)
    page.get_by_role("table").get_by_role("link").first.click()
    page.get_by_role("heading", name="Audit timeline").wait_for()
    # A request waiting for review, so that the customer page and the queue show one.
    page.get_by_label("Identifier", exact=True).select_option("email")
    page.get_by_label("New value", exact=True).fill(f"asha.new{len(suffix)}@example.com")
    page.locator("#identity-reason").fill("Customer asked by e-mail")
    page.get_by_role("button", name="Request the change").click()
    page.get_by_role("status").wait_for()
    visit.shoot(f"customer{suffix}")
    problems["customer"] = serious_violations(page)
    visit.go("/console/identity-requests")
    visit.shoot(f"review-queue{suffix}")
    problems["review queue"] = serious_violations(page)
    if viewport is PHONE:
        # Nothing wider than the phone: no sideways scrolling of the page itself.
        assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
    visit.close()
    assert {name: found for name, found in problems.items() if found} == {}


def test_the_keyboard_reaches_the_skip_link_first_and_it_moves_to_the_content(server, browser):
    visit = Visit(browser, server, DESKTOP)
    visit.sign_in("meera")
    page = visit.page
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to main content"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    visit.close()
