"""``check``, ``grants`` and ``catalog init`` against the ICOMS biller on MariaDB."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from sqlalchemy.engine import URL

from billing_sync.cli import main
from billing_sync.config import SourceCatalog
from billing_sync.postgres import DatabaseUrls
from billing_sync.simulator import mariadb
from billing_sync_tests.integration.test_mariadb_source import mariadb_catalog_dir
from billing_sync_tests.mysql_support import mysql_database, mysql_server

__all__ = ["mysql_database", "mysql_server"]

pytestmark = pytest.mark.integration


@pytest.fixture
def config(databases: DatabaseUrls, mysql_database: URL, tmp_path: Path) -> Path:
    """The ICOMS biller on MariaDB, its PAYMENT table without the capture index."""
    url = mysql_database.render_as_string(hide_password=False)
    database = mysql_database.database
    assert database is not None
    conn = mariadb.connect(url)
    mariadb.seed(conn, accounts=5, schema=database)
    with conn.cursor() as cur:
        cur.execute(f"DROP INDEX `PAYMENT_CHG_IX` ON `{database}`.`PAYMENT`")
    conn.close()
    path = tmp_path / "settings.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "state_dir": str(tmp_path / "state"),
                "source_url": databases.source,
                "source_urls": {"icoms": url},
                "warehouse_url": databases.warehouse,
                "catalog_dir": str(mariadb_catalog_dir(tmp_path / "catalog", database)),
                "capture": {"delay_seconds": 1.2},
            }
        )
    )
    return path


def test_check_warns_of_a_cursor_without_an_index_with_the_create_index(
    config: Path, mysql_database: URL, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--config", str(config), "check"]) == 0
    out = capsys.readouterr().out
    assert "ok  icoms.PAYMENT" in out
    warnings = [line for line in out.splitlines() if line.startswith("warn")]
    database = mysql_database.database
    assert warnings == [
        "warn mysql icoms.PAYMENT: no index leads with the cursor ['CHG_DATE', 'CHG_TIME'];"
        " each batch reads the whole table. A DBA can run: CREATE INDEX `PAYMENT_CHG_IX` ON"
        f" {database}.`PAYMENT` (`CHG_DATE`, `CHG_TIME`, `SITE_ID`, `PAYMENT_NO`)"
    ]


def test_grants_are_select_per_table_and_process_for_the_horizon(
    config: Path, mysql_database: URL, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--config", str(config), "grants", "--system", "icoms", "--user", "cap"]) == 0
    out = capsys.readouterr().out
    database = mysql_database.database
    assert f"GRANT SELECT ON `{database}`.`ACCOUNT` TO cap;" in out
    assert "GRANT PROCESS ON *.* TO cap;" in out
    assert sum(line.startswith("GRANT SELECT") for line in out.splitlines()) == 14
    assert "CREATE INDEX `PAYMENT_CHG_IX`" in out


def test_catalog_init_drafts_a_catalog_that_loads(
    mysql_database: URL, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = mysql_database.render_as_string(hide_password=False)
    database = mysql_database.database
    assert database is not None
    conn = mariadb.connect(url)
    mariadb.create_schema(conn, schema=database)
    conn.close()
    out = tmp_path / "draft.yaml"
    argv = ["catalog", "init", "--system", "biller", "--url", url, "--timezone",
            "America/Chicago", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    text = out.read_text()
    catalog = SourceCatalog.model_validate(yaml.safe_load(text))
    assert len(catalog.tables) == 14
    account = catalog.by_table["ACCOUNT"]
    assert account.key == ["SITE_ID", "ACCOUNT_NO"]
    assert account.cursor == ["CHG_DATE", "CHG_TIME"]
    assert account.cursor_format == "cyymmdd_hhmmss"
    flagged = [line for line in text.splitlines() if "SENSITIVE?" in line]
    assert any("source: SSN" in line for line in flagged)
    assert any("source: CARD_NO" in line for line in flagged)
    assert "cursor: [CHG_DATE, CHG_TIME]  # index ACCOUNT_CHG_IX" in text
