"""The billing-sync command: sync --once, status, and the headless demo end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
import yaml
from psycopg import sql

from billing_sync.cli import main
from billing_sync.config import load_catalogs, load_settings
from billing_sync.postgres import DatabaseUrls, stop_embedded_server
from billing_sync_tests.integration.helpers import seeded_source

pytestmark = pytest.mark.integration


@pytest.fixture
def config(databases: DatabaseUrls, tmp_path: Path) -> Path:
    seeded_source(databases, accounts=25)
    path = tmp_path / "settings.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "state_dir": str(tmp_path / "state"),
                "source_url": databases.source,
                "warehouse_url": databases.warehouse,
                "capture": {"delay_seconds": 0},
            }
        )
    )
    return path


def test_sync_once_then_status(
    config: Path, databases: DatabaseUrls, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--config", str(config), "sync", "--once"]) == 0
    synced = capsys.readouterr().out
    assert "icoms.PAYMENT" in synced and "ins" in synced

    assert main(["--config", str(config), "status"]) == 0
    status = capsys.readouterr().out
    lines = {line.split()[0]: line.split() for line in status.splitlines()[2:] if line.strip()}
    assert set(lines) >= {"icoms.ACCOUNT", "icoms.PAYMENT", "icoms.CUST_SERVICE", "icoms.STATEMENT"}
    # source: the biller's rows; warehouse and cache: live rows. The seed's history (it
    # ends at the start of today) soft-deletes some rows on some days: flagged, not counted.
    flagged = _soft_deleted(databases.warehouse, config)
    for name, fields in lines.items():
        if name.startswith("icoms."):
            source, warehouse, cache = int(fields[-5]), int(fields[-4]), int(fields[-3])
            assert source == warehouse + flagged[name] and warehouse == cache, status


def _soft_deleted(warehouse: str, config: Path) -> dict[str, int]:
    """Rows flagged ``_is_deleted`` in the warehouse per ``system.TABLE``."""
    catalogs = load_catalogs(load_settings(path=config))
    found: dict[str, int] = {}
    with psycopg.connect(warehouse) as conn:
        for catalog in catalogs:
            for mapping in catalog.tables:
                row = conn.execute(
                    sql.SQL(
                        "SELECT count(*) FROM billing.{} WHERE _is_deleted AND _source_system = %s"
                    ).format(sql.Identifier(mapping.entity)),
                    (catalog.system,),
                ).fetchone()
                found[f"{catalog.system}.{mapping.table}"] = int(row[0]) if row else 0
    return found


def test_a_bad_settings_file_is_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("capture: {batch_rows: -1}\n")
    assert main(["--config", str(bad), "status"]) == 2
    error = capsys.readouterr().err
    assert str(bad) in error and "batch_rows" in error
    assert "Traceback" not in error


@pytest.mark.slow
def test_headless_demo_ends_with_parity_and_freshness(tmp_path: Path) -> None:
    state = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BILLING_SYNC_", "DAGSTER_"))}
    env["PATH"] = "/usr/bin:/bin"  # the printed commands carry their own paths
    command = [
        str(Path(sys.executable).parent / "billing-sync"),
        "--state-dir", str(state),
        "demo", "--seconds", "25", "--accounts", "300", "--rate", "150",
    ]  # fmt: skip
    try:
        done = subprocess.run(
            command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=400
        )
    finally:
        stop_embedded_server(state / "postgres")  # the demo stops it; this only guards
    assert not (state / "postgres" / "postmaster.pid").exists(), "the demo stops its server"
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "PARITY: source, warehouse and cache are equal" in out
    assert "freshness (commit in source to visible in warehouse" in out
    assert "Dagster drained in" in out
    assert "lag (worst table, SLA): priority" in out
    # Every command the demo printed, as printed, after it (no HMAC key in the environment).
    printed = [line.removeprefix("  $ ") for line in out.splitlines() if line.startswith("  $ ")]
    assert len(printed) >= 4 and printed[-1].endswith(" stop"), out
    outputs = []
    try:
        for line in [*printed[:-1], f"{printed[0].removesuffix(' status')} status --json"]:
            ran = subprocess.run(
                line, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True,
                timeout=120,
            )  # fmt: skip
            assert ran.returncode == 0, f"{line}\n{ran.stdout}\n{ran.stderr}"
            outputs.append(ran.stdout)
    finally:
        stopped = subprocess.run(
            printed[-1], shell=True, cwd=tmp_path, env=env, capture_output=True, text=True,
            timeout=120,
        )  # fmt: skip
    assert stopped.returncode == 0 and "stopped the embedded PostgreSQL" in stopped.stdout
    assert not (state / "postgres" / "postmaster.pid").exists()
    status_text, payments = outputs[0], outputs[1]
    assert "icoms.PAYMENT" in status_text and "amdocs.PAYMENT" in status_text  # both billers
    assert "caught up to (UTC)" in status_text and "SLA s" in status_text
    assert "posted" in payments and "---" in payments
    assert all("icoms" in text and "amdocs" in text for text in outputs[2:-1]), outputs
    report = json.loads(outputs[-1])
    assert len(report["tables"]) == 23 and {"breach", "sla_seconds"} <= set(report["tables"][0])
