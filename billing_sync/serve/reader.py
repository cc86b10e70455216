"""Querying the DuckDB cache while the pipeline writes it: how analysts connect.

DuckDB lets one process write a database file. While the pipeline applies a batch to
the cache, no other process can open the file, not even read-only; while any process
has it open read-only, the pipeline cannot apply. Both conflicts fail at once with
``IOException: Could not set lock on file ... Conflicting lock is held``.

The pipeline therefore opens the cache only while it applies a batch (a few tens of
milliseconds; it fetches from the warehouse before it opens the file), waits up to a
second for readers to let go, and otherwise leaves the cache behind without failing:
``billing-sync status`` and the Dagster metadata of ``cache/<entity>`` show the lag, and
the cache catches up from the warehouse as soon as the file is free.

Readers should do the same: open the file read-only for as short a time as possible,
and retry when the pipeline holds it. The helpers here do both:

A cache in miniature (the pipeline builds the real one at ``state/cache.duckdb``):

>>> import tempfile
>>> folder = Path(tempfile.mkdtemp())
>>> with duckdb.connect(str(folder / "cache.duckdb")) as con:
...     _ = con.execute(
...         "CREATE SCHEMA billing; CREATE SCHEMA serve;"
...         " CREATE TABLE billing.billing_account AS SELECT '001' AS site_id, 7 AS account_number;"
...         " CREATE VIEW serve.account_360 AS SELECT * FROM billing.billing_account"
...     )
>>> cache = folder / "cache.duckdb"

One statement: ``query_cache`` opens the file read-only (retrying for up to ``timeout``
seconds while the pipeline holds it), runs the statement, returns a Polars frame and
closes the file:

>>> query_cache(cache, "SELECT * FROM serve.account_360 WHERE site_id = ?", ["001"]).rows()
[('001', 7)]

For a few statements that must see the same state, keep one connection briefly:

>>> with connect_cache(cache) as con:
...     accounts = con.sql("SELECT count(*) FROM billing.billing_account").fetchall()
...     rows_in_view = con.sql("SELECT count(*) FROM serve.account_360").fetchall()
>>> accounts == rows_in_view == [(1,)]
True

Do not keep a connection open (a notebook's ``duckdb.connect(...)`` left open, a BI tool's
pool): for as long as it is open the cache stops receiving batches. Nothing fails, but
the cache falls behind until the connection closes. For a long interactive session,
query the warehouse (PostgreSQL, the same tables and ``serve`` views), or take your own
copy of the cache and keep that open as long as you like:

>>> copy = copy_cache(cache, folder / "my_copy.duckdb")  # tables and views, consistent
>>> with duckdb.connect(str(copy), read_only=True) as con:
...     con.sql("SELECT site_id FROM serve.account_360").fetchall()
[('001',)]

The copy holds the cache for as long as it takes to write (1.7 s for 2 million rows,
a 42 MB file, on a loaded 2-core machine); the pipeline catches up afterwards.

This module imports only ``duckdb`` and ``polars``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from billing_sync.load.locking import gate, is_lock_conflict, open_duckdb

DEFAULT_TIMEOUT_SECONDS = 30.0  # well above the pipeline's longest apply


class CacheUnavailable(RuntimeError):
    """The pipeline held the cache for longer than the reader agreed to wait."""


@contextmanager
def connect_cache(
    path: Path | str, *, timeout: float = DEFAULT_TIMEOUT_SECONDS
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection to the cache, closed when the block ends.

    Waits up to ``timeout`` seconds while the pipeline writes the file; keep the block
    short, since the pipeline cannot apply batches while it is open.

    Raises
    ------
    CacheUnavailable
        The file stayed locked for ``timeout`` seconds.
    """
    try:
        con = open_duckdb(path, read_only=True, wait_seconds=timeout)
    except duckdb.IOException as error:
        if is_lock_conflict(error):
            raise CacheUnavailable(
                f"the DuckDB cache {path} stayed locked by the pipeline for {timeout:.0f}s: {error}"
            ) from error
        raise
    try:
        yield con
    finally:
        con.close()


def query_cache(
    path: Path | str,
    sql: str,
    parameters: Sequence[Any] | None = None,
    *,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
) -> pl.DataFrame:
    """Run one read-only statement on the cache and return its rows as a Polars frame.

    ``parameters`` bind to ``?`` placeholders. The file is open only while the statement
    runs; the wait for the pipeline is bounded by ``timeout`` seconds.

    Raises
    ------
    CacheUnavailable
        The file stayed locked for ``timeout`` seconds.
    """
    with connect_cache(path, timeout=timeout) as con:
        relation = con.sql(sql, params=list(parameters or []))
        if relation is None:
            raise ValueError(f"query_cache runs queries that return rows, not: {sql!r}")
        frame = relation.pl()
    assert isinstance(frame, pl.DataFrame)
    return frame


def copy_cache(
    path: Path | str, target: Path | str, *, timeout: float = DEFAULT_TIMEOUT_SECONDS
) -> Path:
    """Copy the cache (tables and views, one consistent state) into a new file ``target``.

    Analysts may keep the copy open for as long as they like; the cache itself is held
    only while the copy is written. An existing ``target`` is replaced.

    Raises
    ------
    CacheUnavailable
        The pipeline held the file for ``timeout`` seconds.
    """
    target = Path(target)
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    try:
        _copy_into(partial, path, timeout=timeout)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(target)
    return target


def _copy_into(partial: Path, path: Path | str, *, timeout: float) -> None:
    """Write a copy of the cache at ``path`` into the new file ``partial``."""
    with duckdb.connect(str(partial)) as copy:
        copy.execute("SET enable_progress_bar = false")
        try:
            # ATTACH takes the same shared lock as a read-only connection: the same gate.
            deadline = time.monotonic() + timeout
            with gate(path, exclusive=False, deadline=deadline):
                while True:
                    try:
                        copy.execute("ATTACH ? AS cache (READ_ONLY)", [str(path)])
                        break
                    except duckdb.IOException as error:
                        if not is_lock_conflict(error) or time.monotonic() >= deadline:
                            raise
                        time.sleep(0.02)
        except duckdb.IOException as error:
            if is_lock_conflict(error):
                raise CacheUnavailable(
                    f"the DuckDB cache {path} stayed locked by the pipeline for "
                    f"{timeout:.0f}s: {error}"
                ) from error
            raise
        try:
            catalog = str(copy.execute("SELECT current_database()").fetchall()[0][0])
            quoted = '"' + catalog.replace('"', '""') + '"'
            copy.execute(f"COPY FROM DATABASE cache TO {quoted}")
        finally:
            copy.execute("DETACH cache")
