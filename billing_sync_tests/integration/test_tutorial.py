"""The tutorial "add a source table" (docs/tutorial-add-a-table.md), run as written on the
simulated ICOMS biller.

The SQL, the mapping and the suite are read from the tutorial itself, so it cannot drift
from what the code accepts.
"""

from __future__ import annotations

import re
import shutil
import textwrap
from pathlib import Path

import psycopg
import pytest

from billing_sync.cli import main
from billing_sync.config import CATALOG_DIR
from billing_sync.postgres import DatabaseUrls
from billing_sync.validate.suites import SUITES_DIR
from billing_sync_tests.integration.helpers import seeded_source

pytestmark = pytest.mark.integration

TUTORIAL = Path(__file__).resolve().parents[2] / "docs" / "tutorial-add-a-table.md"


def tutorial_blocks() -> dict[str, str]:
    """The tutorial's code blocks by language: sql, the mapping, the suite."""
    blocks = re.findall(r"```(\w*)\n(.*?)```", TUTORIAL.read_text(), flags=re.S)
    found = [(language, textwrap.dedent(body)) for language, body in blocks]
    return {
        "sql": next(body for language, body in found if language == "sql"),
        "mapping": next(body for lang, body in found if lang == "yaml" and "table:" in body),
        "suite": next(body for lang, body in found if lang == "yaml" and "entity:" in body
                      and "expectations:" in body),
    }  # fmt: skip


def test_the_tutorial_adds_a_table_that_checks_loads_and_verifies(
    databases: DatabaseUrls, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocks = tutorial_blocks()
    seeded_source(databases, accounts=10)
    with psycopg.connect(databases.source, autocommit=True) as conn:
        conn.execute(blocks["sql"])
        conn.execute(
            'CREATE INDEX "TAX_EXEMPT_CHG_IX" ON icoms."TAX_EXEMPT"'
            ' ("CHG_DATE", "CHG_TIME", "SITE_ID", "ACCOUNT_NO", "EXEMPT_CD")'
        )
        accounts = conn.execute(
            'SELECT "SITE_ID", "ACCOUNT_NO" FROM icoms."ACCOUNT" ORDER BY 1, 2 LIMIT 3'
        ).fetchall()
        for n, (site, account) in enumerate(accounts):
            conn.execute(
                'INSERT INTO icoms."TAX_EXEMPT" VALUES (%s, %s, %s, %s, %s, %s,'
                " 1250101, 101500, 1250101, 101500, 'TUTOR', 'A')",
                (site, account, f"E{n}", f"CERT-{n}", 1250, 0 if n else 1271231),
            )
    catalogs, suites = tmp_path / "catalogs", tmp_path / "suites"
    shutil.copytree(CATALOG_DIR, catalogs)
    shutil.copytree(SUITES_DIR, suites)
    with (catalogs / "icoms.yaml").open("a") as icoms:
        icoms.write("\n" + textwrap.indent(blocks["mapping"], "  "))
    (suites / "tax_exemption.yaml").write_text(blocks["suite"])
    config = tmp_path / "settings.yaml"
    config.write_text(
        f"state_dir: {tmp_path / 'state'}\nsource_url: {databases.source}\n"
        f"warehouse_url: {databases.warehouse}\ncatalog_dir: {catalogs}\n"
        f"suites_dir: {suites}\ncapture: {{delay_seconds: 0}}\n"
    )

    assert main(["--config", str(config), "check"]) == 0
    assert re.search(
        r"ok  icoms\.TAX_EXEMPT\s+-> tax_exemption\s+8 columns", capsys.readouterr().out
    )
    assert main(["--config", str(config), "sync", "--once"]) == 0
    assert main(["--config", str(config), "verify", "TAX_EXEMPT"]) == 0
    with psycopg.connect(databases.warehouse, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT exemption_code, percent::text, expires_on::text, certificate_token"
            " FROM billing.tax_exemption ORDER BY 1"
        ).fetchall()
    assert [row[:3] for row in rows] == [
        ("E0", "12.50", "2027-12-31"), ("E1", "12.50", None), ("E2", "12.50", None),
    ]  # fmt: skip
    assert all(row[3] and "CERT" not in row[3] for row in rows)  # an HMAC token, not the value


def test_a_mapping_naming_an_unknown_column_fails_the_check_naming_it(
    databases: DatabaseUrls, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocks = tutorial_blocks()
    seeded_source(databases, accounts=2)
    with psycopg.connect(databases.source, autocommit=True) as conn:
        conn.execute(blocks["sql"])
    catalogs = tmp_path / "catalogs"
    shutil.copytree(CATALOG_DIR, catalogs)
    with (catalogs / "icoms.yaml").open("a") as icoms:
        icoms.write(
            "\n" + textwrap.indent(blocks["mapping"], "  ").replace("CERT_NO,", "CERT_NUMBER,")
        )
    config = tmp_path / "settings.yaml"
    config.write_text(
        f"state_dir: {tmp_path / 'state'}\nsource_url: {databases.source}\n"
        f"warehouse_url: {databases.warehouse}\ncatalog_dir: {catalogs}\n"
    )
    assert main(["--config", str(config), "check"]) == 2
    error = capsys.readouterr().err
    assert "TAX_EXEMPT" in error and "CERT_NUMBER" in error and "icoms.yaml" in error
    assert "Traceback" not in error
