"""The code location loads and has the graph, jobs, sensors and checks it promises."""

from __future__ import annotations

import subprocess
import sys

import dagster as dg

from billing_sync.definitions import defs


def test_definitions_load_with_the_asset_graph() -> None:
    definitions = defs()
    graph = definitions.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    for entity in ("billing_account", "product", "customer_bill", "payment"):
        assert f"warehouse/{entity}" in keys
        assert f"cache/{entity}" in keys
    assert "source/icoms/PAYMENT" in keys
    payment = graph.get(dg.AssetKey(["warehouse", "payment"]))
    assert dg.AssetKey(["source", "icoms", "PAYMENT"]) in payment.parent_keys
    cache = graph.get(dg.AssetKey(["cache", "payment"]))
    assert dg.AssetKey(["warehouse", "payment"]) in cache.parent_keys
    revenue = graph.get(dg.AssetKey(["serve", "daily_revenue"]))
    assert dg.AssetKey(["cache", "payment"]) in revenue.parent_keys
    assert {s.name for s in definitions.sensors} == {
        "sync_priority_sensor",
        "sync_standard_sensor",
        "sync_bulk_sensor",
        "freshness_sensor",
        "source_observation_sensor",
        "alerts_sensor",
        "priority_deletes_sensor",
    }
    checks = {key.name for key in graph.asset_check_keys}
    assert "validation" in checks
    definitions.resolve_job_def("retention_job")
    assert definitions.resolve_schedule_def("retention_schedule").cron_schedule
    assert {"freshness", "parity"} <= checks
    definitions.resolve_job_def("parity_checks_job")
    assert definitions.resolve_schedule_def("parity_checks_schedule").cron_schedule
    definitions.resolve_job_def("sync_priority_job")
    definitions.resolve_job_def("freshness_checks_job")
    definitions.resolve_job_def("priority_deletes_job")


def test_code_location_import_does_not_import_great_expectations() -> None:
    code = (
        "import sys; from billing_sync.definitions import defs; defs();"
        "print('great_expectations' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_warehouse_and_cache_assets_carry_the_data_dictionary() -> None:
    graph = defs().resolve_asset_graph()
    for key in (["warehouse", "payment"], ["cache", "payment"]):
        node = graph.get(dg.AssetKey(key))
        assert "One row per payment received" in (node.description or "")
        schema = node.metadata["dagster/column_schema"]
        assert isinstance(schema, dg.TableSchema)
        columns = {column.name: column for column in schema.columns}
        assert columns["amount"].type == "numeric(12,2)"
        assert (columns["amount"].description or "").startswith("Amount paid in dollars")
        assert "_source_version" in columns
