"""``billing-sync demo --source-engine mariadb``: the ICOMS biller on the MariaDB server,
synced through Dagster to parity, and the error when no server answers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from sqlalchemy.engine import URL

from billing_sync.demo.mariadb import NoMariaDB, demo_url
from billing_sync.postgres import stop_embedded_server
from billing_sync_tests.mysql_support import mysql_database, mysql_server

pytestmark = pytest.mark.integration

__all__ = ["mysql_database", "mysql_server"]

BILLING_SYNC = str(Path(sys.executable).parent / "billing-sync")


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BILLING_SYNC_", "DAGSTER_"))}
    env["PATH"] = "/usr/bin:/bin"
    return env


@pytest.mark.slow
def test_headless_demo_on_mariadb_ends_with_parity(mysql_database: URL, tmp_path: Path) -> None:
    state = tmp_path / "demo"
    url = mysql_database.render_as_string(hide_password=False)
    command = [
        BILLING_SYNC, "--state-dir", str(state),
        "demo", "--seconds", "15", "--accounts", "150", "--rate", "100",
        "--source-engine", "mariadb", "--mariadb-url", url,
    ]  # fmt: skip
    try:
        done = subprocess.run(
            command, env=_clean_env(), cwd=tmp_path, capture_output=True, text=True, timeout=600
        )
    finally:
        stop_embedded_server(state / "postgres")
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert f"icoms on MariaDB ({mysql_database.render_as_string()})" in out
    assert "PARITY: source, warehouse and cache are equal" in out
    assert "freshness (commit in source to visible in warehouse" in out
    parity = [line.split() for line in out.splitlines()
              if line.startswith(("icoms.", "amdocs.")) and line.endswith(" equal")]  # fmt: skip
    tables = {fields[0]: fields for fields in parity}
    assert len(tables) == 23, out  # 14 ICOMS tables read from MariaDB, 9 Amdocs
    assert int(tables["icoms.PAYMENT"][1]) > 0
    # Later commands in the state folder read the MariaDB biller without being told.
    saved = yaml.safe_load((state / "settings.yaml").read_text())
    assert saved["source_urls"] == {"icoms": url}
    catalog = yaml.safe_load((Path(saved["catalog_dir"]) / "icoms.yaml").read_text())
    assert catalog["schema"] == mysql_database.database


def test_no_mariadb_server_is_one_clear_error(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [
        BILLING_SYNC, "--state-dir", str(tmp_path / "state"), "demo", "--seconds", "5",
        "--source-engine", "mariadb",
        "--mariadb-url", f"mysql+pymysql://demo:s3cret@127.0.0.1:{port}/x",
    ]  # fmt: skip
    done = subprocess.run(
        command, env=_clean_env(), cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2, done.stdout + done.stderr
    error = done.stderr
    masked = f"mysql+pymysql://demo:***@127.0.0.1:{port}/x"
    assert f"no MariaDB/MySQL server answers at {masked}" in error
    assert "--mariadb-url" in error and "BILLING_SYNC_DEMO_MARIADB_URL" in error
    assert "s3cret" not in done.stdout + error and "Traceback" not in error
    assert not (tmp_path / "state" / "postgres").exists()  # refused before anything started


def test_the_demo_url_comes_from_the_option_then_the_environment() -> None:
    env = {"BILLING_SYNC_DEMO_MARIADB_URL": "mysql+pymysql://u@db:3307/bill"}
    assert str(demo_url(None, env)) == "mysql+pymysql://u@db:3307/bill"
    assert str(demo_url("mariadb+pymysql://root@h", env)) == (
        "mariadb+pymysql://root@h/billing_sync_demo"
    )
    assert str(demo_url(None, {})) == "mysql+pymysql://root@127.0.0.1:3306/billing_sync_demo"
    with pytest.raises(NoMariaDB, match="must be a MariaDB/MySQL URL"):
        demo_url("postgresql://u@h/db", {})
