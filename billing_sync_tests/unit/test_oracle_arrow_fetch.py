"""Oracle's batch read through python-oracledb's data frame fetch (``fetch_df_batches``).

No Oracle server runs here: the installed driver is checked for the API the adapter
calls, and the session's read runs on the SQLite stand-in of ``test_compiled_session``
with a ``fetch_df_batches`` that returns real ``oracledb.DataFrame`` objects (built by
``oracledb.from_arrow``), so the hand-over from the driver's frames to the batch's Arrow
table is the real code; only the server's side is stood in for.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Iterator
from typing import Any

import oracledb
import pyarrow as pa
import pytest

from billing_sync.capture.query import build_rows_by_key_query
from billing_sync.source.adapter_session import StatementTimeout
from billing_sync.source.compiled_session import FETCH_ROWS, CompiledConnection
from billing_sync.source.engines.oracle import OracleAdapter, _record_batches
from billing_sync_tests.unit.test_compiled_session import MAPPING, StandIn, _no_schema

SCHEMA = pa.schema(
    [("SITE_ID", pa.string()), ("ACCOUNT_NO", pa.string()), ("BALANCE", pa.string()),
     ("_cursor_ts", pa.string())]
)  # fmt: skip


class FrameStandIn(StandIn):
    """The stand-in whose driver connection has python-oracledb's data frame fetch."""

    def __init__(self, fail: Exception | None = None) -> None:
        super().__init__()
        self.calls: list[dict[str, Any]] = []
        self.fail = fail

    def df_batches(self, driver_connection: Any) -> Any:
        def fetch_df_batches(
            statement: str, parameters: dict[str, Any], size: int, *, requested_schema: Any
        ) -> Iterator[oracledb.DataFrame]:
            self.calls.append({"statement": statement, "parameters": parameters, "size": size,
                               "schema": requested_schema})  # fmt: skip
            if self.fail is not None:
                raise self.fail
            rows = driver_connection.execute(statement, parameters).fetchall()
            names = requested_schema.names
            for start in range(0, len(rows), 1):  # one row a frame: several batches
                chunk = rows[start : start + 1]
                columns = {name.lower(): [row[i] for row in chunk] for i, name in enumerate(names)}
                yield oracledb.from_arrow(pa.table(columns))
            yield EmptyFrame()  # the driver's last frame when no rows are left

        return fetch_df_batches

    def arrow_batches(self, connection: Any, *args: Any, **kwargs: Any) -> Any:
        self.in_transaction = connection.in_transaction()
        return super().arrow_batches(connection, *args, **kwargs)


class EmptyFrame:
    """An empty data frame (``oracledb.from_arrow`` builds none without rows); converting
    it fails as the driver's does."""

    def num_rows(self) -> int:
        return 0

    def __arrow_c_stream__(self, requested: object = None) -> object:
        raise IndexError("list index out of range")


def _query(session: CompiledConnection) -> Any:
    query = build_rows_by_key_query(
        MAPPING, schema="ICOMS", keys=[("001", "2"), ("002", "7")], style=session.style
    )
    return _no_schema(query), query.params


def test_the_installed_driver_has_the_data_frame_fetch_the_adapter_calls() -> None:
    parameters = inspect.signature(oracledb.Connection.fetch_df_batches).parameters
    assert {"statement", "parameters", "size", "requested_schema"} <= set(parameters)
    adapter = OracleAdapter("oracle+oracledb://cap@db/?service_name=BILL")
    assert adapter.df_batches(object()) is None  # before 3.0: the cursor path

    class Driver33:  # 3.0 to 3.3: frames in the driver's own types, so the cursor path
        def fetch_df_batches(self, statement: str, parameters: Any = None, size: int = 0) -> Any:
            raise AssertionError("not called")

    assert adapter.df_batches(Driver33()) is None


def test_a_batch_is_read_through_fetch_df_batches_with_the_batch_schema() -> None:
    adapter = FrameStandIn()
    session = CompiledConnection(adapter, timezone=None, statement_timeout=2)
    text, params = _query(session)
    table = session.read_arrow(text, params, SCHEMA)
    assert table.schema == SCHEMA
    assert sorted(zip(table["SITE_ID"].to_pylist(), table["ACCOUNT_NO"].to_pylist(),
                      strict=True)) == [("001", "2"), ("002", "7")]  # fmt: skip
    (call,) = adapter.calls
    # The statement as the dialect compiled it, its values by bind name, in the
    # session's read-only transaction (over when the call returns).
    assert ":k0_0" in call["statement"] and ":k1_1" in call["statement"], call["statement"]
    assert call["parameters"] == {"k0_0": "001", "k1_0": "2", "k0_1": "002", "k1_1": "7"}
    assert call["size"] == FETCH_ROWS and call["schema"] == SCHEMA and adapter.in_transaction
    assert not session.connection.in_transaction()
    session.close()


def test_a_failed_data_frame_fetch_reads_through_the_cursor(
    caplog: pytest.LogCaptureFixture,
) -> None:
    adapter = FrameStandIn(fail=oracledb.NotSupportedError("DPY-3030: cannot convert"))
    session = CompiledConnection(adapter, timezone=None, statement_timeout=2)
    text, params = _query(session)
    with caplog.at_level(logging.WARNING):
        table = session.read_arrow(text, params, SCHEMA)
    assert sorted(table["ACCOUNT_NO"].to_pylist()) == ["2", "7"]
    assert "Arrow fetch failed (DPY-3030" in caplog.text
    session.close()


def test_the_drivers_call_timeout_in_the_data_frame_fetch_is_the_sessions_timeout() -> None:
    adapter = FrameStandIn(fail=oracledb.OperationalError("interrupted: call timeout"))
    session = CompiledConnection(adapter, timezone=None, statement_timeout=2)
    text, params = _query(session)
    with pytest.raises(StatementTimeout):
        session.read_arrow(text, params, SCHEMA)
    assert not session.connection.in_transaction()
    session.close()


def test_frames_take_the_batch_schemas_names_and_types() -> None:
    frames = [
        oracledb.from_arrow(pa.table({"site_id": ["001"], "n": pa.array([7], pa.int32())})),
        EmptyFrame(),
    ]
    schema = pa.schema([("SITE_ID", pa.string()), ("N", pa.int64())])
    (batch,) = list(_record_batches(iter(frames), schema))
    assert batch.schema == schema and batch.to_pylist() == [{"SITE_ID": "001", "N": 7}]
