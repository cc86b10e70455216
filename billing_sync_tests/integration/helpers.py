"""Building blocks shared by the integration tests."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import psycopg

from billing_sync.config import Settings, load_settings
from billing_sync.postgres import DatabaseUrls
from billing_sync.reconcile.compare import TableParity, compare_all
from billing_sync.simulator import create_schema, seed
from billing_sync.sync import SyncEngine


def settings_for(urls: DatabaseUrls, state_dir: Path, **overrides: object) -> Settings:
    return load_settings(
        env={},
        state_dir=state_dir,
        source_url=urls.source,
        warehouse_url=urls.warehouse,
        cache_path=state_dir / "cache.duckdb",
        **overrides,
    )


def seeded_source(urls: DatabaseUrls, *, accounts: int = 200) -> dict[str, int]:
    with psycopg.connect(urls.source, autocommit=True) as conn:
        create_schema(conn)
        return seed(conn, accounts=accounts)


def source_now(url: str) -> datetime:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT clock_timestamp()::timestamp(6)").fetchone()
    assert row is not None
    value: datetime = row[0]
    return value


def parity(engine: SyncEngine) -> list[TableParity]:
    return compare_all(engine)


def assert_parity(engine: SyncEngine) -> list[TableParity]:
    results = parity(engine)
    problems = {f"{r.system}.{r.table}": r.differences for r in results if not r.equal}
    assert not problems, problems
    return results
