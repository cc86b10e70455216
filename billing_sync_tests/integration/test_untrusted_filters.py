"""The biller stays read-only whatever an operator types (issue 12, item 1).

Against a real PostgreSQL source, as a least-privilege capture role (``pg_monitor`` and
SELECT): the filter of the issue is refused before anything runs, and the session stays
read-only and bounded in time even for SQL that bypasses the filter parser.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import yaml
from psycopg import sql

from billing_sync.capture.filter_expr import BadFilter
from billing_sync.config import Settings
from billing_sync.engine.sync import SyncEngine
from billing_sync.postgres import DatabaseUrls
from billing_sync.source.session import SourceSession, SourceTimeout
from billing_sync_tests.integration.helpers import seeded_source, settings_for

pytestmark = pytest.mark.integration

ATTACK = (
    "CASE WHEN current_setting('transaction_read_only')='on' THEN "
    "set_config('default_transaction_read_only','off',false) IS NOT NULL "
    "ELSE (SELECT lo_from_bytea(0,'x'::bytea)) IS NOT NULL END"
)
CAPTURE_PASSWORD = "capture-role-test-only"


@pytest.fixture
def capture_url(databases: DatabaseUrls) -> Iterator[str]:
    """The source as a least-privilege capture role: pg_monitor and SELECT on icoms."""
    seeded_source(databases, accounts=20)
    role = f"capture_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(databases.source, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(CAPTURE_PASSWORD)
            )
        )
        conn.execute(sql.SQL("GRANT pg_monitor TO {}").format(sql.Identifier(role)))
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA icoms TO {}").format(sql.Identifier(role)))
        conn.execute(
            sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA icoms TO {}").format(sql.Identifier(role))
        )
    parts = urlsplit(databases.source)
    host = parts.netloc.rpartition("@")[2]
    yield urlunsplit(parts._replace(netloc=f"{role}:{CAPTURE_PASSWORD}@{host}"))
    with psycopg.connect(databases.source, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
    with psycopg.connect(databases.source, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def _large_objects(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM pg_largeobject_metadata").fetchone()
    assert row is not None
    return int(row[0])


def _settings(databases: DatabaseUrls, source: str, tmp_path: Path) -> Settings:
    return settings_for(
        replace(databases, source=source), tmp_path,
        capture={"delay_seconds": 0, "snapshot_rows": 50},
    )  # fmt: skip


def _cli(settings: Settings, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "settings.yaml"
    config.write_text(yaml.safe_dump(settings.model_dump(mode="json", by_alias=True)))
    command = [sys.executable, "-m", "billing_sync.cli", "--config", str(config), *args]
    # Before the fix these looped for ever (the filter broke out of its parentheses).
    return subprocess.run(command, capture_output=True, text=True, timeout=90, env=os.environ)


def _snapshots(url: str) -> list[tuple[str, str, str | None]]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT kind, status, where_sql FROM billing_sync.snapshot ORDER BY snapshot_id"
        ).fetchall()


def test_the_issues_filter_is_refused_and_writes_nothing_as_a_least_privilege_role(
    databases: DatabaseUrls, capture_url: str, tmp_path: Path
) -> None:
    with SyncEngine.from_settings(_settings(databases, capture_url, tmp_path)) as engine:
        engine.setup()
        catalog, mapping = next(
            (c, m) for c, m in engine.tables() if (c.system, m.table) == ("icoms", "PAYMENT")
        )
        with pytest.raises(
            BadFilter, match=r"^filter for icoms\.PAYMENT: unknown column 'CASE' .* at position 1$"
        ):
            engine.backfill(catalog, mapping, where=ATTACK)
        for hostile in ("pg_terminate_backend(1) IS NULL", "pg_sleep(600) IS NULL"):
            with pytest.raises(BadFilter, match="function calls are not allowed"):
                engine.backfill(catalog, mapping, where=hostile)
        assert engine.backfill(catalog, mapping, where="site_id <> '005'") > 0
    assert _large_objects(databases.source) == 0
    assert _snapshots(databases.warehouse) == [
        ("backfill", "done", "(\"SITE_ID\" <> '005')")  # what a resumed backfill parses again
    ]


def test_the_capture_session_stays_read_only_for_sql_that_bypasses_the_parser(
    databases: DatabaseUrls, capture_url: str
) -> None:
    for url in (capture_url, databases.source):  # the least-privilege role and a superuser
        with SourceSession(url) as session:
            # The session default is off from here on; each transaction is still read-only.
            session.scalar("SELECT set_config('default_transaction_read_only', 'off', false)")
            for _ in range(2):  # the issue's filter, unparsed, as a statement's WHERE clause
                session.scalar(f'SELECT count(*) FROM "icoms"."PAYMENT" WHERE ({ATTACK})')
            for write in (
                "SELECT lo_from_bytea(0, 'x'::bytea)",
                "SELECT set_config('transaction_read_only', 'off', true)",
                'WITH w AS (DELETE FROM "icoms"."PAYMENT" RETURNING 1) SELECT count(*) FROM w',
            ):
                with pytest.raises(
                    (psycopg.errors.ReadOnlySqlTransaction, psycopg.errors.ActiveSqlTransaction)
                ):
                    session.scalar(write)
    assert _large_objects(databases.source) == 0
    with psycopg.connect(databases.source) as conn:
        assert conn.execute('SELECT count(*) FROM "icoms"."PAYMENT"').fetchone() != (0,)


def test_a_runaway_statement_hits_the_statement_timeout_even_after_lifting_it(
    capture_url: str,
) -> None:
    with SourceSession(capture_url, statement_timeout=0.5) as session:
        session.scalar("SELECT set_config('statement_timeout', '0', false)")
        started = time.monotonic()
        with pytest.raises(
            SourceTimeout, match=r"statement_timeout_seconds \(0\.5 s\)"
        ) as timed_out:
            session.scalar("SELECT pg_sleep(30)")
        assert time.monotonic() - started < 5
        assert session.scalar("SELECT 1") == 1  # the session is still usable
        with pytest.raises(SourceTimeout):
            session.scalar('SELECT count(*) FROM "icoms"."PAYMENT" WHERE pg_sleep(1) IS NULL')
    assert CAPTURE_PASSWORD not in str(timed_out.value)


def test_a_filter_breaking_out_of_its_parentheses_is_refused_and_a_saved_one_too(
    databases: DatabaseUrls, capture_url: str, tmp_path: Path
) -> None:
    settings = _settings(databases, capture_url, tmp_path)
    refused = _cli(settings, tmp_path, "backfill", "icoms.PAYMENT", "--where", "1=1) OR (1=1")
    assert refused.returncode == 2, refused.stderr
    assert "filter for icoms.PAYMENT: a comparison must name a column at position 1" in (
        refused.stderr
    )
    assert _snapshots(databases.warehouse) == []  # nothing saved to loop on later
    # A filter saved by an earlier version (or typed into the table) is parsed on resume.
    with psycopg.connect(databases.warehouse, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO billing_sync.snapshot (system, source_table, kind, where_sql,"
            " handover_ts, rows_total) VALUES ('icoms', 'PAYMENT', 'backfill',"
            " '\"SITE_ID\" = ''001'') OR (1=1', localtimestamp, 0)"
        )
    resumed = _cli(settings, tmp_path, "backfill", "icoms.PAYMENT")
    assert resumed.returncode == 2, resumed.stderr
    assert "unbalanced ')' at position 18" in resumed.stderr
    assert "saved filter of running backfill" in resumed.stderr
    again = _cli(settings, tmp_path, "backfill", "icoms.PAYMENT")
    assert again.returncode == 0, again.stderr
    assert [row[1] for row in _snapshots(databases.warehouse)] == ["abandoned", "done"]
    assert _large_objects(databases.source) == 0
