"""Hot rows: read ahead of the horizon, without moving the watermark (issue 15, item 1).

A row rewritten more often than the capture delay (an account balance touched by every
usage record) always carries a stamp at or above the horizon, so the tail never reads it
until its writes pause: its warehouse copy could be minutes old while every batch looks
fresh. After each tail batch of a table in ``capture.read_ahead_tiers``, the engine reads
the keys and stamps at or above the horizon (an index-only read, newest first) and calls a
key **hot** when its stamp changed since the previous look while it stayed above the
horizon: the tail could have read the earlier version, yet the row has been written again.
A hot key stays hot while it stays above the horizon; once it falls below, the tail reads
it. Hot rows are read in full, normalized, validated (the suite compiled to Polars, as
snapshots are; the tail validates the same row with Great Expectations when it reads it)
and merged as a ``read_ahead`` batch. The watermark does not move: the tail still reads
every stamp once the horizon passes it.

Why the read-ahead is safe (DESIGN §11): above the horizon a stamp taken at transaction
start can go backwards for one key. A read-ahead may load B's content stamped :01 while A,
which started at :00, has yet to commit its own write of the row; A's content is the truer
one and carries the older stamp. The merge guard of every later batch
(:func:`~billing_sync.load.merge_sql.later_read_over_read_ahead`) lets a read that started
after a read-ahead committed replace that read-ahead's rows whatever their version, since
reads of one table are ordered in time. Within one engine the reads of a table are
sequential; across processes the bound is the entity's last batch when the read began.

Cost: one index-only probe per batch and table, and full reads only of hot rows, at most
``capture.read_ahead_rows`` per batch (the newest first). The probe reads every key above
the horizon: on a table changing 3,500 rows/s, as many keys as the next batch reads. So it
runs only while the horizon trails the source's clock by ``capture.read_ahead_min_lag_seconds``
(0.1 s) or more: a row is starved only while it is rewritten faster than that lag, and a
lag below 0.1 s (a derived delay of a few ms, no long transaction, a microsecond stamp)
starves only rows rewritten more than 10 times a second. A second-resolution stamp's floor,
a fixed delay or an open transaction that holds the horizon back each make the lag larger:
the probe then runs every batch. A skipped probe forgets what the last one saw (a key is
hot only when two consecutive looks, both above the horizon, saw it change).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pyarrow as pa

from billing_sync.capture.cursor import cursor_horizon, decode_cursor
from billing_sync.capture.query import build_above_horizon_keys_query, build_rows_by_key_query
from billing_sync.config import Settings, SourceCatalog, TableMapping
from billing_sync.load.cache import CacheApplied
from billing_sync.load.merge_sql import READ_AHEAD_KIND
from billing_sync.load.warehouse import CommitResult
from billing_sync.reconcile.engine_port import EnginePort
from billing_sync.source.horizon import Horizon
from billing_sync.source.schema import CURSOR_ALIAS, region_schema, source_schema
from billing_sync.source.session import SourceSession
from billing_sync.validate.report import BatchValidationError

log = logging.getLogger(__name__)

PROBE_FACTOR = 20
"""Keys probed above the horizon per batch: this many times ``read_ahead_rows``."""

Key = tuple[Any, ...]


@dataclass
class HotRows:
    """What the last probe of each table saw above the horizon, and its hot keys."""

    _seen: dict[str, dict[Key, datetime]] = field(default_factory=dict)
    _hot: dict[str, set[Key]] = field(default_factory=dict)

    def observe(self, table: str, probe: dict[Key, datetime]) -> list[Key]:
        """Record a probe of ``table`` (key -> stamp, newest first); its hot keys in order.

        >>> from datetime import datetime as at
        >>> hot = HotRows()
        >>> hot.observe("T", {(1,): at(2026, 1, 1, 0, 0, 1), (2,): at(2026, 1, 1, 0, 0, 1)})
        []
        >>> hot.observe("T", {(1,): at(2026, 1, 1, 0, 0, 2), (2,): at(2026, 1, 1, 0, 0, 1)})
        [(1,)]
        >>> hot.observe("T", {(1,): at(2026, 1, 1, 0, 0, 2)})  # stays hot while above
        [(1,)]
        >>> hot.observe("T", {})  # fell below the horizon: the tail reads it
        []
        """
        before = self._seen.get(table, {})
        still = self._hot.get(table, set())
        hot = [
            key
            for key, stamp in probe.items()
            if key in still or (key in before and before[key] != stamp)
        ]
        self._seen[table] = probe
        self._hot[table] = set(hot)
        return hot

    def forget(self, table: str) -> None:
        """No look this batch: the next one starts afresh."""
        self._seen.pop(table, None)
        self._hot.pop(table, None)


@dataclass(frozen=True)
class ReadAhead:
    """What one read-ahead of one table did."""

    hot_keys: int
    rows: int
    result: CommitResult | None
    cache: tuple[CacheApplied | None, str | None] = (None, None)


def reads_ahead(settings: Settings, mapping: TableMapping) -> bool:
    """Whether ``mapping``'s hot rows are read ahead: its tier is listed, and the horizon
    sees open transactions (without them a late commit can carry an older stamp than a
    row read ahead, and only the lookback, which compares versions, would look for it)."""
    capture = settings.capture
    return (
        mapping.tier in capture.read_ahead_tiers
        and capture.read_ahead_rows > 0
        and capture.use_transaction_horizon
    )


def after_tail(
    engine: EnginePort,
    hot_rows: HotRows,
    catalog: SourceCatalog,
    mapping: TableMapping,
    horizon: Horizon,
    tail: CommitResult,
) -> int:
    """The rows read ahead after ``tail`` committed (none unless :func:`reads_ahead`)."""
    if not reads_ahead(engine.settings, mapping):
        return 0
    last = tail.batch_id if tail.batch_id is not None else tail.previous_entity_batch_id
    return read_ahead(engine, hot_rows, catalog, mapping, horizon, read_after_batch=last).rows


def read_ahead(
    engine: EnginePort,
    hot_rows: HotRows,
    catalog: SourceCatalog,
    mapping: TableMapping,
    horizon: Horizon,
    *,
    read_after_batch: int,
) -> ReadAhead:
    """Probe ``mapping`` above ``horizon`` and merge its hot rows (module docstring).

    ``read_after_batch``: the entity's last batch before this read (the tail batch that
    just committed, or the one before it).
    """
    capture = engine.settings.capture
    limit = capture.read_ahead_rows
    name = f"{catalog.system}.{mapping.table}"
    if horizon_lag(mapping, horizon) < capture.read_ahead_min_lag_seconds:
        hot_rows.forget(name)
        return ReadAhead(0, 0, None)
    source = engine.source(catalog.system)
    probe = _probe(source, catalog, mapping, horizon, limit * PROBE_FACTOR)
    hot = hot_rows.observe(name, probe)[:limit]
    if not hot:
        return ReadAhead(0, 0, None)
    query = build_rows_by_key_query(
        mapping, schema=catalog.schema_name, keys=hot, style=source.style
    )
    raw = source.read_arrow(query, source_schema(mapping))
    try:
        _, screened = engine.prepare(raw, catalog, mapping, polars_validation=True, recheck=False)
    except BatchValidationError as failed:  # the tail reads these rows and decides
        log.warning("%s.%s: read-ahead skipped: %s", catalog.system, mapping.table, failed)
        return ReadAhead(len(hot), 0, None)
    rows = screened.good_arrow  # a row for quarantine waits for the tail, which records it
    result = engine.warehouse.commit_rows(
        system=catalog.system, mapping=mapping, rows=rows, kind=READ_AHEAD_KIND,
        run_id=engine.run_id, read_after_batch=read_after_batch,
    )  # fmt: skip
    cache = engine.apply_cache(mapping, rows, result)
    return ReadAhead(len(hot), rows.num_rows, result, cache)


def horizon_lag(mapping: TableMapping, horizon: Horizon) -> float:
    """Seconds the table's horizon (floored to its stamp's resolution) trails the source
    clock: a row rewritten faster than this is never below it.

    >>> from datetime import datetime
    >>> def table(stamp_type):
    ...     return TableMapping.model_validate({"table": "T", "entity": "e", "key": ["K"],
    ...         "cursor": "TS", "source_types": {"TS": stamp_type},
    ...         "columns": [{"source": "K", "target": "k", "type": "text"}]})
    >>> now = datetime(2026, 1, 1, 12, 0, 5, 400_000)
    >>> at = datetime(2026, 1, 1, 12, 0, 5, 370_000)
    >>> round(horizon_lag(table("timestamp(6) without time zone"), Horizon(at, now)), 3)
    0.03
    >>> round(horizon_lag(table("timestamp(0) without time zone"), Horizon(at, now)), 3)
    0.4
    """
    return (horizon.source_now - cursor_horizon(mapping, horizon.at)).total_seconds()


def _probe(
    source: SourceSession,
    catalog: SourceCatalog,
    mapping: TableMapping,
    horizon: Horizon,
    limit: int,
) -> dict[Key, datetime]:
    query = build_above_horizon_keys_query(
        mapping, schema=catalog.schema_name, horizon=cursor_horizon(mapping, horizon.at),
        limit=limit, style=source.style,
    )  # fmt: skip
    table: pa.Table = decode_cursor(source.read_arrow(query, region_schema(mapping)), mapping)
    keys = zip(*(table.column(name).to_pylist() for name in mapping.key), strict=True)
    return dict(zip(keys, table.column(CURSOR_ALIAS).to_pylist(), strict=True))
