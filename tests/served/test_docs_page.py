"""GET /docs in a real browser on a machine without internet: Swagger UI comes from Patron itself
(the swagger-ui-py package's files), and opens on the operations of customer/add and customer/get,
the code tables folded and no screens of schemas."""

from __future__ import annotations

from support.processes import SCREENSHOTS

RENDERED = "the page"


def test_the_docs_page_renders_add_and_get_with_no_network_but_patron(server, browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    fetched: list[str] = []
    refused: list[str] = []

    def only_patron(route, request) -> None:  # noqa: ANN001
        fetched.append(request.url)
        if request.url.startswith(server.base):
            route.continue_()
        else:
            # No network: anything but Patron itself is unreachable, as on a machine offline.
            refused.append(request.url)
            route.abort()

    page.route("**/*", only_patron)
    page.goto(f"{server.base}/docs", wait_until="networkidle")
    page.wait_for_selector(".opblock-summary-path", timeout=15_000)
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    first_operation = page.locator(".opblock").first.bounding_box()
    schema_tables = page.locator("section.models").count()
    codes_folded = page.locator(".info details").evaluate_all("found => found.map(d => d.open)")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "docs.png"), full_page=False)
    page.locator(".info details summary").click()
    code_tables = page.locator(".info details table").count()
    page.locator(".info details").screenshot(path=str(SCREENSHOTS / "docs-codes.png"))
    context.close()

    assert refused == []
    assert any(url.endswith("/docs/assets/swagger-ui-bundle.js") for url in fetched)
    assert "/v1.1/customer/add" in paths and "/v1.1/customer/get" in paths, paths
    # It opens on the operations: the code tables folded, no section of schemas below them.
    assert first_operation is not None and first_operation["y"] < 900, first_operation
    assert codes_folded == [False] and schema_tables == 0
    assert code_tables == 5, "the folded codes should unfold into their five tables"
