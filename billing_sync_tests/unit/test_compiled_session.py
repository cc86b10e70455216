"""The Oracle / Db2 session's own logic, on a stand-in database (no server for either
runs here): statements in the adapter's style run through the dialect with their values,
each in its own transaction that is over when the call returns, a driver's timeout
error becomes the session's timeout, and a real driver's failure names the source
without its password."""

from __future__ import annotations

import sqlite3
from typing import Any

import pyarrow as pa
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from billing_sync.capture.filter_expr import parse_filter
from billing_sync.capture.query import build_rows_by_key_query
from billing_sync.capture.snapshot import build_count_query
from billing_sync.config import TableMapping
from billing_sync.source.adapter_session import StatementTimeout
from billing_sync.source.compiled_session import CompiledConnection
from billing_sync.source.engines.oracle import OracleAdapter
from billing_sync.source.session import SourceSession, SourceUnavailable

MAPPING = TableMapping.model_validate(
    {
        "table": "ACCOUNT",
        "entity": "account",
        "key": ["SITE_ID", "ACCOUNT_NO"],
        "cursor": "CHG_TS",
        "columns": [
            {"source": "SITE_ID", "target": "site_id", "type": "text"},
            {"source": "ACCOUNT_NO", "target": "account_no", "type": "text"},
            {"source": "BALANCE", "target": "balance", "type": "decimal(12,2)"},
        ],
    }
)


class StandIn(OracleAdapter):
    """Oracle's style and session handling over an in-memory SQLite database."""

    timeout_markers = ("interrupted",)

    def __init__(self) -> None:
        engine = sa.create_engine("sqlite://", poolclass=sa.pool.StaticPool)
        with engine.begin() as conn:
            conn.exec_driver_sql(
                'CREATE TABLE "ACCOUNT" ("SITE_ID" TEXT, "ACCOUNT_NO" TEXT, "BALANCE" TEXT,'
                ' "CHG_TS" TEXT)'
            )
            conn.exec_driver_sql(
                """INSERT INTO "ACCOUNT" VALUES ('001', '1', '1.50', '2026-01-01 10:00:00'),"""
                """ ('001', '2', '2.00', '2026-01-01 10:00:01'),"""
                """ ('002', '7', '9.99', '2026-01-01 10:00:02')"""
            )
        super().__init__("oracle+oracledb://cap@db/?service_name=BILL", engine=engine)
        self.timeouts: list[float] = []

    def set_statement_timeout(self, connection: Connection, seconds: float) -> None:
        self.timeouts.append(seconds)

    def set_read_only(self, connection: Connection) -> None:
        pass


def _no_schema(query: Any) -> Any:
    # SQLite has no ICOMS schema: the builders' "ICOMS"."ACCOUNT" becomes "ACCOUNT".
    return query.text.replace('"ICOMS".', "")


def test_statements_run_with_their_values_each_in_a_finished_transaction() -> None:
    adapter = StandIn()
    session = CompiledConnection(adapter, timezone=None, statement_timeout=2.5)
    assert adapter.timeouts == [2.5]
    where = parse_filter("SITE_ID = '001'", label="t", columns={"SITE_ID": "text"})
    count = build_count_query(MAPPING, schema="ICOMS", where=where, style=session.style)
    assert ":filter_0" in count.text
    assert session.one(_no_schema(count), count.params) == (2,)
    assert not session.connection.in_transaction()

    by_key = build_rows_by_key_query(
        MAPPING, schema="ICOMS", keys=[("001", "2"), ("002", "7")], style=session.style
    )
    schema = pa.schema(
        [("SITE_ID", pa.string()), ("ACCOUNT_NO", pa.string()), ("BALANCE", pa.string()),
         ("_cursor_ts", pa.string())]
    )  # fmt: skip
    rows = session.read_arrow(_no_schema(by_key), by_key.params, schema)
    assert sorted(rows.column("ACCOUNT_NO").to_pylist()) == ["2", "7"]
    assert not session.connection.in_transaction()
    session.close()


def test_a_driver_timeout_becomes_the_sessions_timeout() -> None:
    adapter = StandIn()
    session = CompiledConnection(adapter, timezone=None, statement_timeout=1)
    raw = session.connection.connection.driver_connection
    assert isinstance(raw, sqlite3.Connection)
    raw.set_progress_handler(lambda: 1, 1)  # SQLite interrupts the statement at once
    with pytest.raises(StatementTimeout):
        session.one('SELECT count(*) FROM "ACCOUNT"')
    raw.set_progress_handler(None, 1)
    assert session.one('SELECT count(*) FROM "ACCOUNT"') == (3,)  # the session still works
    session.close()


def test_an_unreachable_oracle_source_is_named_without_its_password() -> None:
    with pytest.raises(SourceUnavailable) as raised:
        SourceSession("oracle+oracledb://capture:s3cret@127.0.0.1:1/?service_name=BILL")
    message = str(raised.value)
    assert "oracle+oracledb://capture:***@127.0.0.1:1" in message
    assert "s3cret" not in message


def test_an_ibm_i_source_without_odbc_names_what_to_install() -> None:
    from billing_sync.source.engines import MissingDriver

    try:
        import pyodbc  # noqa: F401
    except ImportError:  # no unixODBC (libodbc.so.2), as on this machine
        with pytest.raises(MissingDriver, match=r"billing-sync\[ibmi\].*unixODBC"):
            SourceSession("ibmi://capture:s3cret@127.0.0.1:1")
        return
    with pytest.raises(SourceUnavailable, match=r"capture:\*\*\*@"):
        SourceSession("ibmi://capture:s3cret@127.0.0.1:1")
