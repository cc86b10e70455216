"""Where a micro-batch's time goes: exclusive time per stage, from wrapped engine calls.

:func:`install` wraps, in this process only, the engine's stage functions it finds
(reading the horizon, reading rows, normalizing, validating, screening, committing to
the warehouse, applying to the cache). Each wrapper adds its elapsed time to its stage
minus the time of stages nested in it, so the stages add up to the batch. Names that
the engine no longer has are skipped: the profile follows the engine as it changes.
"""

from __future__ import annotations

import functools
import importlib
import statistics
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

# (module, attribute path, stage): an attribute path is "Class.method" or "function".
STAGES: tuple[tuple[str, str, str], ...] = (
    ("billing_sync.load.warehouse", "Warehouse.watermark", "read watermark"),
    ("billing_sync.source.session", "SourceSession.horizon", "source horizon"),
    ("billing_sync.capture.regression", "RegressionGuard.check", "regression guard"),
    ("billing_sync.source.session", "SourceSession.read_arrow", "source read"),
    ("billing_sync.source.copy_reader", "parse_csv", "source read: CSV parse"),
    ("billing_sync.source.session", "SourceSession.scalar", "source read"),
    ("billing_sync.engine.sync", "normalize", "normalize (Polars)"),
    ("billing_sync.engine.sync", "normalize_batch", "normalize (Polars)"),
    ("billing_sync.validate.runner", "Validator.validate", "validate (GX)"),
    ("billing_sync.validate.polars_suite", "PolarsValidator.validate", "validate (Polars)"),
    ("billing_sync.validate.quarantine", "screen", "quarantine screen"),
    ("billing_sync.validate.quarantine", "_in_warehouse", "parent checks in the warehouse"),
    ("billing_sync.engine.late_rows", "late_rows", "lookback (late rows)"),
    ("billing_sync.load.warehouse", "Warehouse.commit_batch", "warehouse commit"),
    ("billing_sync.load.snapshots", "commit_chunk", "warehouse commit"),
    ("billing_sync.engine.snapshot", "commit_chunk", "warehouse commit"),
    ("billing_sync.load.warehouse", "Warehouse._merge", "warehouse merge (COPY, ON CONFLICT)"),
    ("billing_sync.load.warehouse", "Warehouse._copy_new", "warehouse COPY (first load)"),
    ("billing_sync.load.cache", "Cache.apply", "cache apply"),
    ("billing_sync.load.cache", "Cache.catch_up", "cache apply"),
)


class StageTimer:
    """Accumulates exclusive seconds per stage; :meth:`batch` closes one micro-batch.

    Stages that run in a background thread (reading ahead, the snapshot's cache feed)
    count as ``<stage> (background)``: they overlap the rest and are not part of the sum.
    """

    BACKGROUND = " (background)"
    WAIT = "wait: "  # a fixed wait before the batch reads (capture delay, floor, poll): not work

    def __init__(self) -> None:
        self.current: dict[str, float] = defaultdict(float)
        self.batches: list[dict[str, float]] = []
        self._local = threading.local()  # per thread: nested time of enclosing wrapped calls
        self._lock = threading.Lock()

    @property
    def _stack(self) -> list[float]:
        stack: list[float] | None = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
        return stack

    def wrap(self, stage: str, function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def timed(*args: Any, **kwargs: Any) -> Any:
            self._stack.append(0.0)
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - started
                nested = self._stack.pop()
                name = stage
                if threading.current_thread() is not threading.main_thread():
                    name += self.BACKGROUND
                with self._lock:
                    self.current[name] += elapsed - nested
                if self._stack:
                    self._stack[-1] += elapsed

        return timed

    def batch(self, total_seconds: float, rows: int, waits: dict[str, float] | None = None) -> None:
        """Close one micro-batch; ``waits``: what a change waited for before it (named
        without the :attr:`WAIT` prefix), reported beside the stages, not in their sum."""
        stages = dict(self.current)
        foreground = sum(v for k, v in stages.items() if not k.endswith(self.BACKGROUND))
        stages["other (engine, Python)"] = max(0.0, total_seconds - foreground)
        for name, seconds in (waits or {}).items():
            stages[self.WAIT + name] = max(0.0, seconds)
        stages["_total"] = total_seconds
        stages["_rows"] = float(rows)
        self.batches.append(stages)
        self.current = defaultdict(float)

    def summary(self, *, only_with_rows: bool = True) -> dict[str, Any]:
        """Median (``stages``) and 99th-percentile (``p99_stages``) seconds per stage over
        the batches (those that read rows, by default).

        >>> timer = StageTimer()
        >>> timer.current["merge"] = 0.2
        >>> timer.batch(0.5, 10, {"poll": 0.3})
        >>> s = timer.summary()
        >>> s["stages"]["merge"], s["stages"]["wait: poll"], s["p99_stages"]["merge"]
        (0.2, 0.3, 0.2)
        """
        batches = [b for b in self.batches if b["_rows"] > 0] if only_with_rows else self.batches
        if not batches:
            return {"batches": 0, "stages": {}, "p99_stages": {}}
        names = sorted({name for b in batches for name in b if not name.startswith("_")})
        stages = {
            name: round(statistics.median(b.get(name, 0.0) for b in batches), 4) for name in names
        }
        p99 = {name: round(_p99([b.get(name, 0.0) for b in batches]), 4) for name in names}
        return {
            "batches": len(batches),
            "median_rows": statistics.median(b["_rows"] for b in batches),
            "median_total_seconds": round(statistics.median(b["_total"] for b in batches), 4),
            "p99_total_seconds": round(_p99([b["_total"] for b in batches]), 4),
            "stages": dict(sorted(stages.items(), key=lambda item: -item[1])),
            "p99_stages": p99,
        }


def _p99(values: list[float]) -> float:
    """Nearest-rank 99th percentile of a non-empty list."""
    ordered = sorted(values)
    return ordered[min(len(ordered), max(1, -(-99 * len(ordered) // 100))) - 1]


def install(timer: StageTimer) -> list[str]:
    """Wrap the stages this engine has; return the ``module:attribute`` names wrapped."""
    wrapped = []
    for module_name, path, stage in STAGES:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        owner: Any = module
        *parents, name = path.split(".")
        for parent in parents:
            owner = getattr(owner, parent, None)
        if owner is None or not callable(getattr(owner, name, None)):
            continue
        setattr(owner, name, timer.wrap(stage, getattr(owner, name)))
        wrapped.append(f"{module_name}:{path}")
    return wrapped
