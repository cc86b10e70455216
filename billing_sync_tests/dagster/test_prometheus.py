"""A real Prometheus (Debian's ``prometheus`` package; .ci/run installs it) scrapes
``billing-sync metrics`` and evaluates deploy/prometheus/alerts.yml; ``promtool`` checks
and unit-tests the rules (issue 18)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from billing_sync.config import load_settings
from billing_sync.defs.instance import prepare_instance
from billing_sync.engine.sync import SyncEngine
from billing_sync.postgres import DatabaseUrls
from billing_sync_tests.chaos import free_port, wait_for
from billing_sync_tests.integration.helpers import source_now

pytestmark = [pytest.mark.dagster, pytest.mark.integration]

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "deploy" / "prometheus"


def _tool(name: str) -> str:
    found = shutil.which(name)
    assert found, f"{name} is missing: apt-get install prometheus (.ci/run does)"
    return found


def test_promtool_checks_and_unit_tests_the_alert_rules() -> None:
    promtool = _tool("promtool")
    for command in (["check", "rules", "alerts.yml"], ["test", "rules", "alerts_test.yml"]):
        done = subprocess.run([promtool, *command], cwd=RULES, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return b"billing_sync_up" in response.read()
    except OSError:
        return False


def _api(port: int, path: str, **params: str) -> Any:
    url = f"http://127.0.0.1:{port}/api/v1/{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())["data"]


def test_a_real_prometheus_scrapes_the_exporter_and_evaluates_the_rules(
    settings_file: Path, databases: DatabaseUrls, tmp_path: Path
) -> None:
    prometheus = _tool("prometheus")
    with SyncEngine.from_settings(load_settings(path=settings_file)) as engine:
        engine.setup()
        engine.drain(until=source_now(databases.source), timeout=120)
    home = tmp_path / "dagster"  # an instance with no daemon: the daemon-down rule fires
    prepare_instance(home, config=REPO / "dagster.yaml")
    exporter_port, prometheus_port = free_port(), free_port()
    (tmp_path / "prometheus.yml").write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "5s", "evaluation_interval": "1s"},
                "rule_files": [str(RULES / "alerts.yml")],
                "scrape_configs": [
                    {
                        "job_name": "billing-sync",
                        "scrape_timeout": "5s",
                        "static_configs": [{"targets": [f"127.0.0.1:{exporter_port}"]}],
                    }
                ],
            }
        )
    )
    exporter = subprocess.Popen(
        [sys.executable, "-m", "billing_sync.cli", "--config", str(settings_file), "metrics",
         "--port", str(exporter_port), "--dagster-home", str(home)],
        cwd=REPO, stdout=(tmp_path / "exporter.log").open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    server = subprocess.Popen(
        [prometheus, f"--config.file={tmp_path / 'prometheus.yml'}",
         f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{prometheus_port}"],
        stdout=(tmp_path / "prometheus.log").open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        scrape = f"http://127.0.0.1:{exporter_port}/metrics"
        took = wait_for(lambda: _answers(scrape), timeout=60)
        print(f"exporter up and first scrape in {took:.1f} s")

        def rows_scraped() -> bool:
            try:
                found = _api(prometheus_port, "query", query="billing_sync_rows_captured_total")
            except OSError:
                return False
            return any(float(series["value"][1]) > 0 for series in found["result"])

        wait_for(rows_scraped, timeout=90)
        up = _api(prometheus_port, "query", query="billing_sync_up")["result"]
        assert {s["metric"]["component"]: s["value"][1] for s in up} == {
            "warehouse": "1",
            "dagster": "1",
        }
        lag = _api(prometheus_port, "query", query="billing_sync_lag_seconds")["result"]
        assert {s["metric"]["tier"] for s in lag} == {"priority", "standard", "bulk"}

        def daemon_down_alerted() -> bool:
            alerts = _api(prometheus_port, "alerts")["alerts"]
            return any(a["labels"]["alertname"] == "BillingSyncDaemonDown" for a in alerts)

        wait_for(daemon_down_alerted, timeout=30)
        rules = _api(prometheus_port, "rules")["groups"][0]["rules"]
        assert len(rules) == 6 and all(rule["health"] == "ok" for rule in rules), rules
    finally:
        for process in (server, exporter):
            process.terminate()
            process.wait(30)
    assert "Traceback" not in (tmp_path / "exporter.log").read_text()
