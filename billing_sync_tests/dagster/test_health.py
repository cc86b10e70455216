"""``billing-sync health`` and the Dagster part of ``status`` (issues 18 and 14 item 4):
runs failing one after another and an unreachable biller, on a real persistent instance
with no daemon running; ``status`` shows the failing runs the alert sensor recorded in
the warehouse, without importing Dagster itself."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from billing_sync.cli import main
from billing_sync.config import load_settings
from billing_sync.defs.instance import open_instance, prepare_instance
from billing_sync.defs.resources import BillingSyncResource
from billing_sync.engine.status_report import format_status, status_report
from billing_sync.engine.sync import SyncEngine
from billing_sync.ops_cli import health_reasons
from billing_sync.postgres import DatabaseUrls
from billing_sync_tests.dagster.test_alerts_mean_it import Sensors, _run

pytestmark = [pytest.mark.dagster, pytest.mark.integration]

REPO = Path(__file__).resolve().parents[2]


def _with_source(settings_file: Path, url: str) -> BillingSyncResource:
    raw = yaml.safe_load(settings_file.read_text())
    raw["source_url"] = url
    settings_file.write_text(yaml.safe_dump(raw))
    return BillingSyncResource(config_file=str(settings_file))


def test_health_and_status_report_failing_runs_a_biller_down_and_no_daemon(
    settings_file: Path, databases: DatabaseUrls, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "dagster"
    prepare_instance(home, config=REPO / "dagster.yaml")
    unreachable = databases.source.rsplit("@", 1)[0] + "@127.0.0.1:9/nowhere"
    with open_instance(home) as instance:
        assert _run(instance, _with_source(settings_file, databases.source), "sync_priority_job")
        down = _with_source(settings_file, unreachable)
        for count in range(1, 4):
            assert not _run(instance, down, "sync_priority_job")
            if count == 1:  # one failed run (a killed run worker) already says so
                lines = [r.line() for r in health_reasons(load_settings(path=settings_file), home)]
                assert any(
                    line.startswith("DEGRADED runs: sync_priority_job: its last run failed")
                    for line in lines
                ), lines
        Sensors(instance, down).tick("alerts_sensor")

    lines = [r.line() for r in health_reasons(load_settings(path=settings_file), home)]
    assert any(line.startswith("DOWN biller icoms: unreachable") for line in lines), lines
    assert any(
        line.startswith("DEGRADED runs: sync_priority_job: its last 3 runs failed")
        for line in lines
    ), lines
    never = [line for line in lines if line.startswith("DOWN daemon: no heartbeat ever recorded")]
    assert len(never) == 1 and "SENSOR" in never[0], lines
    password = urlsplit(databases.source).password
    assert not password or password not in str(lines)
    code = main(["--config", str(settings_file), "health", "--dagster-home", str(home)])
    assert code == 2
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("DOWN") and printed[-1].startswith("DEGRADED"), printed

    # The biller is back: status reads the failing runs from the warehouse's record.
    _with_source(settings_file, databases.source)
    with SyncEngine.from_settings(load_settings(path=settings_file), reading=True) as engine:
        report = status_report(engine)
    text = format_status(report)
    assert "FAILING RUNS: sync_priority_job since" in text, text
    pipeline = report.as_json()["pipeline"]
    assert [a["subject"] for a in pipeline["failing_runs"]] == ["sync_priority_job"]
    assert "cannot reach the source" in pipeline["failing_runs"][0]["summary"]
    assert pipeline["age_seconds"] < 120
