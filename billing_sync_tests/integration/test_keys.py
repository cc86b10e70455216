"""Composite keys stay distinct whatever their text holds, through a real sync and verify;
the SQL rendering of the key encoding writes what Python and Polars write."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing_sync.engine.sync import SyncEngine
from billing_sync.keys import encode_key, key_sql
from billing_sync.load.drift import rekey_sql
from billing_sync.postgres import DatabaseUrls
from billing_sync.reconcile.hashing import canonical_text, row_hash_expression
from billing_sync.reconcile.verify import verify_table
from billing_sync.simulator.clock import ICOMS_STAMP_SET
from billing_sync_tests.integration.helpers import (
    assert_parity,
    next_second,
    seeded_source,
    settings_for,
    source_now,
)

pytestmark = pytest.mark.integration

# PostgreSQL text holds no NUL; everything else, the separator and the escape above all.
_text = st.text(alphabet=st.sampled_from("|\\N a1é'%"), max_size=6) | st.text(
    alphabet=st.characters(codec="utf-8", blacklist_characters="\x00"),
    max_size=8,
)
_rows = st.lists(
    st.tuples(st.none() | _text, st.none() | _text, st.none() | st.integers(-(2**31), 2**31 - 1)),
    min_size=1,
    max_size=30,
)


@pytest.fixture(scope="module")
def pg(pg_server_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        yield conn


@pytest.fixture(scope="module")
def duck() -> Iterator[duckdb.DuckDBPyConnection]:
    with duckdb.connect() as con:
        yield con


def _expected(rows: list[tuple[Any, ...]]) -> list[str]:
    return [encode_key(row) for row in rows]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_rows)
def test_postgresql_writes_the_key_python_writes(
    pg: psycopg.Connection[Any], rows: list[tuple[Any, ...]]
) -> None:
    key = key_sql(["a", "b", "c"])
    found = pg.execute(
        f"SELECT {key} FROM unnest(%s::text[], %s::text[], %s::integer[])"
        " WITH ORDINALITY AS r(a, b, c, n) ORDER BY n",
        ([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]),
    ).fetchall()
    assert [text for (text,) in found] == _expected(rows)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_rows)
def test_duckdb_writes_the_key_python_writes(
    duck: duckdb.DuckDBPyConnection, rows: list[tuple[Any, ...]]
) -> None:
    key = key_sql(["a", "b", "c"])
    found = duck.execute(
        f"SELECT {key} FROM (SELECT unnest($a) AS a, unnest($b) AS b, unnest($c) AS c)",
        {"a": [r[0] for r in rows], "b": [r[1] for r in rows], "c": [r[2] for r in rows]},
    ).fetchall()
    assert [text for (text,) in found] == _expected(rows)


def test_verify_row_hashes_tell_a_moved_separator_and_a_null(pg: psycopg.Connection[Any]) -> None:
    """Verify hashes text columns joined: ``('a|b', 'c')`` and ``('a', 'b|c')``, NULL and a
    text ``\\N`` must not hash alike, or a stale row would compare equal."""
    hashed = row_hash_expression([canonical_text("a", "text"), canonical_text("b", "text")])
    rows = [("a|b", "c"), ("a", "b|c"), (None, "x"), ("\\N", "x")]
    hashes = [pg.execute(f"SELECT {hashed} FROM (SELECT %s::text AS a, %s::text AS b) AS r",
                         row).fetchone() for row in rows]  # fmt: skip
    assert len(set(hashes)) == len(rows)


# -- the ICOMS example, through a real sync and verify --------------------------------------

# (ACCOUNT_NO, SERVICE_CODE): with SITE_ID '001' and OCCURRENCE 1, both were 001|A|B|C|1.
SNAPSHOT_PAIR = [("A", "B|C"), ("A|B", "C")]
TAIL_PAIR = [("X\\", "|Y"), ("X", "\\|Y")]  # both were 001|X\||Y|1 joined bare


def _add_rows(url: str, pairs: list[tuple[str, str]]) -> None:
    """Accounts and their services, cloned from seeded rows of site 001, stamped now."""
    with psycopg.connect(url) as conn:
        for table, key_sets in (
            ("ACCOUNT", [('"ACCOUNT_NO" = %s', (account,)) for account, _ in pairs]),
            ("CUST_SERVICE", [
                ('"ACCOUNT_NO" = %s, "SERVICE_CODE" = %s, "OCCURRENCE" = 1', pair)
                for pair in pairs
            ]),
        ):  # fmt: skip
            for assignments, values in key_sets:
                conn.execute(
                    f'CREATE TEMP TABLE one AS SELECT * FROM icoms."{table}"'
                    " WHERE \"SITE_ID\" = '001' LIMIT 1"
                )
                conn.execute(
                    f"UPDATE one SET {assignments}, \"REC_STATUS\" = 'A', {ICOMS_STAMP_SET}",
                    values,
                )
                conn.execute(
                    f'INSERT INTO icoms."{table}" SELECT * FROM one ON CONFLICT DO NOTHING'
                )
                conn.execute("DROP TABLE one")


def _products(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT _source_key, account_number, product_code FROM billing.product"
            " WHERE site_id = '001' AND occurrence = 1 AND account_number = ANY(%s)"
            " ORDER BY _source_key",
            ([account for account, _ in SNAPSHOT_PAIR + TAIL_PAIR],),
        ).fetchall()


def test_keys_that_join_alike_stay_two_rows_through_sync_and_verify(
    databases: DatabaseUrls, tmp_path: Path
) -> None:
    seeded_source(databases, accounts=40)
    _add_rows(databases.source, SNAPSHOT_PAIR)
    settings_ = settings_for(databases, tmp_path, capture={"delay_seconds": 0})
    with SyncEngine.from_settings(settings_) as engine:
        engine.setup()
        engine.drain(until=source_now(databases.source))  # the snapshot
        next_second()
        _add_rows(databases.source, TAIL_PAIR)
        next_second()
        engine.drain(until=source_now(databases.source))  # the tail
        assert _products(databases.warehouse) == [
            ("001|A\\|B|C|1", "A|B", "C"),
            ("001|A|B\\|C|1", "A", "B|C"),
            ("001|X\\\\|\\|Y|1", "X\\", "|Y"),
            ("001|X|\\\\\\|Y|1", "X", "\\|Y"),
        ]
        catalog = engine.catalogs[0]
        mapping = catalog.by_table["CUST_SERVICE"]
        for _ in range(2):  # a repair that says EQUAL must stay EQUAL
            verified = verify_table(engine, catalog, mapping, repair=True)
            assert verified.equal and verified.warehouse.total == 0, verified
            assert verified.cache is not None and verified.cache.total == 0
            time.sleep(0.01)
        assert_parity(engine)

        # The upgrade path: a row keyed by the old bare join is re-keyed from its columns.
        with psycopg.connect(databases.warehouse, autocommit=True) as conn:
            conn.execute(
                "UPDATE billing.product SET _source_key = '001|A|B|C|1' WHERE _source_key = %s",
                ("001|A\\|B|C|1",),
            )
            assert len(_products(databases.warehouse)) == 4
            conn.execute(rekey_sql(mapping), {"system": "icoms"})
        assert [row[0] for row in _products(databases.warehouse)] == [
            "001|A\\|B|C|1", "001|A|B\\|C|1", "001|X\\\\|\\|Y|1", "001|X|\\\\\\|Y|1"
        ]  # fmt: skip
        assert verify_table(engine, catalog, mapping, repair=False).equal
