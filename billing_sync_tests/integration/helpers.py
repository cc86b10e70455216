"""Building blocks shared by the integration tests."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import psycopg

from billing_sync.config import Settings, load_settings
from billing_sync.engine.sync import SyncEngine
from billing_sync.postgres import DatabaseUrls
from billing_sync.reconcile.compare import TableParity, compare_all
from billing_sync.simulator import create_schema, seed


def settings_for(urls: DatabaseUrls, state_dir: Path, **overrides: object) -> Settings:
    return load_settings(
        env={"BILLING_SYNC_HMAC_KEY": os.environ["BILLING_SYNC_HMAC_KEY"]},
        state_dir=state_dir,
        source_url=urls.source,
        warehouse_url=urls.warehouse,
        cache_path=state_dir / "cache.duckdb",
        **overrides,
    )


def seeded_source(
    urls: DatabaseUrls, *, accounts: int = 200, systems: tuple[str, ...] = ("icoms",)
) -> dict[str, int]:
    """Seed the simulated billers; rows per table (``system.TABLE`` when several)."""
    counts: dict[str, int] = {}
    with psycopg.connect(urls.source, autocommit=True) as conn:
        for system in systems:
            create_schema(conn, system=system)
            seeded = seed(conn, accounts=accounts, system=system)
            prefix = f"{system}." if len(systems) > 1 else ""
            counts.update({f"{prefix}{table}": rows for table, rows in seeded.items()})
    return counts


@contextmanager
def drained_engine(
    urls: DatabaseUrls,
    state_dir: Path,
    *,
    accounts: int = 200,
    systems: tuple[str, ...] = ("icoms",),
    timezone: str = "America/Chicago",
    timeout: float = 120.0,
    **overrides: object,
) -> Iterator[SyncEngine]:
    """A sync engine on freshly seeded billers (``systems``, also the settings'), set up and
    drained to the source's clock read in ``timezone``: warehouse and cache hold the seed.
    ``overrides``: more settings (``capture={...}``)."""
    seeded_source(urls, accounts=accounts, systems=systems)
    settings = settings_for(urls, state_dir, systems=list(systems), **overrides)
    with SyncEngine.from_settings(settings) as engine:
        engine.setup()
        engine.drain(until=source_now(urls.source, timezone=timezone), timeout=timeout)
        yield engine


def source_now(url: str, *, timezone: str = "America/Chicago") -> datetime:
    """The source's clock as naive local time of ``timezone``, as the watermarks of a
    catalog in that zone hold it (ICOMS: America/Chicago; Amdocs: UTC)."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT (clock_timestamp() AT TIME ZONE %s)::timestamp(6)", (timezone,)
        ).fetchone()
    assert row is not None
    value: datetime = row[0]
    return value


def next_second() -> None:
    """Sleep into the next whole second: ICOMS stamps have whole seconds, so a window only
    reads a second once it is over (rows stamped in the current one may still come)."""
    time.sleep(1.05 - time.time() % 1)


def parity(engine: SyncEngine) -> list[TableParity]:
    return compare_all(engine)


def assert_parity(engine: SyncEngine) -> list[TableParity]:
    results = parity(engine)
    problems = {f"{r.system}.{r.table}": r.differences for r in results if not r.equal}
    assert not problems, problems
    return results
