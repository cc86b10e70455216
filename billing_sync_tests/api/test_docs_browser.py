"""/docs in a real browser (Debian's chromium driven by Playwright, as the Dagster UI test
does): Swagger UI renders from the package's assets, with no request leaving this machine,
and a request made from it with a key works (issue 17)."""

from __future__ import annotations

import os

import pytest

from billing_sync_tests.api.conftest import Synced
from billing_sync_tests.ui.test_webserver import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_docs_render_offline_and_a_request_from_them_works(served: str, synced: Synced) -> None:
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail("Debian's chromium is missing: .ci/run installs it")
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    elsewhere: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(60_000)
            page.on(
                "request",
                lambda request: (
                    None
                    if request.url.startswith((served, "data:", "blob:"))
                    else elsewhere.append(request.url)
                ),
            )
            page.goto(f"{served}/docs")
            page.get_by_text("billing-sync account API").first.wait_for()
            page.get_by_role("button", name="Authorize").first.click()
            page.locator(".modal-ux input").first.fill(synced.key)
            page.locator(".modal-ux button.authorize").click()
            page.locator(".modal-ux button.btn-done").click()
            operation = page.locator("#operations-freshness-freshness_v1_freshness_get")
            operation.locator(".opblock-summary").click()
            # "Try it out" is on from the start (tryItOutEnabled in billing_sync/api/docs.py)
            operation.get_by_role("button", name="Execute").click()
            status = operation.locator(".live-responses-table tbody .response-col_status").first
            status.wait_for()
            answered = status.inner_text().strip()
            body = operation.locator(".live-responses-table .microlight").first.inner_text()
            page.screenshot(path=str(ARTIFACTS / "api-docs.png"), full_page=False)
        finally:
            browser.close()
    assert answered == "200", answered
    assert '"tables"' in body and '"data_as_of"' in body
    assert elsewhere == []
