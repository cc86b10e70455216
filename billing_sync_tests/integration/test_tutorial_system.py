"""The tutorial "add a biller system on another engine" (docs/tutorial-add-a-system.md),
run as written on the MariaDB server: the table, the catalog and the suite are read from
the tutorial itself, so it cannot drift from what the code accepts."""

from __future__ import annotations

import re
import textwrap
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
import yaml
from sqlalchemy.engine import URL

from billing_sync.cli import main
from billing_sync.postgres import DatabaseUrls
from billing_sync.simulator import mariadb
from billing_sync_tests.mysql_support import mysql_database, mysql_server

__all__ = ["mysql_database", "mysql_server"]

pytestmark = pytest.mark.integration

TUTORIAL = Path(__file__).resolve().parents[2] / "docs" / "tutorial-add-a-system.md"


def tutorial_blocks() -> dict[str, str]:
    blocks = re.findall(r"```(\w*)\n(.*?)```", TUTORIAL.read_text(), flags=re.S)
    found = [(language, textwrap.dedent(body)) for language, body in blocks]
    return {
        "sql": next(body for language, body in found if language == "sql"),
        "catalog": next(body for lang, body in found if lang == "yaml" and "system:" in body),
        "suite": next(body for lang, body in found if lang == "yaml" and "expectations:" in body),
    }


def test_the_tutorial_adds_a_system_on_mariadb_that_checks_and_loads(
    databases: DatabaseUrls,
    mysql_database: URL,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    blocks = tutorial_blocks()
    url = mysql_database.render_as_string(hide_password=False)
    database = mysql_database.database
    assert database is not None
    conn = mariadb.connect(url)
    with conn.cursor() as cur:
        cur.execute(f"USE `{database}`")
        cur.execute(blocks["sql"])
        cur.execute(
            "INSERT INTO WALLET VALUES"
            " (18446744073709551615, '15551230001', 'prepaid', 12.50, 1, '{\"tier\": \"gold\"}',"
            "  'x1', '2026-01-01 10:00:00.250000'),"
            " (7, '15551230002', 'hybrid', -3.00, 0, NULL, NULL, '2026-01-01 10:00:01')"
        )
    conn.commit()
    conn.close()

    draft = tmp_path / "draft.yaml"
    argv = ["catalog", "init", "--system", "topup", "--url", url, "--timezone", "UTC",
            "--out", str(draft)]  # fmt: skip
    assert main(argv) == 0
    drafted = draft.read_text()
    assert "cursor: UPDATED_AT  # index WALLET_UPD_IX" in drafted, drafted
    assert any("PIN_HASH" in line and "SENSITIVE?" in line for line in drafted.splitlines())

    catalogs, suites = tmp_path / "catalog", tmp_path / "suites"
    catalogs.mkdir()
    suites.mkdir()
    (catalogs / "topup.yaml").write_text(
        blocks["catalog"].replace("schema: topup ", f"schema: {database} ")
    )
    (suites / "prepaid_wallet.yaml").write_text(blocks["suite"])
    config = tmp_path / "settings.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "state_dir": str(tmp_path / "state"),
                "source_url": databases.source,
                "source_urls": {"topup": url},
                "systems": ["topup"],
                "warehouse_url": databases.warehouse,
                "catalog_dir": str(catalogs),
                "suites_dir": str(suites),
                "capture": {"delay_seconds": 1.2, "allow_unproven_engines": True},
            }
        )
    )
    assert main(["--config", str(config), "check"]) == 0
    assert re.search(r"ok  topup\.WALLET\s+-> prepaid_wallet\s+7 columns", capsys.readouterr().out)
    assert main(["--config", str(config), "grants", "--system", "topup", "--user", "cap"]) == 0
    grants = capsys.readouterr().out
    assert f"GRANT SELECT ON `{database}`.`WALLET` TO cap;" in grants
    assert "GRANT PROCESS ON *.* TO cap;" in grants
    assert main(["--config", str(config), "sync", "--once"]) == 0
    with psycopg.connect(databases.warehouse, autocommit=True) as wh:
        rows = wh.execute(
            "SELECT wallet_id, plan, balance, is_active, attributes, msisdn_token,"
            " CAST(changed_at AT TIME ZONE 'UTC' AS text)"
            " FROM billing.prepaid_wallet ORDER BY wallet_id"
        ).fetchall()
        views = wh.execute(
            "SELECT count(*) FROM information_schema.views WHERE table_schema = 'serve'"
        ).fetchone()
    assert [row[:5] for row in rows] == [
        (Decimal(7), "hybrid", Decimal("-3.00"), False, None),
        (Decimal(18446744073709551615), "prepaid", Decimal("12.50"), True, '{"tier": "gold"}'),
    ]
    assert all(row[5] and "1555123" not in row[5] for row in rows)  # an HMAC token
    assert [row[6] for row in rows] == ["2026-01-01 10:00:01", "2026-01-01 10:00:00.25"]
    assert views == (0,)  # no billing entity: no serve views
