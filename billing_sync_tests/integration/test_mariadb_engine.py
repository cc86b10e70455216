"""The MySQL/MariaDB engine adapter against a live server (DESIGN §11).

``BILLING_SYNC_TEST_MYSQL_URL`` points the tests at a server (a SQLAlchemy URL of a user
that may create databases and users); otherwise ``mysql+pymysql://root@127.0.0.1:3306``.
Each test gets its own database. Without a reachable server the tests skip, saying how
to enable them (``.ci/run`` installs and starts Debian's mariadb-server).
"""

from __future__ import annotations

import logging
import secrets
import time
import uuid
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError

from billing_sync.postgres import DatabaseUrls
from billing_sync.reconcile.row_hash import row_hash
from billing_sync.source.engines import adapter_for
from billing_sync.source.engines.base import EngineAdapter
from billing_sync.source.engines.mysql import _BUFFER_IDLE_SECONDS
from billing_sync.source.engines.queries import SourceTable, change_query, compare, key_range_hash
from billing_sync_tests.mysql_support import mysql_server

__all__ = ["mysql_server"]  # a fixture, used by name


@pytest.fixture
def admin(mysql_server: URL) -> Iterator[sa.Engine]:
    """A read-write engine on a fresh database (the biller's own application)."""
    name = f"bs_{uuid.uuid4().hex[:10]}"
    root = sa.create_engine(mysql_server, isolation_level="AUTOCOMMIT")
    with root.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE `{name}`")
    engine = sa.create_engine(mysql_server.set(database=name), isolation_level="AUTOCOMMIT")
    yield engine
    engine.dispose()
    with root.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE `{name}`")
    root.dispose()


@pytest.fixture
def adapter(admin: sa.Engine) -> Iterator[EngineAdapter]:
    source = adapter_for(admin.url)
    yield source
    source.dispose()


def _table(admin: sa.Engine, rows: int = 0) -> None:
    with admin.connect() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE acct (chg_ts DATETIME(6) NOT NULL, id INT NOT NULL,"
            " status VARCHAR(10), flag TINYINT(1), amount DECIMAL(12,2),"
            " PRIMARY KEY (id), KEY acct_cursor (chg_ts, id)) ENGINE=InnoDB"
        )
        if rows:
            conn.exec_driver_sql(
                "INSERT INTO acct SELECT TIMESTAMP '2026-01-01 00:00:00' + INTERVAL seq DIV 10"
                f" SECOND, seq, 'A', MOD(seq, 2), seq / 100 FROM seq_1_to_{rows}"
            )
            conn.exec_driver_sql("ANALYZE TABLE acct")


def test_session_is_read_only_and_a_write_fails(admin: sa.Engine, adapter: EngineAdapter) -> None:
    _table(admin)
    with adapter.connect() as conn:
        with pytest.raises(DBAPIError) as raised:
            conn.exec_driver_sql("INSERT INTO acct (chg_ts, id) VALUES (NOW(6), 1)")
        assert raised.value.orig is not None and raised.value.orig.args[0] == 1792  # READ ONLY
    with admin.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM acct").scalar_one() == 0


def test_source_now_is_the_servers_clock(admin: sa.Engine, adapter: EngineAdapter) -> None:
    with admin.connect() as conn:
        before = conn.exec_driver_sql("SELECT NOW(6)").scalar_one()
    with adapter.connect() as conn:
        now = adapter.source_now(conn)
    assert isinstance(now, datetime)
    assert timedelta(0) <= now - before < timedelta(seconds=5)


def test_horizon_probe_sees_another_sessions_open_transaction(
    admin: sa.Engine, adapter: EngineAdapter
) -> None:
    _table(admin)
    with adapter.connect() as conn:
        assert adapter.oldest_open_transaction(conn) is None
    writer = admin.connect().execution_options(isolation_level="READ COMMITTED")
    try:
        writer.begin()
        writer.exec_driver_sql("INSERT INTO acct (chg_ts, id) VALUES (NOW(6), 1)")
        thread = writer.exec_driver_sql("SELECT CONNECTION_ID()").scalar_one()
        stamped = writer.exec_driver_sql("SELECT chg_ts FROM acct WHERE id = 1").scalar_one()
        time.sleep(
            _BUFFER_IDLE_SECONDS + 0.05
        )  # past the buffer and the probe's reuse of an answer
        with adapter.connect() as conn:
            oldest = adapter.oldest_open_transaction(conn)
            now = adapter.source_now(conn)
        assert oldest is not None and oldest.id == str(thread)
        # TRX_STARTED is floored to the second, never after the row's stamp.
        assert oldest.started_at <= stamped <= now
        assert 0 <= oldest.age_seconds < 10
        writer.rollback()
    finally:
        writer.close()
    time.sleep(_BUFFER_IDLE_SECONDS + 0.05)
    with adapter.connect() as conn:
        assert adapter.oldest_open_transaction(conn) is None


def test_horizon_probe_degrades_with_one_warning_without_process(
    admin: sa.Engine, caplog: pytest.LogCaptureFixture
) -> None:
    _table(admin)
    user, password = f"bs_np_{uuid.uuid4().hex[:8]}", secrets.token_hex(8)
    database = admin.url.database
    with admin.connect() as conn:
        for host in ("%", "localhost"):
            # text(): the driver's %-formatting would read the host '%' as a placeholder.
            conn.execute(sa.text(f"CREATE USER '{user}'@'{host}' IDENTIFIED BY '{password}'"))
            conn.execute(sa.text(f"GRANT SELECT ON `{database}`.* TO '{user}'@'{host}'"))
    limited = adapter_for(admin.url.set(username=user, password=password))
    try:
        writer = admin.connect().execution_options(isolation_level="READ COMMITTED")
        writer.begin()
        writer.exec_driver_sql("INSERT INTO acct (chg_ts, id) VALUES (NOW(6), 1)")
        with caplog.at_level(logging.WARNING), limited.connect() as conn:
            assert limited.oldest_open_transaction(conn) is None
            assert limited.oldest_open_transaction(conn) is None
            assert conn.exec_driver_sql("SELECT count(*) FROM acct").scalar_one() == 0
        writer.rollback()
        writer.close()
    finally:
        limited.dispose()
        with admin.connect() as conn:
            for host in ("%", "localhost"):
                conn.execute(sa.text(f"DROP USER '{user}'@'{host}'"))
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "PROCESS" in warnings[0].getMessage() and password not in warnings[0].getMessage()
    assert limited.horizon_unavailable is not None


def test_change_query_walks_the_cursor_index(admin: sa.Engine, adapter: EngineAdapter) -> None:
    _table(admin, rows=20_000)
    source = SourceTable(
        name="acct", columns=("chg_ts", "id", "status"), key=("id",), cursor=("chg_ts",)
    )
    query = change_query(adapter, source, batch_rows=500)
    params = {
        "wm_c0": datetime(2026, 1, 1, 0, 10),
        "wm_k0": 6000,
        "horizon_c0": datetime(2026, 1, 1, 0, 20),
    }
    with adapter.connect() as conn:
        assert adapter.explain_uses_index(conn, query.params(params), "acct_cursor")
        rows = adapter.read_arrow(conn, query, params)
        # Why the expanded form: the same condition as a row value is a full scan here.
        table = source.table()
        row_value = (
            sa.select(table.c.id)
            .where(
                compare(
                    [table.c.chg_ts, table.c.id],
                    ">",
                    [sa.bindparam("wm_c0"), sa.bindparam("wm_k0")],
                    row_values=True,
                )
            )
            .order_by(table.c.chg_ts, table.c.id)
            .limit(500)
        )
        assert not adapter.explain_uses_index(conn, row_value.params(params), "acct_cursor")
    assert rows.num_rows == 500
    assert rows.column("id").to_pylist()[:2] == [6001, 6002]


def test_reflection_maps_types_to_families(admin: sa.Engine, adapter: EngineAdapter) -> None:
    _table(admin)
    with adapter.connect() as conn:
        table = adapter.reflect(conn, "acct")
    families = {name: column.family for name, column in table.columns.items()}
    assert families == {
        "chg_ts": "timestamp",
        "id": "int",
        "status": "text",
        "flag": "boolean",
        "amount": "numeric",
    }
    assert table.primary_key == ("id",)
    assert table.indexes["acct_cursor"] == ("chg_ts", "id")


# -- the row hash: equal in meaning on MariaDB and PostgreSQL -----------------------------

HASHED = [
    ("txt", "text"),
    ("amount", "decimal(12,2)"),
    ("d", "date"),
    ("ts", "timestamp"),
    ("n", "integer"),
    ("big", "bigint"),
    ("flag", "boolean"),
]
MYSQL_DDL = (
    "CREATE TABLE h (k INT PRIMARY KEY, txt VARCHAR(20), amount DECIMAL(12,2), d DATE,"
    " ts DATETIME(6), n INT, big BIGINT, flag TINYINT(1))"
)
PG_DDL = (
    "CREATE TABLE h (k int PRIMARY KEY, txt varchar(20), amount numeric(12,2), d date,"
    " ts timestamp(6), n int, big bigint, flag boolean)"
)
ROWS: list[tuple[Any, ...]] = [
    (
        1,
        "abc",
        Decimal("12.50"),
        date(2026, 1, 31),
        datetime(2026, 1, 31, 23, 59, 59, 999999),
        42,
        9_000_000_000,
        True,
    ),
    (
        2,
        "padded   ",
        Decimal("-0.50"),
        date(1969, 12, 31),
        datetime(1969, 12, 31, 23, 0, 0, 1),
        -7,
        -1,
        False,
    ),
    (3, None, None, None, None, None, None, None),
    (4, "", Decimal("0.00"), date(2000, 1, 1), datetime(1970, 1, 1), 0, 0, False),
    (
        5,
        "Zoë ß €",
        Decimal("9999999999.99"),
        date(1900, 3, 1),
        datetime(2038, 1, 19, 3, 14, 8),
        2_147_483_647,
        -9_223_372_036_854_775_808,
        True,
    ),
    # The escaping: a separator inside a text, and a text that reads like NULL's marker.
    (6, "a|b\\N", None, None, None, 1, 1, True),
    (7, "\\N", None, None, None, 1, 1, True),
]


def reference_hash(row: tuple[Any, ...]) -> int:
    """The contract in Python (reconcile.row_hash): canonical texts, escaped, joined by
    ``|``, MD5, first 15 hex digits."""
    return row_hash(row[1:], [kind for _, kind in HASHED])


def _hashes(adapter: EngineAdapter, conn: sa.Connection) -> list[int]:
    table = sa.table("h", *(sa.column(name) for name in ["k", *(n for n, _ in HASHED)]))
    expression = adapter.row_hash([(table.c[name], kind) for name, kind in HASHED])
    query = sa.select(expression).select_from(table).order_by(table.c.k)
    return [int(value) for value in conn.execute(query).scalars()]


def _range_sum(adapter: EngineAdapter, conn: sa.Connection) -> tuple[int, int]:
    source = SourceTable(name="h", columns=("k",), key=("k",))
    query = key_range_hash(adapter, source, HASHED, hi=False)
    count, total = conn.execute(query, {"lo0": 2}).one()
    return int(count), int(total)


def test_row_hash_is_equal_on_mariadb_postgresql_and_the_reference(
    admin: sa.Engine, adapter: EngineAdapter, databases: DatabaseUrls
) -> None:
    with admin.connect() as conn:
        conn.exec_driver_sql(MYSQL_DDL)
        conn.exec_driver_sql(f"INSERT INTO h VALUES ({', '.join(['%s'] * 8)})", ROWS)
    pg_url = make_url(databases.source).set(drivername="postgresql+psycopg")
    pg_admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with pg_admin.connect() as conn:
        conn.exec_driver_sql(PG_DDL)
        conn.exec_driver_sql(f"INSERT INTO h VALUES ({', '.join(['%s'] * 8)})", ROWS)
    pg_admin.dispose()
    postgres = adapter_for(pg_url)
    try:
        with adapter.connect() as my, postgres.connect() as pg:
            expected = [reference_hash(row) for row in ROWS]
            assert _hashes(adapter, my) == expected
            assert _hashes(postgres, pg) == expected
            range_sum = (len(ROWS) - 1, sum(expected[1:]))
            assert _range_sum(adapter, my) == _range_sum(postgres, pg) == range_sum
    finally:
        postgres.dispose()


text_values = st.one_of(
    st.none(),
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=12),
)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    txt=text_values,
    cents=st.one_of(st.none(), st.integers(-(10**11) + 1, 10**11 - 1)),
    micros=st.one_of(st.none(), st.integers(-(10**15), 4 * 10**15)),
    n=st.one_of(st.none(), st.integers(-(2**31), 2**31 - 1)),
)
def test_mariadb_row_hash_matches_the_reference_for_any_values(
    admin: sa.Engine,
    adapter: EngineAdapter,
    txt: str | None,
    cents: int | None,
    micros: int | None,
    n: int | None,
) -> None:
    ts = None if micros is None else datetime(1970, 1, 1) + timedelta(microseconds=micros)
    amount = None if cents is None else Decimal(cents).scaleb(-2)
    day = None if ts is None else ts.date()
    row = (1, txt, amount, day, ts, n, n, None if n is None else n % 2 == 0)
    with admin.connect() as conn:
        conn.exec_driver_sql("DROP TABLE IF EXISTS h")
        conn.exec_driver_sql(MYSQL_DDL + " DEFAULT CHARSET=utf8mb4")
        conn.exec_driver_sql(f"INSERT INTO h VALUES ({', '.join(['%s'] * 8)})", [row])
        stored = conn.exec_driver_sql("SELECT * FROM h").one()
    with adapter.connect() as conn:
        assert _hashes(adapter, conn) == [reference_hash(tuple(stored))]


def test_the_portable_stamp_floor_matches_the_polars_decode_on_mariadb(
    admin: sa.Engine, adapter: EngineAdapter
) -> None:
    """verify hashes a composite stamp in MariaDB's SQL (no make_date, DIV for quotients);
    it must land where the sync's decode (the warehouse's ``_source_version``) does."""
    import polars as pl

    from billing_sync.capture.cursor import decode_cyymmdd_hhmmss, packed_stamp_sql

    pairs = [(d, t) for d in (0, 100, 1250001, 1250100, 1250231, 1251300, 1240229, 1230229,
                              1000229, 1001231, 1251124, 9999999, 99999999, -3)
             for t in (0, 70509, 235959, 246000, 126000, 125960, 999999, -1)]  # fmt: skip
    pairs.append((None, None))
    sql = packed_stamp_sql('"d"', '"t"', style=adapter.style, integer=adapter.integer_type)
    with admin.connect() as conn:
        conn.exec_driver_sql("SET SESSION sql_mode = CONCAT(@@sql_mode, ',ANSI_QUOTES')")
        conn.exec_driver_sql('CREATE TABLE p (n INT PRIMARY KEY, "d" BIGINT, "t" BIGINT)')
        conn.exec_driver_sql(
            "INSERT INTO p VALUES (%s, %s, %s)", [(n, d, t) for n, (d, t) in enumerate(pairs)]
        )
        packed = [row[0] for row in conn.exec_driver_sql(f"SELECT {sql} FROM p ORDER BY n")]
    decoded = (
        pl.DataFrame({"d": [p[0] for p in pairs], "t": [p[1] for p in pairs]},
                     schema={"d": pl.Int64, "t": pl.Int64})
        .select(decode_cyymmdd_hhmmss(pl.col("d"), pl.col("t")))
        .to_series()
        .to_list()
    )  # fmt: skip
    for pair, value, stamp in zip(pairs, packed, decoded, strict=True):
        assert value == int(stamp.strftime("%Y%m%d%H%M%S")) - 19_000_000_000_000, (pair, value)
