"""The front door in a real browser: the page fetches nothing but from Patron, shows Patron's icon
(served from the package), and its links lead to the API reference and the console's sign-in."""

from __future__ import annotations

from support.processes import SCREENSHOTS

RENDERED = "the front door"


def test_the_front_door_shows_patrons_icon_and_leads_to_the_docs_and_the_console(server, browser):
    context = browser.new_context(viewport={"width": 1024, "height": 700})
    page = context.new_page()
    # Watched, not intercepted: under Playwright's request interception Chromium leaves
    # /favicon.ico unfetched, which no browser of a user does.
    elsewhere: list[str] = []
    page.on("request", lambda request: None if request.url.startswith(server.base) else elsewhere.append(request.url))
    page.goto(f"{server.base}/", wait_until="networkidle")
    icon_width = page.locator("h1 img").evaluate("img => img.naturalWidth")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "home.png"))
    page.get_by_role("link", name="API reference").click()
    page.wait_for_url(f"{server.base}/docs")
    page.go_back()
    page.get_by_role("link", name="Member-care console").click()
    page.wait_for_load_state("networkidle")
    console_url = page.url
    context.close()

    assert elsewhere == []
    assert icon_width > 0
    assert console_url.startswith(f"{server.base}/console/login")
