"""What on-call sees (issue 5), through a real ``dagster-webserver``: its GraphQL API, and
its pages in a real browser (Debian's chromium driven by Playwright, no browser download)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from billing_sync_tests.ui.conftest import Served

pytestmark = [pytest.mark.dagster, pytest.mark.integration, pytest.mark.slow]

ENTITIES = ("billing_account", "customer_bill", "payment", "product")
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
# As root, in a closed network: no sandbox, no background calls home (they hang here).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def test_graphql_shows_the_graph_checks_materializations_and_a_failed_runs_error(
    served: Served,
) -> None:
    nodes = served.graphql("{ assetNodes { assetKey { path } groupName } }")["assetNodes"]
    keys = {"/".join(node["assetKey"]["path"]) for node in nodes}
    for entity in ENTITIES:
        assert {f"warehouse/{entity}", f"cache/{entity}"} <= keys
    assert "source/icoms/PAYMENT" in keys

    checks = served.graphql(
        """{ assetNodeOrError(assetKey: {path: ["warehouse", "payment"]}) { ... on AssetNode {
             assetChecksOrError { ... on AssetChecks { checks { name
               executionForLatestMaterialization { runId status
                 evaluation { severity description } } } } } } } }"""
    )["assetNodeOrError"]["assetChecksOrError"]["checks"]
    by_name = {check["name"]: check for check in checks}
    assert {"validation", "freshness"} <= set(by_name)
    latest = by_name["validation"]["executionForLatestMaterialization"]
    assert latest["runId"] == served.failed_run_id and latest["status"] == "FAILED"
    assert latest["evaluation"]["severity"] == "ERROR"
    assert "over the payment threshold" in latest["evaluation"]["description"]

    history = served.graphql(
        """{ assetCheckExecutions(assetKey: {path: ["warehouse", "payment"]},
               checkName: "validation", limit: 5) { status evaluation { severity
               metadataEntries { label ... on IntMetadataEntry { intValue } } } } }"""
    )["assetCheckExecutions"]
    warned = next(e for e in history if e["evaluation"]["severity"] == "WARN")
    metadata = {m["label"]: m.get("intValue") for m in warned["evaluation"]["metadataEntries"]}
    assert metadata["rows_quarantined"] == 2

    materializations = served.graphql(
        """{ assetOrError(assetKey: {path: ["warehouse", "payment"]}) { ... on Asset {
             assetMaterializations(limit: 1) { metadataEntries { label
               ... on IntMetadataEntry { intValue }
               ... on FloatMetadataEntry { floatValue } } } } } }"""
    )["assetOrError"]["assetMaterializations"]
    labels = {m["label"]: m for m in materializations[0]["metadataEntries"]}
    for name in ("rows_inserted", "rows_updated", "rows_deleted", "rows_quarantined",
                 "late_rows", "batch_seconds", "validation_seconds"):  # fmt: skip
        assert name in labels, name
    assert labels["rows_quarantined"]["intValue"] == 2

    run = served.graphql(
        """query ($id: ID!) { runOrError(runId: $id) { ... on Run { status jobName } }
             logsForRun(runId: $id) { ... on EventConnection { events { __typename
               ... on ExecutionStepFailureEvent { error { message cause { message } } } } } } }""",
        {"id": served.failed_run_id},
    )
    assert run["runOrError"] == {"status": "FAILURE", "jobName": "sync_priority_job"}
    failure = next(
        e for e in run["logsForRun"]["events"] if e["__typename"] == "ExecutionStepFailureEvent"
    )
    error = failure["error"]["cause"] or failure["error"]
    assert "BatchValidationError" in error["message"]
    assert "expect_column_values_to_be_between(amount)" in error["message"]


def test_a_browser_finds_the_entities_and_a_failed_checks_message(served: Served) -> None:
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail("Debian's chromium is missing: .ci/run installs it")
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.set_default_timeout(60_000)
            # The catalog's list of warehouse/* (the lineage graph of 15 entities is drawn
            # zoomed out, without readable labels).
            page.goto(f"{served.url}/assets/warehouse")
            for entity in ENTITIES:
                page.get_by_text(entity, exact=True).first.wait_for()
            page.goto(
                f"{served.url}/locations/billing_sync.definitions/asset-groups/warehouse/lineage"
            )
            page.wait_for_timeout(2000)
            page.screenshot(path=str(ARTIFACTS / "asset-graph.png"))

            page.goto(f"{served.url}/assets/warehouse/payment?view=checks")
            page.get_by_text("validation", exact=True).first.click()
            message = page.get_by_text("over the payment threshold").first
            message.wait_for()
            assert "expect_column_values_to_be_between(amount)" in message.inner_text()
            page.get_by_text("Failed", exact=True).first.wait_for()
            page.screenshot(path=str(ARTIFACTS / "failed-validation-check.png"), full_page=True)
        finally:
            browser.close()
    assert (ARTIFACTS / "failed-validation-check.png").stat().st_size > 10_000
    shutil.copyfile(served.log, ARTIFACTS / "webserver.log")


def test_a_forced_freshness_breach_shows_on_the_check_list_and_the_operations_view(
    served: Served,
) -> None:
    checks = served.graphql(
        """{ assetNodeOrError(assetKey: {path: ["warehouse", "payment"]}) { ... on AssetNode {
             assetChecksOrError { ... on AssetChecks { checks { name
               executionForLatestMaterialization { status
                 evaluation { severity description } } } } } } } }"""
    )["assetNodeOrError"]["assetChecksOrError"]["checks"]
    latest = {check["name"]: check for check in checks}["freshness"]
    execution = latest["executionForLatestMaterialization"]
    assert execution is not None, "the check list would say 'Not evaluated'"
    assert execution["status"] == "FAILED" and execution["evaluation"]["severity"] == "ERROR"
    assert "behind the source" in execution["evaluation"]["description"]
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail("Debian's chromium is missing: .ci/run installs it")
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.set_default_timeout(60_000)
            page.goto(f"{served.url}/assets/warehouse/payment?view=checks")
            page.get_by_text("freshness", exact=True).first.click()
            page.get_by_text("behind the source").first.wait_for()
            page.screenshot(path=str(ARTIFACTS / "freshness-breach-check.png"), full_page=True)

            page.goto(f"{served.url}/assets/operations/status")
            page.get_by_text("[Show Markdown]").first.click()
            page.get_by_text("icoms.PAYMENT").first.wait_for()
            page.get_by_text("BREACH", exact=True).first.wait_for()
            page.get_by_text("Active alerts:", exact=False).first.wait_for()
            page.get_by_text("warehouse/payment/validation").first.wait_for()
            page.screenshot(path=str(ARTIFACTS / "operations-view.png"), full_page=True)
        finally:
            browser.close()
