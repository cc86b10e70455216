"""Quarantine: bad rows wait aside, with their reasons, while the rest of the batch loads.

Decisions (DESIGN §6), named here once:

Row-level failures
    A row that fails an expectation of its entity's suite (GX reports the positions of every
    offending row) or a parent rule is kept out of the merge and written to the quarantine
    in the batch's own transaction: its problems to ``billing_sync.quarantine`` (one line
    per entity and source key: entity, source key, expectation, offending value, batch,
    first seen, last seen, status) and the row itself to ``billing_quarantine.<entity>``.
    The rest of the batch loads and the watermark advances.
Failing whole
    A batch whose bad rows pass the entity's threshold (:class:`QuarantinePolicy`: at least
    ``min_bad_rows`` and more than ``max_bad_share`` of its rows) fails whole, as does a
    failure that names no rows (a missing column, an expectation that could not run):
    nothing commits and the watermark stays.
Parents
    A row whose parent (``parents:`` in the suite) is in neither the warehouse, the same
    batch nor the source (a read by primary key) is an orphan: ``open``. A parent that is
    in the source only has not been captured yet (its table syncs in another tier, or it
    changed after its child so its version is newer): the row loads. (A watermark cannot
    tell the two apart.) With ``hold_pending`` such a row waits instead, ``pending``: not
    counted against the threshold, not alerted on, released when the parent is loaded.
Release
    Every batch of an entity re-checks its unreleased rows: a row of the batch whose key is
    in quarantine and passes now **fixes** it (the newer version loads); an orphan whose
    parent has arrived is **released**: its stored row joins the batch's merge (and the
    cache). ``billing-sync quarantine release`` releases rows by hand, unvalidated.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import cached_property
from typing import Any

import polars as pl
import psycopg
import pyarrow as pa

from billing_sync.capture.query import build_rows_by_key_query
from billing_sync.config import SourceCatalog, TableMapping
from billing_sync.entities import STATE_SCHEMA, EntityColumns, entity_columns, rows_to_arrow
from billing_sync.keys import decode_key, key_expr
from billing_sync.source.schema import source_schema
from billing_sync.source.session import SourceSession
from billing_sync.sql import quote_ident
from billing_sync.transform.failures import ExpectationFailure
from billing_sync.transform.normalize import normalized_source_key
from billing_sync.transform.protect import redact_text
from billing_sync.validate.report import ValidationReport, _json_safe
from billing_sync.validate.suites import KEY_COLUMN, ParentRule, Suite

QUARANTINE_TABLE = f"{STATE_SCHEMA}.quarantine"
PAYLOAD_SCHEMA = "billing_quarantine"

OPEN = "open"
PENDING = "pending"
RELEASED = "released"
STATUSES = (OPEN, PENDING, RELEASED)

FIXED = "fixed"  # a newer version of the row passed
PARENT_ARRIVED = "parent arrived"
MANUAL = "manual"

QUARANTINE_DDL = f"""
CREATE SCHEMA IF NOT EXISTS {PAYLOAD_SCHEMA};
CREATE TABLE IF NOT EXISTS {QUARANTINE_TABLE} (
    entity text NOT NULL,
    source_system text NOT NULL,
    source_key text NOT NULL,
    source_table text NOT NULL,
    source_version timestamp(6) NOT NULL,
    expectation text NOT NULL,
    column_name text,
    offending_value text,
    problems jsonb NOT NULL,
    parent_keys jsonb NOT NULL DEFAULT '{{}}',
    orphan_only boolean NOT NULL,
    status text NOT NULL CHECK (status IN ('open', 'pending', 'released')),
    batch_id bigint,
    first_seen timestamptz NOT NULL DEFAULT clock_timestamp(),
    last_seen timestamptz NOT NULL DEFAULT clock_timestamp(),
    times_seen integer NOT NULL DEFAULT 1,
    released_at timestamptz,
    released_batch_id bigint,
    release_reason text,
    PRIMARY KEY (entity, source_system, source_key)
);
CREATE INDEX IF NOT EXISTS quarantine_unreleased_ix ON {QUARANTINE_TABLE} (entity, source_system)
    WHERE status <> 'released';
"""


def payload_table(entity: str) -> str:
    return f"{PAYLOAD_SCHEMA}.{quote_ident(entity)}"


def create_tables(conn: psycopg.Connection[Any], entities: Iterable[EntityColumns]) -> None:
    """The quarantine table and one payload table per entity (idempotent; caller's transaction)."""
    conn.execute(QUARANTINE_DDL)
    for columns in entities:
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {payload_table(columns.entity)}"
            f" (LIKE {columns.table}, PRIMARY KEY (_source_system, _source_key))"
        )


# -- pure: what failed, per row ---------------------------------------------------------------


@dataclass(frozen=True)
class RowProblem:
    """One expectation one row did not meet, with the offending value."""

    expectation: str  # a label: ``type(column)``
    column: str | None
    value: Any
    converter: str | None = None  # a source value that did not convert: which converter
    reason: str | None = None  # and why

    def as_json(self) -> dict[str, Any]:
        found = {"expectation": self.expectation, "column": self.column,
                 "value": _json_safe(self.value)}  # fmt: skip
        if self.converter is not None:
            found.update(converter=self.converter, reason=self.reason)
        return found


def row_problems(
    frame: pl.DataFrame, report: ValidationReport
) -> tuple[dict[int, list[RowProblem]], list[ExpectationFailure]]:
    """Problems per row position, and the failures that name no rows (they fail the batch)."""
    by_row: dict[int, list[RowProblem]] = {}
    whole: list[ExpectationFailure] = []
    for failure in report.failures:
        if not failure.row_level or len(failure.row_positions) != failure.unexpected_count:
            whole.append(failure)
            continue
        values: list[Any] = (
            list(failure.row_values)
            if failure.row_values is not None
            else frame.get_column(failure.column).gather(list(failure.row_positions)).to_list()
            if failure.column is not None and failure.column in frame.columns
            else [None] * len(failure.row_positions)
        )
        converter, reason = failure.kwargs.get("converter"), failure.kwargs.get("reason")
        for position, value in zip(failure.row_positions, values, strict=True):
            by_row.setdefault(position, []).append(
                RowProblem(failure.label, failure.column, _json_safe(value), converter, reason)
            )
    return by_row, whole


def parent_key_expr(rule: ParentRule, parent: TableMapping | None = None) -> pl.Expr:
    """The parent's ``_source_key`` built from this entity's columns.

    Billers key one entity differently (ICOMS a billing account by site and account
    number, Amdocs by its BAN alone): when the parent's mapping in this system is known,
    its key's target columns that the rule names form the key, in the parent key's order.
    """
    columns = rule.key
    if parent is not None and set(parent.target_key) <= set(rule.key):
        columns = parent.target_key
    return key_expr([pl.col(name) for name in columns])


def parent_failure(
    rule: ParentRule, keys: list[str], values: list[Any], count: int, rows: int
) -> ExpectationFailure:
    return ExpectationFailure(
        expectation="expect_parent_to_exist",
        column=",".join(rule.key),
        unexpected_count=count,
        unexpected_percent=100.0 * count / rows if rows else None,
        sample_keys=keys[:5],
        sample_values=values[:5],
        kwargs={"column_list": rule.key, "parent": rule.entity},
    )


# -- the decision for one batch --------------------------------------------------------------


@dataclass(frozen=True)
class Unreleased:
    """A row in quarantine, as a batch of its entity sees it."""

    key: str
    version: datetime
    status: str
    orphan_only: bool
    parent_keys: dict[str, str]


@dataclass
class Screened:
    """What validation decided for one batch of one entity."""

    entity: str
    source_table: str
    good: pl.DataFrame  # the batch's rows that load
    bad: pl.DataFrame  # the batch's rows that go to quarantine
    problems: dict[str, list[RowProblem]]  # by source key, for every row of ``bad``
    pending: set[str]  # keys of ``bad`` whose only problem is a parent not captured yet
    parent_keys: dict[str, dict[str, str]]  # key -> {parent entity: parent key} for orphans
    report: ValidationReport  # the suite's failures plus the parent rules'
    fails_batch: bool = False
    reason: str | None = None
    released: pl.DataFrame | None = None  # stored rows whose parent arrived, loading now
    resolved: dict[str, str] = field(default_factory=dict)  # key -> FIXED or PARENT_ARRIVED
    now_open: set[str] = field(default_factory=set)  # pending rows whose parent is gone
    now_pending: set[str] = field(default_factory=set)  # open orphans whose parent appeared
    screen_seconds: float = 0.0  # parent checks and quarantine look-ups

    @property
    def seconds(self) -> float:
        """Validation's whole cost for the batch: the suite, the parent rules, the re-check."""
        return self.report.seconds + self.screen_seconds

    @property
    def quarantined(self) -> int:
        """Rows of this batch kept out of the warehouse (pending orphans included)."""
        return self.bad.height

    @property
    def bad_rows(self) -> int:
        """Rows counted against the threshold: quarantined, less those only pending."""
        return self.bad.height - len(self.pending)

    @property
    def released_rows(self) -> int:
        return 0 if self.released is None else self.released.height

    @cached_property
    def good_arrow(self) -> pa.Table:
        """The batch's good rows (without released ones) as Arrow."""
        return self.good.to_arrow()

    @property
    def needs_batch(self) -> bool:
        """Whether the commit must allocate a batch id even if no row merges."""
        return self.bad.height > 0 or bool(self.resolved)

    def to_load(self) -> pa.Table:
        """The rows to merge, as Arrow: the batch's good rows and the released ones."""
        if self.released is None or self.released.height == 0:
            return self.good_arrow
        released = self.released.select(self.good.columns).cast(self.good.schema)
        return pl.concat([self.good, released]).to_arrow()

    def write(self, conn: psycopg.Connection[Any], *, system: str, batch_id: int | None) -> None:
        """Record this batch's quarantine changes; inside the batch's transaction."""
        _write(conn, self, system=system, batch_id=batch_id)


def decide(
    frame: pl.DataFrame,
    *,
    entity: str,
    source_table: str,
    suite: Suite,
    report: ValidationReport,
    orphans: dict[int, tuple[list[RowProblem], dict[str, str], bool]],
) -> Screened:
    """Split ``frame`` into rows that load and rows that go to quarantine (pure).

    ``orphans``: per row position, its parent problems, its parent keys and whether it is
    only pending (its parents' tables are not caught up past it).
    """
    by_row, whole = row_problems(frame, report)
    positions = set(by_row) | set(orphans)
    keys = frame.get_column(KEY_COLUMN) if KEY_COLUMN in frame.columns else None
    problems: dict[str, list[RowProblem]] = {}
    pending: set[str] = set()
    parent_keys: dict[str, dict[str, str]] = {}
    keyless = 0
    for position in sorted(positions):
        key = None if keys is None else keys[position]
        if key is None:
            keyless += 1
            continue
        suite_problems = by_row.get(position, [])
        parent_problems, parents, only_pending = orphans.get(position, ([], {}, False))
        problems[key] = suite_problems + parent_problems
        if parents:
            parent_keys[key] = parents
        if not suite_problems and only_pending:
            pending.add(key)
    if positions:
        bad_mask = pl.Series([i in positions for i in range(frame.height)], dtype=pl.Boolean)
        good, bad = frame.filter(~bad_mask), frame.filter(bad_mask)
    else:
        good, bad = frame, frame.clear()
    screened = Screened(
        entity=entity,
        source_table=source_table,
        good=good,
        bad=bad,
        problems=problems,
        pending=pending,
        parent_keys=parent_keys,
        report=report,
    )
    if whole:
        screened.fails_batch = True
        screened.reason = "a failure names no rows: " + "; ".join(f.label for f in whole)
    elif keyless:
        screened.fails_batch = True
        screened.reason = f"{keyless} failing rows have no source key to quarantine them by"
    elif suite.quarantine.fails(screened.bad_rows, frame.height):
        screened.fails_batch = True
        policy = suite.quarantine
        screened.reason = (
            f"{screened.bad_rows} of {frame.height} rows are bad, over the {entity} threshold "
            f"({policy.max_bad_share:.0%}, at least {policy.min_bad_rows} rows)"
        )
    return screened


# -- I/O: screening a batch against the warehouse ----------------------------------------------


class SourceParents:
    """Which parent keys exist in the source: a bounded read by primary key, read-only.

    A parent missing from the warehouse but present in the source has only not been
    captured yet (or is itself in quarantine); one missing from both is a true orphan.
    """

    def __init__(self, session: SourceSession, catalog: SourceCatalog) -> None:
        self.session = session
        self.catalog = catalog

    def mapping(self, entity: str) -> TableMapping | None:
        return next((m for m in self.catalog.tables if m.entity == entity), None)

    def existing(self, entity: str, keys: Iterable[str]) -> set[str]:
        mapping = self.mapping(entity)
        wanted = sorted(set(keys))
        if mapping is None or not wanted:
            return set()
        decoded = [_decode_key(mapping, key) for key in wanted]
        found: set[str] = set()
        for start in range(0, len(decoded), 1000):
            query = build_rows_by_key_query(
                mapping,
                schema=self.catalog.schema_name,
                keys=[key for key in decoded[start : start + 1000] if key is not None],
                style=self.session.style,
            )
            rows = pl.from_arrow(self.session.read_arrow(query, source_schema(mapping)))
            assert isinstance(rows, pl.DataFrame)
            found.update(rows.select(normalized_source_key(mapping)).to_series().to_list())
        return found


def _decode_key(mapping: TableMapping, key: str) -> tuple[Any, ...] | None:
    try:
        parts = decode_key(key)
    except ValueError:
        return None
    if len(parts) != len(mapping.key):
        return None
    values: list[Any] = []
    for name, part in zip(mapping.key, parts, strict=True):
        kind = mapping.column(name).type
        if part is None:  # a NULL key component: no source row can hold it
            return None
        try:
            values.append(int(part) if kind in ("integer", "bigint") else part)
        except ValueError:
            return None
    return tuple(values)


def screen(
    conn: psycopg.Connection[Any],
    *,
    system: str,
    mapping: TableMapping,
    frame: pl.DataFrame,
    report: ValidationReport,
    suite: Suite,
    source: SourceParents | None = None,
    hold_pending: bool = False,
    recheck: bool = True,
) -> Screened:
    """Check parents, split the batch, and find quarantined rows this batch fixes or frees.

    ``source`` tells a parent not captured yet from a true orphan; without it every
    missing parent is an orphan. A row whose parent is only not captured yet loads (its
    parent follows within a batch or two; holding it would cost freshness), unless
    ``hold_pending``: then it waits in quarantine as ``pending`` until the parent is in the
    warehouse. ``recheck`` False skips rows already in quarantine.
    """
    started = time.perf_counter()
    entity = mapping.entity
    orphans: dict[int, tuple[list[RowProblem], dict[str, str], bool]] = {}
    parent_failures: list[ExpectationFailure] = []
    for rule in suite.parents if frame.height else []:
        parent = source.mapping(rule.entity) if source is not None else None
        if source is not None and parent is None:
            continue  # no table of this system feeds the parent: the rule cannot apply
        wanted = frame.select(parent_key_expr(rule, parent).alias("parent")).get_column("parent")
        distinct = {key for key in wanted.unique().to_list() if key is not None}
        present = _in_warehouse(conn, system, rule.entity, distinct)
        if rule.entity == entity:
            present.update(frame.get_column(KEY_COLUMN).to_list())
        missing = distinct - present
        in_source = source.existing(rule.entity, missing) if source and missing else set()
        keys: list[str] = []
        values: list[Any] = []
        source_keys = frame.get_column(KEY_COLUMN)
        for position, parent_key in enumerate(wanted.to_list()):
            if parent_key is not None and parent_key not in missing:
                continue
            row_pending = parent_key in in_source
            if row_pending and not hold_pending:
                continue
            problems, parents, pending = orphans.get(position, ([], {}, True))
            problems = [*problems, RowProblem(rule.label, ",".join(rule.key), parent_key)]
            parents = {**parents, rule.entity: parent_key} if parent_key else parents
            orphans[position] = (problems, parents, pending and row_pending)
            keys.append(str(source_keys[position]))
            values.append(parent_key)
        if keys:
            parent_failures.append(parent_failure(rule, keys, values, len(keys), frame.height))
    screened = decide(
        frame,
        entity=entity,
        source_table=mapping.table,
        suite=suite,
        report=report,
        orphans=orphans,
    )
    if parent_failures:
        screened.report = replace(
            report, success=False, failures=[*report.failures, *parent_failures]
        )
    if recheck and not screened.fails_batch:
        _recheck(conn, system, mapping, suite, screened, source, hold_pending=hold_pending)
    screened.screen_seconds = time.perf_counter() - started
    return screened


def _in_warehouse(
    conn: psycopg.Connection[Any], system: str, entity: str, keys: Iterable[str]
) -> set[str]:
    wanted = list(keys)
    if not wanted:
        return set()
    # One text joined by a separator no key holds, split by the server: psycopg dumps a
    # list parameter element by element in Python, a third of the check for 50,000 keys.
    joined = _KEY_SEPARATOR.join(wanted)
    if len(wanted) > 1 and joined.count(_KEY_SEPARATOR) == len(wanted) - 1:
        keys_sql, parameter = "string_to_array(%s, chr(31))", joined
    else:
        keys_sql, parameter = "%s", wanted  # type: ignore[assignment]
    rows = conn.execute(
        f"SELECT _source_key FROM billing.{quote_ident(entity)}"
        f" WHERE _source_system = %s AND _source_key = ANY({keys_sql})",
        (system, parameter),
    ).fetchall()
    return {row[0] for row in rows}


_KEY_SEPARATOR = "\x1f"  # chr(31), the ASCII unit separator


def _unreleased(conn: psycopg.Connection[Any], system: str, entity: str) -> list[Unreleased]:
    rows = conn.execute(
        f"SELECT source_key, source_version, status, orphan_only, parent_keys"
        f" FROM {QUARANTINE_TABLE}"
        " WHERE entity = %s AND source_system = %s AND status <> 'released'",
        (entity, system),
    ).fetchall()
    return [Unreleased(row[0], row[1], row[2], row[3], dict(row[4] or {})) for row in rows]


def _recheck(
    conn: psycopg.Connection[Any],
    system: str,
    mapping: TableMapping,
    suite: Suite,
    screened: Screened,
    source: SourceParents | None,
    *,
    hold_pending: bool,
) -> None:
    """Rows of the batch that fix quarantined ones; stored orphans whose parent arrived."""
    waiting = _unreleased(conn, system, mapping.entity)
    if not waiting:
        return
    good_versions = dict(
        zip(
            screened.good.get_column(KEY_COLUMN).to_list(),
            screened.good.get_column("_source_version").to_list(),
            strict=True,
        )
    )
    in_batch = set(good_versions) | set(screened.problems)
    rules = {rule.entity for rule in suite.parents}
    candidates: list[Unreleased] = []
    for row in waiting:
        version = good_versions.get(row.key)
        if version is not None and version >= row.version:
            screened.resolved[row.key] = FIXED
        elif row.key not in in_batch and row.orphan_only:
            candidates.append(row)
    if not candidates:
        return
    wanted: dict[str, set[str]] = {}
    for row in candidates:
        for parent, parent_key in row.parent_keys.items():
            if parent in rules:
                wanted.setdefault(parent, set()).add(parent_key)
    present = {parent: _in_warehouse(conn, system, parent, keys) for parent, keys in wanted.items()}
    missing = {parent: keys - present[parent] for parent, keys in wanted.items()}
    in_source = {
        parent: source.existing(parent, keys) if source and keys else set()
        for parent, keys in missing.items()
    }
    arrived: list[str] = []
    for row in candidates:
        parents = {p: k for p, k in row.parent_keys.items() if p in rules}
        absent = {p: k for p, k in parents.items() if k in missing[p]}
        if not absent:
            arrived.append(row.key)
            continue
        coming = all(k in in_source[p] for p, k in absent.items())
        if coming and not hold_pending:
            arrived.append(row.key)
        elif row.status == PENDING and not coming:
            screened.now_open.add(row.key)
        elif row.status == OPEN and coming:
            screened.now_pending.add(row.key)
    if arrived:
        screened.released = load_payload(conn, mapping, system, arrived)
        for key in screened.released.get_column(KEY_COLUMN).to_list():
            screened.resolved[key] = PARENT_ARRIVED


def load_payload(
    conn: psycopg.Connection[Any], mapping: TableMapping, system: str, keys: Sequence[str]
) -> pl.DataFrame:
    """Stored quarantined rows as a frame of the normalized batch's columns."""
    columns = entity_columns(mapping)
    names = ", ".join(f'"{name}"' for name in columns.all)
    with conn.cursor() as cur:
        cur.execute(
            f"SELECT {names} FROM {payload_table(mapping.entity)}"
            " WHERE _source_system = %s AND _source_key = ANY(%s)",
            (system, list(keys)),
        )
        records = cur.fetchall()
    frame = pl.from_arrow(rows_to_arrow(records, columns))
    assert isinstance(frame, pl.DataFrame)
    return frame.drop("_batch_id")


def _write(
    conn: psycopg.Connection[Any], screened: Screened, *, system: str, batch_id: int | None
) -> None:
    entity = screened.entity
    table = QUARANTINE_TABLE
    if screened.bad.height:
        keys = screened.bad.get_column(KEY_COLUMN).to_list()
        versions = screened.bad.get_column("_source_version").to_list()
        params = []
        for key, version in zip(keys, versions, strict=True):
            problems = screened.problems[key]
            first = problems[0]
            params.append(
                (
                    entity,
                    system,
                    key,
                    screened.source_table,
                    version,
                    first.expectation,
                    first.column,
                    None if first.value is None else redact_text(str(first.value)),
                    json.dumps([problem.as_json() for problem in problems]),
                    json.dumps(screened.parent_keys.get(key, {})),
                    all(p.expectation.startswith("expect_parent_to_exist") for p in problems),
                    PENDING if key in screened.pending else OPEN,
                    batch_id,
                )
            )
        with conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO {table} AS q (entity, source_system, source_key, source_table,"
                " source_version, expectation, column_name, offending_value, problems,"
                " parent_keys, orphan_only, status, batch_id)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (entity, source_system, source_key) DO UPDATE SET"
                " source_table = EXCLUDED.source_table, source_version = EXCLUDED.source_version,"
                " expectation = EXCLUDED.expectation, column_name = EXCLUDED.column_name,"
                " offending_value = EXCLUDED.offending_value, problems = EXCLUDED.problems,"
                " parent_keys = EXCLUDED.parent_keys, orphan_only = EXCLUDED.orphan_only,"
                " status = EXCLUDED.status, batch_id = EXCLUDED.batch_id,"
                " last_seen = clock_timestamp(), times_seen = q.times_seen + 1,"
                " first_seen = CASE WHEN q.status = 'released' THEN clock_timestamp()"
                "   ELSE q.first_seen END,"
                " released_at = NULL, released_batch_id = NULL, release_reason = NULL"
                " WHERE q.source_version <= EXCLUDED.source_version",
                params,
            )
        _store_payload(conn, screened, system=system, batch_id=batch_id or 0)
    if screened.resolved:
        for reason in (FIXED, PARENT_ARRIVED):
            keys = [key for key, why in screened.resolved.items() if why == reason]
            if keys:
                mark_released(conn, entity, system, keys, batch_id=batch_id, reason=reason)
    for status, keys_now in ((OPEN, screened.now_open), (PENDING, screened.now_pending)):
        if keys_now:
            conn.execute(
                f"UPDATE {table} SET status = %s WHERE entity = %s AND source_system = %s"
                " AND status IN ('open', 'pending') AND source_key = ANY(%s)",
                (status, entity, system, sorted(keys_now)),
            )


def _store_payload(
    conn: psycopg.Connection[Any], screened: Screened, *, system: str, batch_id: int
) -> None:
    bad = screened.bad
    names = [*bad.columns, "_batch_id"]
    target = payload_table(screened.entity)
    conn.execute(
        f"DELETE FROM {target} WHERE _source_system = %s AND _source_key = ANY(%s)",
        (system, bad.get_column(KEY_COLUMN).to_list()),
    )
    quoted = ", ".join(f'"{name}"' for name in names)
    with conn.cursor().copy(f"COPY {target} ({quoted}) FROM STDIN") as copy:
        for row in bad.iter_rows():
            copy.write_row((*row, batch_id))


def mark_released(
    conn: psycopg.Connection[Any],
    entity: str,
    system: str,
    keys: list[str],
    *,
    batch_id: int | None,
    reason: str,
) -> None:
    conn.execute(
        f"UPDATE {QUARANTINE_TABLE} SET status = 'released', released_at = clock_timestamp(),"
        " released_batch_id = %s, release_reason = %s"
        " WHERE entity = %s AND source_system = %s AND status <> 'released'"
        " AND source_key = ANY(%s)",
        (batch_id, reason, entity, system, keys),
    )
    conn.execute(
        f"DELETE FROM {payload_table(entity)} WHERE _source_system = %s AND _source_key = ANY(%s)",
        (system, keys),
    )
