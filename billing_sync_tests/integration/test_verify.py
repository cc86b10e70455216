"""``verify``: key-range hashing finds missing, extra and stale rows; ``--repair`` fixes them.

Each test breaks parity one way (in the source, the warehouse or the cache) and fails if
the mechanism that finds or repairs it is taken out.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pytest
import yaml

from billing_sync.cli import main
from billing_sync.engine.sync import SyncEngine
from billing_sync.entities import STATE_SCHEMA
from billing_sync.postgres import DatabaseUrls
from billing_sync.reconcile.hashing import HARD_DELETE_TABLE
from billing_sync.reconcile.verify import DeleteCapExceeded, TableVerification, verify_table
from billing_sync_tests.integration.helpers import (
    assert_parity,
    drained_engine,
    seeded_source,
    settings_for,
    source_now,
)

pytestmark = pytest.mark.integration

PAYMENT_KEY = '("SITE_ID", "PAYMENT_NO")'


@pytest.fixture
def engine(databases: DatabaseUrls, tmp_path: Path) -> Iterator[SyncEngine]:
    """A warehouse and cache in parity with a small seeded source."""
    with drained_engine(databases, tmp_path, accounts=60, capture={"delay_seconds": 0}) as engine:
        yield engine


def _verify(engine: SyncEngine, *, repair: bool, **options: Any) -> TableVerification:
    catalog = engine.catalogs[0]
    return verify_table(engine, catalog, catalog.by_table["PAYMENT"], repair=repair, **options)


def _source_keys(url: str, sql_filter: str) -> list[tuple[str, int]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            f'SELECT "SITE_ID", "PAYMENT_NO" FROM icoms."PAYMENT" WHERE {sql_filter}'
            f" ORDER BY {PAYMENT_KEY}"
        ).fetchall()
    return [(site, number) for site, number in rows]


def _delete_in_source(url: str, keys: list[tuple[str, int]]) -> None:
    with psycopg.connect(url) as conn:
        for key in keys:
            conn.execute(f'DELETE FROM icoms."PAYMENT" WHERE {PAYMENT_KEY} = (%s, %s)', key)


def _key_text(key: tuple[str, int]) -> str:
    return f"{key[0]}|{key[1]}"


def _warehouse(url: str, text: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(text, params).fetchall()


def _cache(engine: SyncEngine, text: str, params: list[Any] | None = None) -> list[Any]:
    with duckdb.connect(str(engine.settings.resolved_cache_path), read_only=True) as con:
        return con.execute(text, params or []).fetchall()


def _watermark(url: str) -> list[tuple[Any, ...]]:
    return _warehouse(url, f"SELECT * FROM {STATE_SCHEMA}.watermark ORDER BY 1, 2")


def test_hard_deletes_are_flagged_by_one_repair_and_not_reported_again(
    engine: SyncEngine, databases: DatabaseUrls
) -> None:
    gone = _source_keys(databases.source, '"PAYMENT_NO" % 97 = 5')[:3]
    assert len(gone) == 3
    _delete_in_source(databases.source, gone)
    watermark = _watermark(databases.warehouse)

    first = _verify(engine, repair=True)
    assert first.warehouse.extra == sorted(map(_key_text, gone))
    assert not first.warehouse.missing and not first.warehouse.stale
    assert first.deleted == 3 and first.remaining == 0

    keys = [_key_text(key) for key in gone]
    flagged = _warehouse(
        databases.warehouse,
        "SELECT _source_key, _is_deleted FROM billing.payment WHERE _source_key = ANY(%s)",
        (keys,),
    )
    assert sorted(flagged) == [(key, True) for key in sorted(keys)]
    assert _cache(
        engine,
        "SELECT count(*) FROM billing.payment WHERE _is_deleted AND list_contains(?, _source_key)",
        [keys],
    ) == [(3,)], "the cache follows the hard deletes"
    recorded = _warehouse(databases.warehouse, f"SELECT source_key FROM {HARD_DELETE_TABLE}")
    assert sorted(key for (key,) in recorded) == sorted(keys)
    assert _watermark(databases.warehouse) == watermark, "a repair never moves the watermark"

    again = _verify(engine, repair=False)
    assert again.warehouse.total == 0 and again.equal, "recorded hard deletes are not reported"
    assert again.warehouse_rows == again.source_rows

    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_CACHE_FOR_WRITING, str(engine.settings.resolved_cache_path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        busy = _verify(engine, repair=False)
    finally:
        holder.kill()
        holder.wait(10)
    assert busy.cache is None and busy.cache_error is not None and "busy" in busy.cache_error
    assert busy.equal, "a busy cache is reported, not a failure"


HOLD_CACHE_FOR_WRITING = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])
print("holding", flush=True)
time.sleep(60)
"""


def test_a_mass_delete_above_the_cap_refuses_and_changes_nothing(
    engine: SyncEngine, databases: DatabaseUrls
) -> None:
    gone = _source_keys(databases.source, '"PAYMENT_NO" % 5 = 0')
    rows_before = _warehouse(databases.warehouse, "SELECT * FROM billing.payment ORDER BY 1, 2")
    _delete_in_source(databases.source, gone)

    with pytest.raises(DeleteCapExceeded) as refused:
        _verify(engine, repair=True)
    message = str(refused.value)
    assert f"{len(gone)} warehouse rows are no longer in the source" in message
    assert "max_delete_fraction=0.05" in message and "Nothing was changed" in message
    assert refused.value.verification.deleted == 0
    assert _warehouse(databases.warehouse, "SELECT * FROM billing.payment ORDER BY 1, 2") == (
        rows_before
    )
    assert _warehouse(databases.warehouse, f"SELECT count(*) FROM {HARD_DELETE_TABLE}") == [(0,)]

    allowed = _verify(engine, repair=True, max_delete_fraction=0.5)
    assert allowed.deleted == len(gone), "an operator can raise the cap for a real purge"


def test_a_row_changed_in_the_warehouse_is_found_and_repaired_and_the_cache_follows(
    engine: SyncEngine, databases: DatabaseUrls
) -> None:
    key = _key_text(_source_keys(databases.source, '"PAYMENT_NO" % 89 = 3')[0])
    edit = "UPDATE billing.payment SET amount = amount + 1000 WHERE _source_key = $1"
    with psycopg.connect(databases.warehouse) as conn:
        conn.execute(edit.replace("$1", "%s"), (key,))
    with duckdb.connect(str(engine.settings.resolved_cache_path)) as con:
        con.execute(edit.replace("$1", "?"), [key])  # a cache that followed the bad row
    watermark = _watermark(databases.warehouse)

    found = _verify(engine, repair=False)
    assert found.warehouse.stale == [key]
    assert not found.warehouse.missing and not found.warehouse.extra
    assert found.remaining == 1

    repaired = _verify(engine, repair=True)
    assert repaired.repaired_stale == 1 and repaired.remaining == 0
    assert _watermark(databases.warehouse) == watermark
    assert_parity(engine)  # source, warehouse and cache equal, column by column
    assert _verify(engine, repair=False).equal


def test_a_row_deleted_from_the_warehouse_is_found_and_repaired(
    engine: SyncEngine, databases: DatabaseUrls, capsys: pytest.CaptureFixture[str]
) -> None:
    key = _key_text(_source_keys(databases.source, '"PAYMENT_NO" % 83 = 7')[0])
    _warehouse_write(databases.warehouse, "DELETE FROM billing.payment WHERE _source_key = %s", key)

    found = _verify(engine, repair=False)
    assert found.warehouse.missing == [key]
    assert found.cache is not None and found.cache.extra == [key], "the cache still has it"

    config = _config_file(engine, databases)
    assert main(["--config", str(config), "verify", "PAYMENT"]) == 1
    report = capsys.readouterr().out
    assert f"missing 1 (e.g. {key})" in report and "DIFFERENT" in report
    assert main(["--config", str(config), "verify", "icoms.PAYMENT", "--repair"]) == 0
    report = capsys.readouterr().out
    assert "repaired: 1 missing" in report and "EQUAL" in report
    assert_parity(engine)


def _warehouse_write(url: str, text: str, *params: Any) -> None:
    with psycopg.connect(url) as conn:
        conn.execute(text, params)


def _config_file(engine: SyncEngine, databases: DatabaseUrls) -> Path:
    settings = engine.settings
    path = settings.state_dir / "settings.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "state_dir": str(settings.state_dir),
                "source_url": databases.source,
                "warehouse_url": databases.warehouse,
                "cache_path": str(settings.resolved_cache_path),
                "capture": {"delay_seconds": 0},
            }
        )
    )
    return path


SYNTHETIC_PAYMENTS = """
INSERT INTO icoms."PAYMENT" ("SITE_ID", "PAYMENT_NO", "ACCOUNT_NO", "PAY_DATE", "AMOUNT",
    "PAY_METHOD", "PAY_STATUS", "CARD_NO", "CARD_EXP", "CVV", "CRT_DATE", "CRT_TIME",
    "CHG_DATE", "CHG_TIME", "CHG_USER", "REC_STATUS")
SELECT a."SITE_ID", 100000000 + g, a."ACCOUNT_NO", 1250101 + (g %% 28),
       (1 + g %% 50000) / 100.0, (ARRAY['CA', 'CK', 'CC', 'AC'])[1 + g %% 4], 'P',
       NULL, NULL, NULL,
       to_char(c.at, 'YYYYMMDD')::int - 19000000, to_char(c.at, 'HH24MISS')::int,
       to_char(u.at, 'YYYYMMDD')::int - 19000000, to_char(u.at, 'HH24MISS')::int,
       'SYNTH', 'A'
FROM generate_series(1, %(rows)s) AS g
CROSS JOIN LATERAL (SELECT (now() AT TIME ZONE 'America/Chicago') - interval '2 days'
                           + g * interval '1 second' AS at) AS c
CROSS JOIN LATERAL (SELECT CASE WHEN g %% 3 = 0 THEN c.at
                                ELSE c.at + interval '1 hour' END AS at) AS u
JOIN (SELECT "SITE_ID", "ACCOUNT_NO",
             row_number() OVER (ORDER BY "SITE_ID", "ACCOUNT_NO") - 1 AS n
      FROM icoms."ACCOUNT") AS a
  ON a.n = g %% (SELECT count(*) FROM icoms."ACCOUNT")
"""


def test_100k_rows_with_10_differences_verify_by_hashes_not_rows(
    databases: DatabaseUrls, tmp_path: Path
) -> None:
    seeded_source(databases, accounts=30)
    with psycopg.connect(databases.source) as conn:
        conn.execute(SYNTHETIC_PAYMENTS, {"rows": 100_000})
        conn.execute('ANALYZE icoms."PAYMENT"')
    settings = settings_for(databases, tmp_path, capture={"delay_seconds": 0})
    with SyncEngine.from_settings(settings) as engine:
        engine.setup()
        engine.drain(until=source_now(databases.source), timeout=300)
        stale = [100_000_100, 100_050_000, 100_099_000]
        missing = [100_010_000, 100_060_000, 100_090_001]
        extra = [100_020_000, 100_030_000, 100_070_000, 100_080_000]
        with psycopg.connect(databases.warehouse) as conn:
            conn.execute(
                # An older version than the source's: an update the warehouse missed.
                "UPDATE billing.payment SET amount = amount + 1,"
                " _source_version = _source_version - interval '1 hour'"
                " WHERE payment_number = ANY(%s)",
                (stale,),
            )
            conn.execute("DELETE FROM billing.payment WHERE payment_number = ANY(%s)", (missing,))
        with psycopg.connect(databases.source) as conn:
            conn.execute('DELETE FROM icoms."PAYMENT" WHERE "PAYMENT_NO" = ANY(%s)', (extra,))

        found = _verify(engine, repair=False, segment_rows=10_000, leaf_rows=200)

    def numbers(keys: list[str]) -> list[int]:
        return sorted(int(key.split("|")[1]) for key in keys)

    assert numbers(found.warehouse.stale) == stale
    assert numbers(found.warehouse.missing) == missing
    assert numbers(found.warehouse.extra) == extra
    assert found.source_rows > 100_000
    # Only the differing segments were bisected down to leaves of about 40 rows, read on
    # both sides (reading every row would be 200k hashes), and only the cache buckets
    # holding a difference were read back as rows.
    assert found.leaf_ranges <= 10
    assert found.hashes_read <= 2_000, found.hashes_read
    assert found.cache is not None and found.cache_rows_read <= 5_000, found.cache_rows_read
    print(f"verify of {found.source_rows} rows with 10 differences: {found.seconds:.2f}s")
