"""The alert rules and the Grafana dashboard name only metrics the exporter exports, and
the exported names follow Prometheus conventions (issue 18)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from billing_sync.metrics.collector import METRICS

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
NAME = re.compile(r"\bbilling_sync_[a-z_]+\b")
HISTOGRAM_SERIES = ("_bucket", "_sum", "_count")


def _exported(series: str) -> str | None:
    """The metric a series name belongs to (a histogram's ``_bucket`` is its histogram's)."""
    if series in METRICS:
        return series
    for suffix in HISTOGRAM_SERIES:
        base = series.removesuffix(suffix)
        if base != series and METRICS.get(base) == "histogram":
            return base
    return None


def _dashboard_exprs() -> list[str]:
    dashboard = json.loads((DEPLOY / "grafana" / "billing-sync.json").read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def _rule_exprs() -> list[str]:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def test_dashboard_and_rules_name_exported_metrics_only() -> None:
    used = {name for expr in _dashboard_exprs() + _rule_exprs() for name in NAME.findall(expr)}
    assert used, "no metric found"
    assert sorted(name for name in used if _exported(name) is None) == []


def test_the_dashboard_shows_lag_throughput_batch_time_quarantine_and_failures() -> None:
    text = " ".join(_dashboard_exprs())
    for metric in ("billing_sync_tier_lag_seconds", "billing_sync_rows_captured_total",
                   "billing_sync_batch_duration_seconds_bucket", "billing_sync_quarantined_rows",
                   "billing_sync_failed_batches_total"):  # fmt: skip
        assert metric in text


def test_names_follow_prometheus_conventions() -> None:
    for name, kind in METRICS.items():
        assert NAME.fullmatch(name), name
        assert (kind == "counter") == name.endswith("_total"), name
        assert kind in ("counter", "gauge", "histogram"), name
