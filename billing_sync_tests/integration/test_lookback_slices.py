"""The lookback's region is swept in slices, one per micro-batch (issue 20).

Before, a table's whole ``lookback_seconds`` region was read in one batch every
``lookback_interval_seconds``: 30 s of a table changing 3,500 rows/s is about 100,000
keys, and the batch that read them (and every change waiting for it) took a second more.
Here a region of 600 keys is swept 50 keys a batch: rows back-dated into it, anywhere,
are still found as late rows, and no slice grows past what its shared stamps force.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import psycopg
import pytest

from billing_sync.engine import late_rows as late_rows_module
from billing_sync.engine.sync import SyncEngine
from billing_sync.postgres import DatabaseUrls
from billing_sync.simulator import plain
from billing_sync_tests.integration.helpers import assert_parity, settings_for, source_now

pytestmark = pytest.mark.integration

SLICE = 50
# key -> the key whose stamp it is given (newer than its own, below the watermark): early,
# middle, and one of the 100 rows sharing a stamp.
BACK_DATED = {7: 8, 150: 151, 350: 401}


def test_a_region_larger_than_a_slice_is_swept_over_several_batches_and_finds_late_rows(
    databases: DatabaseUrls, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with psycopg.connect(databases.source, autocommit=True) as conn:
        plain.seed(conn, rows=600)
        # Distinct stamps 10 ms apart over 6 s, but ids 301-400 share one stamp.
        conn.execute(
            "UPDATE peers.account_balance SET updated_at = updated_at - CASE"
            " WHEN id BETWEEN 301 AND 400 THEN interval '2.5 s'"
            " ELSE (600 - id) * interval '10 ms' END"
        )
    settings = settings_for(
        databases, tmp_path, systems=["peers"],
        capture={"lookback_seconds": 3600, "lookback_interval_seconds": 0,
                 "lookback_slice_rows": SLICE},
    )  # fmt: skip
    slices: list[int] = []
    sweep = late_rows_module._slice_keys

    def counted(*args: object, **kwargs: object) -> tuple[pl.DataFrame, object]:
        keys, reached = sweep(*args, **kwargs)  # type: ignore[arg-type]
        slices.append(keys.height)
        return keys, reached

    monkeypatch.setattr(late_rows_module, "_slice_keys", counted)
    with SyncEngine.from_settings(settings) as engine:
        engine.setup()
        engine.drain(until=source_now(databases.source, timezone="UTC"), tier="priority")
        with psycopg.connect(databases.source, autocommit=True) as conn:
            # Late rows: new content under an old stamp (another row's, inside the region).
            for key, stamp_of in BACK_DATED.items():
                conn.execute(
                    "UPDATE peers.account_balance SET balance = -1, updated_at ="
                    " (SELECT updated_at FROM peers.account_balance WHERE id = %s)"
                    " WHERE id = %s",
                    (stamp_of, key),
                )
        slices.clear()
        for _ in range(40):
            engine.sync_once(tier="priority")
            if _late_in_warehouse(engine) == len(BACK_DATED) and len(slices) > 3:
                break
        assert _late_in_warehouse(engine) == len(BACK_DATED), slices
        assert len(slices) > 600 // SLICE // 2, slices  # one pass spans many batches
        # A slice is at most SLICE keys, unless 100 keys share its first stamp: then it
        # grows to read them all (4x at a time), never re-reading them for ever.
        assert max(slices) <= 4 * SLICE and sorted(slices)[len(slices) // 2] <= SLICE, slices
        assert _late_rows_counted(engine) >= len(BACK_DATED)
        assert_parity(engine)


def _late_in_warehouse(engine: SyncEngine) -> int:
    with psycopg.connect(engine.urls.warehouse) as conn:
        row = conn.execute(
            "SELECT count(*) FROM billing.account_balance WHERE balance = -1"
        ).fetchone()
    assert row is not None
    return int(row[0])


def _late_rows_counted(engine: SyncEngine) -> int:
    with psycopg.connect(engine.urls.warehouse) as conn:
        row = conn.execute("SELECT sum(late_rows) FROM billing_sync.watermark").fetchone()
    assert row is not None
    return int(row[0] or 0)
