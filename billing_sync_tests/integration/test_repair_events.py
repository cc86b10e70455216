"""Repairs that must converge and stay loud (issue 12, items 7, 8, 9 and 13).

- a version that went backwards in the source is repaired to the source's content,
  counted and alerted;
- any parity repair is alerted;
- a mass delete refuses the table's sync until resolved, whatever inserts do to the count;
- a truncated cache file is set aside and rebuilt from the warehouse, and alerted.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest

from billing_sync.alerts import conditions as c
from billing_sync.capture.regression import SourceRegressionError
from billing_sync.engine.status import table_status
from billing_sync.engine.status_report import format_status
from billing_sync.engine.sync import SyncEngine
from billing_sync.load.cache import set_aside_files
from billing_sync.postgres import DatabaseUrls
from billing_sync.reconcile import events
from billing_sync.reconcile.verify import TableVerification, verify_table
from billing_sync_tests.integration.helpers import (
    assert_parity,
    next_second,
    seeded_source,
    settings_for,
    source_now,
)

pytestmark = pytest.mark.integration

PAYMENT = 'icoms."PAYMENT"'
KEY = '("SITE_ID", "PAYMENT_NO")'


def _stamp(offset_seconds: int) -> str:
    """SET fragment: an ICOMS change stamp ``offset_seconds`` from the transaction's start."""
    at = (
        "(date_trunc('second', now() AT TIME ZONE 'America/Chicago')"
        f" + make_interval(secs => {offset_seconds}))"
    )
    return (
        f"\"CHG_DATE\" = to_char({at}, 'YYYYMMDD')::int - 19000000,"
        f" \"CHG_TIME\" = to_char({at}, 'HH24MISS')::int"
    )


@pytest.fixture
def engine(databases: DatabaseUrls, tmp_path: Path) -> Iterator[SyncEngine]:
    seeded_source(databases, accounts=60)
    settings = settings_for(
        databases, tmp_path, capture={"delay_seconds": 0, "shrink_check_interval_seconds": 0}
    )
    with SyncEngine.from_settings(settings) as engine:
        engine.setup()
        engine.drain(until=source_now(databases.source))
        yield engine


def _verify(engine: SyncEngine, *, repair: bool, **options: Any) -> TableVerification:
    catalog = engine.catalogs[0]
    return verify_table(engine, catalog, catalog.by_table["PAYMENT"], repair=repair, **options)


def _one(url: str, text: str, params: tuple[Any, ...] = ()) -> Any:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(text, params).fetchone()
    assert row is not None
    return row[0]


def _payment_key(url: str) -> tuple[str, int]:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            f'SELECT "SITE_ID", "PAYMENT_NO" FROM {PAYMENT} WHERE "PAYMENT_NO" % 89 = 3'
            f" ORDER BY {KEY} LIMIT 1"
        ).fetchone()
    assert row is not None
    return row[0], row[1]


def test_a_version_gone_backwards_is_repaired_to_the_source_counted_and_alerted(
    engine: SyncEngine, databases: DatabaseUrls
) -> None:
    key = _payment_key(databases.source)
    text = f"{key[0].rstrip()}|{key[1]}"
    with psycopg.connect(databases.source, autocommit=True) as conn:
        conn.execute(
            f'UPDATE {PAYMENT} SET "AMOUNT" = 111.11, {_stamp(0)} WHERE {KEY} = (%s, %s)', key
        )
    next_second()
    engine.drain(until=source_now(databases.source))
    # A second update stamped two minutes earlier (an application server's lagging clock):
    # below the watermark and older than the version the warehouse holds. (Another row
    # changes now, or the table's newest change would be below the watermark.)
    with psycopg.connect(databases.source, autocommit=True) as conn:
        conn.execute(
            f'UPDATE {PAYMENT} SET "AMOUNT" = "AMOUNT" + 1, {_stamp(0)} WHERE {KEY} ='
            f' (SELECT "SITE_ID", "PAYMENT_NO" FROM {PAYMENT} WHERE {KEY} <> (%s, %s)'
            " ORDER BY 1 DESC, 2 DESC LIMIT 1)",
            key,
        )
        conn.execute(
            f'UPDATE {PAYMENT} SET "AMOUNT" = 222.22, {_stamp(-120)} WHERE {KEY} = (%s, %s)', key
        )
    next_second()
    engine.drain(until=source_now(databases.source))
    amount = "SELECT amount FROM billing.payment WHERE _source_key = %s"
    assert _one(databases.warehouse, amount, (text,)) == Decimal("111.11"), "the tail refuses it"

    found = _verify(engine, repair=False)
    assert found.warehouse.stale == [text] and found.warehouse.backwards == [text]

    repaired = _verify(engine, repair=True)
    assert repaired.repaired_stale == 1 and repaired.repaired_backwards == 1
    assert repaired.remaining == 0
    assert _one(databases.warehouse, amount, (text,)) == Decimal("222.22")
    assert_parity(engine)  # the cache follows
    assert _verify(engine, repair=False).equal

    repairs = events.repairs_within(engine.warehouse.conn, window_seconds=600)
    assert repairs["icoms.PAYMENT"] == {"missing": 0, "stale": 1, "backwards": 1, "deleted": 0}
    (alert,) = c.parity_repairs(repairs, window_seconds=600)
    assert alert.kind == c.PARITY_REPAIRED and "1 back to an older source version" in alert.summary


def test_a_row_committed_below_the_lookback_is_repaired_and_alerted(
    engine: SyncEngine, databases: DatabaseUrls
) -> None:
    key = _payment_key(databases.source)
    # Stamped 90 s back: below the watermark and the 30 s lookback, newer than the warehouse.
    with psycopg.connect(databases.source, autocommit=True) as conn:
        conn.execute(
            f'UPDATE {PAYMENT} SET "AMOUNT" = 333.33, {_stamp(-90)} WHERE {KEY} = (%s, %s)', key
        )
    next_second()
    engine.drain(until=source_now(databases.source))
    repaired = _verify(engine, repair=True)
    assert repaired.repaired_stale == 1 and repaired.repaired_backwards == 0
    repairs = events.repairs_within(engine.warehouse.conn, window_seconds=600)
    (alert,) = c.parity_repairs(repairs, window_seconds=600)
    assert alert.subject == "icoms.PAYMENT" and "1 stale" in alert.summary


def test_a_mass_delete_keeps_the_sync_refused_until_the_deletes_are_confirmed(
    engine: SyncEngine, databases: DatabaseUrls
) -> None:
    total = _one(databases.source, f"SELECT count(*) FROM {PAYMENT}")
    with psycopg.connect(databases.source, autocommit=True) as conn:
        # 7% of the rows, past the 5% cap: counted, since the seed's payments per account
        # vary with the day it runs ("PAYMENT_NO" % 100 < 7 was 10.2% on 2026-12-05).
        deleted = conn.execute(
            f"DELETE FROM {PAYMENT} WHERE ctid IN (SELECT ctid FROM {PAYMENT}"
            ' ORDER BY "PAYMENT_NO" DESC LIMIT %s)',
            (int(total * 0.07) + 1,),
        ).rowcount
    assert 0.05 * total < deleted < 0.1 * total
    with pytest.raises(SourceRegressionError, match=r"the source shrank: .* no longer in it"):
        engine.sync_once()
    (refusal,) = events.open_refusals(engine.warehouse.conn)
    assert refusal.name == "icoms.PAYMENT" and refusal.gone == deleted
    (alert,) = c.shrink_refusals(
        [c.ShrinkRefusal(refusal.name, refusal.gone, refusal.warehouse_rows, refusal.reason)]
    )
    assert alert.severity == "critical"

    # New payments lift the source's count back above the floor: the refusal holds.
    with psycopg.connect(databases.source, autocommit=True) as conn:
        conn.execute(
            f'CREATE TEMP TABLE more AS SELECT * FROM {PAYMENT} WHERE "PAYMENT_NO" % 100 >= 7'
        )
        conn.execute(f'UPDATE more SET "PAYMENT_NO" = "PAYMENT_NO" + 500000000, {_stamp(0)}')
        conn.execute(f"INSERT INTO {PAYMENT} SELECT * FROM more")
    assert _one(databases.source, f"SELECT count(*) FROM {PAYMENT}") > total
    for _ in range(2):
        with pytest.raises(SourceRegressionError, match="sync refused since"):
            engine.sync_once()
    assert events.open_refusals(engine.warehouse.conn)

    # A read-only verify does not end it; confirming the deletes does.
    _verify(engine, repair=False)
    assert events.open_refusals(engine.warehouse.conn)
    confirmed = _verify(engine, repair=True, max_delete_fraction=0.1)
    assert confirmed.deleted == deleted
    assert not events.open_refusals(engine.warehouse.conn)
    next_second()
    engine.drain(until=source_now(databases.source))
    assert_parity(engine)


def test_a_truncated_cache_is_set_aside_rebuilt_from_the_warehouse_and_alerted(
    databases: DatabaseUrls, tmp_path: Path
) -> None:
    seeded_source(databases, accounts=40)
    settings = settings_for(databases, tmp_path, capture={"delay_seconds": 0})
    with SyncEngine.from_settings(settings) as engine:
        engine.setup()
        engine.drain(until=source_now(databases.source))
    path = settings.resolved_cache_path
    size = path.stat().st_size
    with path.open("r+b") as file:
        file.truncate(size // 2)

    with SyncEngine.from_settings(settings) as engine:
        statuses = table_status(engine)  # crashed with "Could not read enough bytes"
        assert "icoms" in format_status(statuses)
        engine.setup()
        with psycopg.connect(databases.source, autocommit=True) as conn:
            conn.execute(f'UPDATE {PAYMENT} SET "AMOUNT" = 444.44, {_stamp(0)} WHERE ctid = '
                         f"(SELECT min(ctid) FROM {PAYMENT})")  # fmt: skip
        next_second()
        engine.drain(until=source_now(databases.source))
        assert_parity(engine)  # the cache caught up from the warehouse, whole
        (aside,) = set_aside_files(path)
        assert aside.name.startswith("cache.duckdb.damaged-") and aside.stat().st_size > 0
        (alert,) = c.cache_set_aside([aside.name])
        assert alert.kind == c.CACHE_SET_ASIDE and aside.name in alert.summary
        os.remove(aside)
        assert c.cache_set_aside(p.name for p in set_aside_files(path)) == []
