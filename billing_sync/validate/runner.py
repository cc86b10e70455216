"""Run an entity's suite over a batch with Great Expectations 1.x (DESIGN §6, §8).

:class:`Validator` is built once per process and reused for every batch. It imports
``great_expectations`` (3.4 s, 277 MB) only on the first non-empty validation, or when
:meth:`Validator.warm_up` is called, never when this module is imported. GX validates pandas
only, so each batch is converted from Polars with pinned dtypes: decimals and integers
become ``float64`` (whatever the batch's nulls), dates and timestamps ``datetime64``, text
pandas strings. Only the columns the suite reads are converted.

Samples are read back from the Polars frame by row position (GX reports the positions of
the first offending rows), so sample keys and values are exact, including for rows whose
key is null.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

# Great Expectations imports sqlalchemy.orm, and its warm-up runs in a thread while Dagster's
# thread uses SQLAlchemy: a module imported from two threads at once can be seen partly
# initialized (seen: "partially initialized module 'sqlalchemy.orm.exc'", a failed run).
# Importing it here, before any thread starts, takes that race away.
import sqlalchemy.orm  # noqa: F401

from billing_sync.transform.failures import ExpectationFailure
from billing_sync.validate.report import ValidationReport, failing_samples
from billing_sync.validate.suites import (
    KEY_COLUMN,
    SUITES_DIR,
    Suite,
    SuiteError,
    available_entities,
    load_suite,
)

if TYPE_CHECKING:
    import pandas

_log = logging.getLogger(__name__)

#: How many offending rows GX reports per expectation; samples are picked from these.
_PARTIAL_UNEXPECTED_COUNT = 20
_DATASOURCE = "billing_sync"
_BATCH_DEFINITION = "whole_frame"
_META_INDEX = "billing_sync_index"


def to_pandas_for_validation(
    frame: pl.DataFrame, columns: Iterable[str] | None = None
) -> pandas.DataFrame:
    """The frame (or just ``columns`` of it, those present) as pandas with stable dtypes.

    Decimals and integers -> ``float64`` (null as NaN, whether or not the batch has nulls;
    exact for integers below 2**53, fine for range checks), categoricals -> text; the rest
    as Polars converts it. The index is a RangeIndex, so GX's row indexes are positions.
    """
    if columns is not None:
        frame = frame.select([name for name in dict.fromkeys(columns) if name in frame.columns])
    casts = []
    for name, dtype in frame.schema.items():
        if dtype.is_decimal() or dtype.is_integer():
            casts.append(pl.col(name).cast(pl.Float64))
        elif isinstance(dtype, pl.Categorical | pl.Enum):
            casts.append(pl.col(name).cast(pl.Utf8))
        elif isinstance(dtype, pl.Datetime) and dtype.time_zone:
            # Suites bound stamps with naive ISO values; pandas refuses to compare those
            # with aware ones. UTC wall time, as the Polars suite compares them.
            casts.append(pl.col(name).dt.convert_time_zone("UTC").dt.replace_time_zone(None))
    if casts:
        frame = frame.with_columns(casts)
    return frame.to_pandas()


@dataclass
class _CompiledSuite:
    suite: Suite
    gx_suite: Any  # great_expectations.ExpectationSuite
    batch_definition: Any  # great_expectations.core.batch_definition.BatchDefinition


class Validator:
    """Validates batches of normalized entities against their suites.

    Build one per process and reuse it: the GX context and each entity's suite are built
    on first use and kept. Safe to share between threads (validations run one at a time).
    """

    def __init__(self, *, suites_dir: Path = SUITES_DIR, sample_size: int = 5) -> None:
        self._suites_dir = suites_dir
        self._sample_size = sample_size
        self._lock = threading.RLock()
        self._suites: dict[str, Suite] = {}
        self._compiled: dict[str, _CompiledSuite] = {}
        self._context: Any = None
        self._datasource: Any = None
        #: Seconds spent importing GX and building the context and suites, so far.
        self.build_seconds = 0.0
        self._background: threading.Thread | None = None

    # -- public ----------------------------------------------------------------------------

    def suite(self, entity: str) -> Suite:
        """The entity's suite; :class:`SuiteError` when it has none or it is invalid."""
        suite = self._suites.get(entity)
        if suite is None:
            suite = self._suites[entity] = load_suite(entity, directory=self._suites_dir)
        return suite

    def warm_up(self, entities: Sequence[str] | None = None) -> float:
        """Import GX and build the context and suites now (all entities by default), out of
        the hot path. Returns the seconds it took."""
        started = time.perf_counter()
        with self._lock:
            for entity in (
                entities if entities is not None else available_entities(self._suites_dir)
            ):
                self._compiled_suite(entity)
        return time.perf_counter() - started

    def warm_up_in_background(self, entities: Sequence[str] | None = None) -> None:
        """:meth:`warm_up` in a thread; meanwhile :meth:`warming` tells which entities are
        not ready yet (a new Dagster run validates those in Polars instead of waiting 3-4 s
        for the GX import: a run's start-up is on the freshness path)."""
        self._background = threading.Thread(
            target=self.warm_up, args=(entities,), name="gx-warm-up", daemon=True
        )
        self._background.start()

    def warming(self, entity: str) -> bool:
        """Whether a background warm-up is still building ``entity``'s suite.

        >>> Validator().warming("payment")  # no warm-up started: validate() builds it
        False
        """
        background = self._background
        return background is not None and background.is_alive() and entity not in self._compiled

    def validate(self, entity: str, frame: pl.DataFrame) -> ValidationReport:
        """Run ``entity``'s suite over ``frame`` and report what failed.

        An empty frame passes without touching GX. An entity without a suite raises
        :class:`SuiteError`.
        """
        started = time.perf_counter()
        suite = self.suite(entity)
        if not isinstance(frame, pl.DataFrame):
            raise TypeError(f"validate() takes a polars.DataFrame, not {type(frame).__name__}")
        if frame.height == 0:
            return ValidationReport(
                entity=entity, success=True, rows=0, seconds=time.perf_counter() - started
            )
        columns = None if _reads_all_columns(suite) else [*suite.columns, KEY_COLUMN]
        data = to_pandas_for_validation(frame, columns)
        with self._lock:
            compiled = self._compiled_suite(entity)
            batch = compiled.batch_definition.get_batch(batch_parameters={"dataframe": data})
            # Pass or fail first: about half the cost of a full result (GX's cost is per
            # expectation, not per row). Only a failing batch is validated again, COMPLETE:
            # the positions of every offending row, which quarantine needs.
            result = batch.validate(
                compiled.gx_suite, result_format={"result_format": "BOOLEAN_ONLY"}
            )
            if not result.success:
                result = batch.validate(
                    compiled.gx_suite,
                    result_format={
                        "result_format": "COMPLETE",
                        "partial_unexpected_count": _PARTIAL_UNEXPECTED_COUNT,
                    },
                )
        failures = self._failures(suite, result, frame)
        return ValidationReport(
            entity=entity,
            success=bool(result.success) and not failures,
            rows=frame.height,
            seconds=time.perf_counter() - started,
            failures=failures,
            expectations=len(result.results),
        )

    # -- GX, built lazily --------------------------------------------------------------------

    def _ensure_context(self) -> None:
        if self._context is not None:
            return
        started = time.perf_counter()
        # GX logs hundreds of INFO lines while importing: quiet it first, unless someone
        # configured its logger explicitly.
        gx_logger = logging.getLogger("great_expectations")
        quiet = gx_logger.level == logging.NOTSET
        if quiet:
            gx_logger.setLevel(logging.WARNING)
        # why: great_expectations costs 3.4 s and 277 MB: imported at first use (DESIGN §6)
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        if quiet:
            _quiet_gx_children()

        context = gx.get_context(mode="ephemeral")
        # Without this every validation prints a tqdm bar to stderr (TQDM_DISABLE does not help).
        context.variables.progress_bars = ProgressBarsConfig(globally=False)
        self._datasource = context.data_sources.add_pandas(name=_DATASOURCE)
        self._context = context
        elapsed = time.perf_counter() - started
        self.build_seconds += elapsed
        _log.debug("great_expectations context built in %.3f s", elapsed)

    def _compiled_suite(self, entity: str) -> _CompiledSuite:
        compiled = self._compiled.get(entity)
        if compiled is not None:
            return compiled
        suite = self.suite(entity)
        self._ensure_context()
        started = time.perf_counter()
        # why: great_expectations costs 3.4 s and 277 MB: imported at first use (DESIGN §6)
        import great_expectations as gx
        from great_expectations.expectations.expectation_configuration import (
            ExpectationConfiguration,
        )

        gx_suite = gx.ExpectationSuite(name=f"{_DATASOURCE}.{entity}")
        for index, spec in enumerate(suite.expectations):
            try:
                expectation = ExpectationConfiguration(
                    type=spec.type, kwargs=dict(spec.kwargs), meta={_META_INDEX: index}
                ).to_domain_obj()
            except Exception as error:  # GX rejects what our model let through
                raise SuiteError(
                    f"invalid suite {self._suites_dir / f'{entity}.yaml'} for entity "
                    f"{entity!r}: expectation #{index + 1} {spec.label}: {error}"
                ) from error
            gx_suite.add_expectation(expectation)
        asset = self._datasource.add_dataframe_asset(name=entity)
        batch_definition = asset.add_batch_definition_whole_dataframe(_BATCH_DEFINITION)
        compiled = self._compiled[entity] = _CompiledSuite(suite, gx_suite, batch_definition)
        elapsed = time.perf_counter() - started
        self.build_seconds += elapsed
        _log.debug("suite %s built in %.3f s", entity, elapsed)
        return compiled

    # -- results -> report -------------------------------------------------------------------

    def _failures(self, suite: Suite, result: Any, frame: pl.DataFrame) -> list[ExpectationFailure]:
        found: list[tuple[int, ExpectationFailure]] = []
        for item in result.results:
            if item.success:
                continue
            index = item.expectation_config.meta[_META_INDEX]
            spec = suite.expectations[index]
            error = _exception_message(item.exception_info)
            if error is not None:
                failure = ExpectationFailure(
                    expectation=spec.type,
                    column=spec.column,
                    unexpected_count=None,
                    unexpected_percent=None,
                    kwargs=dict(spec.kwargs),
                    error=error,
                )
            else:
                details = item.result or {}
                count = details.get("unexpected_count")
                positions = [
                    position
                    for position in details.get("partial_unexpected_index_list") or []
                    if isinstance(position, int)
                ]
                keys, values = failing_samples(
                    frame, spec.column, positions, size=self._sample_size
                )
                every = details.get("unexpected_index_list")
                all_positions = (
                    tuple(p for p in every if isinstance(p, int))
                    if isinstance(every, list)
                    else tuple(positions)
                )
                failure = ExpectationFailure(
                    expectation=spec.type,
                    column=spec.column,
                    unexpected_count=None if count is None else int(count),
                    unexpected_percent=None if count is None else 100.0 * count / frame.height,
                    sample_keys=keys,
                    sample_values=values,
                    kwargs=dict(spec.kwargs),
                    row_positions=all_positions,
                )
            found.append((index, failure))
        found.sort(key=lambda pair: pair[0])
        return [failure for _, failure in found]


def _quiet_gx_children() -> None:
    """Some GX modules pin their own logger to INFO on import; let them inherit instead."""
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        if (
            name.startswith("great_expectations.")
            and isinstance(logger, logging.Logger)
            and logging.NOTSET < logger.level < logging.WARNING
        ):
            logger.setLevel(logging.NOTSET)


def _reads_all_columns(suite: Suite) -> bool:
    return any(spec.type == "expect_table_columns_to_match_set" for spec in suite.expectations)


def _exception_message(info: Any) -> str | None:
    """GX's exception_info is either one record or a mapping of metric id -> record."""
    if not isinstance(info, dict) or not info:
        return None
    if "raised_exception" in info:
        return (info.get("exception_message") or "error") if info["raised_exception"] else None
    for record in info.values():
        if isinstance(record, dict) and record.get("raised_exception"):
            return str(record.get("exception_message") or "error")
    return None
