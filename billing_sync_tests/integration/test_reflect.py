"""A catalog checked against the reflected source schema at start (real PostgreSQL)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest

from billing_sync.config import ConfigError, SourceCatalog
from billing_sync.engine.sync import SyncEngine
from billing_sync.postgres import DatabaseUrls
from billing_sync.source.reflect import check_catalog, reflect_tables
from billing_sync.source.session import SourceSession
from billing_sync_tests.integration.helpers import settings_for

pytestmark = pytest.mark.integration

DDL = """
CREATE SCHEMA legacy;
CREATE TABLE legacy."ACCT" ("SITE_ID" char(3) NOT NULL, "BAN" bigint NOT NULL,
  "BAL" numeric(11,0), "NOTE" text, "OPEN_DATE" integer, "DOB" date, "PIN" char(4),
  "CHG_DATE" integer NOT NULL, "CHG_TIME" integer NOT NULL, PRIMARY KEY ("SITE_ID", "BAN"));
CREATE TABLE legacy."NO_KEY" ("ID" integer, "CHG_DATE" integer, "CHG_TIME" integer);
INSERT INTO legacy."NO_KEY" VALUES (1, 1250101, 0), (2, 1250101, 0), (2, 1250102, 0);
"""


def table(name: str, key: list[str], *columns: dict[str, Any]) -> dict[str, Any]:
    return {
        "table": name, "entity": name.lower(), "key": key, "cursor": ["CHG_DATE", "CHG_TIME"],
        "cursor_format": "cyymmdd_hhmmss", "drop": ["PIN"],
        "columns": [*({"source": k, "target": k.lower(), "type": "text"} for k in key),
                    *columns],
    }  # fmt: skip


def catalog(*tables: dict[str, Any]) -> SourceCatalog:
    return SourceCatalog.model_validate(
        {"system": "legacy", "schema": "legacy", "source_file": "catalog/legacy.yaml",
         "tables": list(tables)}
    )  # fmt: skip


@pytest.fixture
def source(databases: DatabaseUrls) -> Any:
    with psycopg.connect(databases.source, autocommit=True) as conn:
        conn.execute(DDL)
    with SourceSession(databases.source) as session:
        yield session


def test_reflection_reads_types_and_unique_keys(source: SourceSession) -> None:
    found = reflect_tables(source, "legacy", ["ACCT", "NO_KEY", "ABSENT"])
    assert set(found) == {"ACCT", "NO_KEY"}
    assert found["ACCT"].columns["SITE_ID"] == "character(3)"
    assert found["ACCT"].columns["BAL"] == "numeric(11,0)"
    assert found["ACCT"].unique_keys == [("SITE_ID", "BAN")]
    assert found["NO_KEY"].unique_keys == []


def test_a_fitting_catalog_comes_back_with_source_types(source: SourceSession) -> None:
    checked = check_catalog(
        source,
        catalog(table("ACCT", ["SITE_ID", "BAN"],
                      {"source": "BAL", "target": "balance", "type": "decimal(12,2)",
                       "converter": {"implied_decimal": 2}})),
    )  # fmt: skip
    assert checked.by_table["ACCT"].source_types == {
        "SITE_ID": "character(3)", "BAN": "bigint", "BAL": "numeric(11,0)",
        "CHG_DATE": "integer", "CHG_TIME": "integer",  # the cursor's too: its resolution
    }  # fmt: skip


def test_every_problem_is_named_with_file_table_and_column(source: SourceSession) -> None:
    bad = catalog(
        table("ACCT", ["SITE_ID", "BAN"],
              {"source": "NOTE", "target": "note", "type": "decimal(12,2)",
               "converter": {"implied_decimal": 2}},
              {"source": "DOB", "target": "dob", "type": "date", "converter": "cyymmdd"},
              {"source": "GONE", "target": "gone", "type": "text"}),
        table("NO_KEY", ["ID"]),
        table("ABSENT", ["ID"]),
    )  # fmt: skip
    with pytest.raises(ConfigError) as raised:
        check_catalog(source, bad)
    message = str(raised.value)
    assert message.startswith("catalog/legacy.yaml does not fit the source schema legacy")
    for line in [
        "table ACCT, column NOTE: converter implied_decimal(2) cannot read a text column",
        "table ACCT, column DOB: converter cyymmdd cannot read a date column",
        "table ACCT, column GONE: not in the source table",
        "table NO_KEY: key ['ID'] is not unique in the source (two rows hold ['2'])",
        "table ABSENT: not in the source schema",
    ]:
        assert line in message, message


def test_a_column_marked_drop_cannot_be_mapped() -> None:
    with pytest.raises(ValueError, match="selects \\['PIN'\\], marked drop"):
        catalog(table("ACCT", ["SITE_ID", "BAN"], {"source": "PIN", "target": "pin",
                                                   "type": "text"}))  # fmt: skip


def test_the_engine_checks_before_its_first_read(databases: DatabaseUrls, tmp_path: Path) -> None:
    with psycopg.connect(databases.source, autocommit=True) as conn:
        conn.execute(DDL)
    bad = catalog(table("ACCT", ["SITE_ID", "BAN"],
                        {"source": "DOB", "target": "dob", "type": "date",
                         "converter": "cyymmdd"}))  # fmt: skip
    settings = settings_for(databases, tmp_path, systems=["legacy"])
    with SyncEngine(settings, [bad], databases) as engine:
        engine.setup()
        with pytest.raises(ConfigError, match="column DOB: converter cyymmdd"):
            engine.sync_once()
