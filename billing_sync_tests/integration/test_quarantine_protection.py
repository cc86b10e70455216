"""Issue 12 items 3 and 4 end to end: card numbers and SSNs in the forms people type, in a
memo and in a name column, land nowhere in clear: not in the warehouse, the cache, the
quarantine lines, the stored rows, ``quarantine explain`` nor what ``release`` loads."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pytest
import yaml

from billing_sync.cli import main
from billing_sync.engine.sync import SyncEngine
from billing_sync.postgres import DatabaseUrls
from billing_sync.simulator.clock import ICOMS_STAMP_SET
from billing_sync.transform.protect import luhn_valid
from billing_sync_tests.integration.helpers import (
    next_second,
    seeded_source,
    settings_for,
    source_now,
)

pytestmark = pytest.mark.integration

CARD = "4539148803436467"
MEMO = "card 4539.1488.0343.6467 ssn 536 22 8741"  # the memo
RUN = f"ref 123{CARD}000"  # a card inside a 22-digit run
NAME = "Jane 4539-1488-0343-6467 Doe"  # a card typed into a name column
_RUN = re.compile(r"[0-9](?:[ .\-]{0,3}[0-9])*")


def leaks(text: str) -> list[str]:
    """Luhn-valid 13-19 digit windows and SSN patterns in ``text``."""
    found = []
    for run in _RUN.finditer(text):
        digits = re.sub("[^0-9]", "", run.group())
        for start in range(len(digits)):
            for length in range(13, 20):
                window = digits[start : start + length]
                if len(window) == length and luhn_valid(window):
                    found.append(window)
        groups = [len(g) for g in re.findall("[0-9]+", run.group())]
        if any(groups[i : i + 3] == [3, 2, 4] or groups[i] == 9 for i in range(len(groups))):
            found.append(run.group())
    return found


def _texts(conn: Any, schema: str, kinds: tuple[str, ...]) -> list[tuple[str, str, str]]:
    columns = conn.execute(
        "SELECT table_name, column_name, data_type FROM information_schema.columns"
        f" WHERE table_schema = '{schema}'"
    ).fetchall()
    values = []
    for table, column, kind in columns:
        if kind in kinds:
            rows = conn.execute(f'SELECT DISTINCT "{column}"::text FROM {schema}."{table}"')
            values += [(table, column, v) for (v,) in rows.fetchall() if v is not None]
    return values


def test_cards_and_ssns_land_nowhere_in_clear(
    databases: DatabaseUrls, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seeded_source(databases, accounts=20)
    settings = settings_for(databases, tmp_path, capture={"delay_seconds": 0})
    first = 'SELECT "SITE_ID", "ADJ_NO" FROM icoms."ADJUSTMENT" ORDER BY 1, 2 LIMIT 1 OFFSET {n}'
    with SyncEngine.from_settings(settings) as engine:
        engine.setup()
        engine.drain(until=source_now(databases.source))
        with psycopg.connect(databases.source, autocommit=True) as conn:
            # Quarantined (an ADJ_DATE of nine digits does not convert: the offending value
            # is SSN-shaped), with the memo in its stored row.
            conn.execute(
                f'UPDATE icoms."ADJUSTMENT" SET "MEMO" = %s, "ADJ_DATE" = 536228741,'
                f' {ICOMS_STAMP_SET} WHERE ("SITE_ID", "ADJ_NO") IN ({first.format(n=0)})',
                (MEMO,),
            )
            conn.execute(
                f'UPDATE icoms."ADJUSTMENT" SET "MEMO" = %s, {ICOMS_STAMP_SET}'
                f' WHERE ("SITE_ID", "ADJ_NO") IN ({first.format(n=1)})',
                (RUN,),
            )
            conn.execute(
                f'UPDATE icoms."ACCOUNT" SET "ACCT_NAME" = %s, {ICOMS_STAMP_SET}'
                ' WHERE ("SITE_ID", "ACCOUNT_NO") IN'
                ' (SELECT "SITE_ID", "ACCOUNT_NO" FROM icoms."ACCOUNT" ORDER BY 1, 2 LIMIT 1)',
                (NAME,),
            )
            [(site, number)] = conn.execute(first.format(n=0)).fetchall()
        next_second()
        engine.drain(until=source_now(databases.source))
        engine.catch_up_cache()
        key = f"{site.strip()}|{number}"

    with psycopg.connect(databases.warehouse) as conn:
        quarantined = conn.execute(
            "SELECT source_key FROM billing_sync.quarantine WHERE entity = 'adjustment'"
        ).fetchall()
        assert (key,) in quarantined
        assert len(quarantined) == 1  # the 22-digit run is redacted, so it loads
        names = [v for (v,) in conn.execute("SELECT name FROM billing.billing_account")]
        assert any(n == "Jane [REDACTED] Doe" for n in names)
        values = _texts(conn, "billing", ("text", "character varying"))
        values += _texts(conn, "billing_quarantine", ("text", "character varying"))
        values += [
            ("quarantine", "line", " ".join(str(v) for v in row))
            for row in conn.execute(
                "SELECT offending_value, problems::text FROM billing_sync.quarantine"
            ).fetchall()
        ]
    assert [v for v in values if leaks(v[2])] == []
    with duckdb.connect(str(settings.resolved_cache_path), read_only=True) as con:
        cached = _texts(con, "billing", ("VARCHAR",))
    assert len(cached) > 100 and [v for v in cached if leaks(v[2])] == []

    config = tmp_path / "settings.yaml"
    config.write_text(yaml.safe_dump(settings.model_dump(mode="json", by_alias=True)))
    base = ["--config", str(config), "quarantine"]
    assert main([*base, "explain", "adjustment", key]) == 0
    explained = capsys.readouterr().out
    assert "adjustment_date" in explained and leaks(explained) == []

    # A row stored before redaction covered every form: release must not load it in clear.
    with psycopg.connect(databases.warehouse, autocommit=True) as conn:
        conn.execute(
            "UPDATE billing_quarantine.adjustment SET memo = %s WHERE _source_key = %s",
            (f"old {CARD}", key),
        )
    assert main([*base, "release", "adjustment", key]) == 0
    capsys.readouterr()
    with psycopg.connect(databases.warehouse) as conn:
        [(memo,)] = conn.execute(
            "SELECT memo FROM billing.adjustment WHERE _source_key = %s", (key,)
        ).fetchall()
    assert memo == "old [REDACTED]"


POLICY_DDL = """
CREATE SCHEMA legacy;
CREATE TABLE legacy."ACCT" ("BAN" bigint PRIMARY KEY, "NOTE" varchar(200), "CVV" char(3),
  "CARD_NO" varchar(19), "STATUS_CD" char(1), "TS" timestamp NOT NULL);
"""


def _legacy(*columns: dict[str, Any]) -> Any:
    from billing_sync.config import SourceCatalog

    return SourceCatalog.model_validate(
        {"system": "legacy", "schema": "legacy", "source_file": "catalog/legacy.yaml",
         "tables": [{"table": "ACCT", "entity": "acct", "key": ["BAN"], "cursor": "TS",
                     "columns": [{"source": "BAN", "target": "ban", "type": "bigint"},
                                 *columns]}]}
    )  # fmt: skip


def test_the_engine_refuses_unstated_sensitive_columns_and_redacts_free_text(
    databases: DatabaseUrls, tmp_path: Path
) -> None:
    from billing_sync.config import ConfigError

    with psycopg.connect(databases.source, autocommit=True) as conn:
        conn.execute(POLICY_DDL)
    settings = settings_for(databases, tmp_path, systems=["legacy"])
    unstated = _legacy(
        {"source": "CVV", "target": "cvv", "type": "text"},
        {"source": "CARD_NO", "target": "card", "type": "text"},
    )
    with (
        SyncEngine(settings, [unstated], databases) as engine,
        pytest.raises(ConfigError) as raised,
    ):
        engine.check_sources()
    message = str(raised.value)
    assert message.startswith("catalog/legacy.yaml: sensitive-looking columns")
    assert "table ACCT, column CVV: looks like a card security code" in message
    assert "table ACCT, column CARD_NO: looks like a card number" in message

    stated = _legacy(
        {"source": "CARD_NO", "target": "card_last4", "type": "text", "protect": "last4"},
        {"source": "NOTE", "target": "note", "type": "text"},
        {"source": "STATUS_CD", "target": "status", "type": "text"},
    )
    with SyncEngine(settings, [stated], databases) as engine:
        engine.check_sources()
        columns = {c.target: c.protect for c in engine.catalogs[0].by_table["ACCT"].columns}
    assert columns == {"ban": None, "card_last4": "last4", "note": "redact", "status": None}
