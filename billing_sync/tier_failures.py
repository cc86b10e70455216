"""One table's failure is its own (issue 12, item 5): recorded, named, and raised after
the other tables of the tier have synced and committed their watermarks."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class TablesFailed(Exception):
    """Some tables of a micro-batch (or of a run) failed; the others went on.

    ``failures`` maps ``system.TABLE`` to its error; ``results`` are the batches of the
    tables that succeeded (in the micro-batch that raised).
    """

    def __init__(self, failures: dict[str, Exception], results: list[Any] | None = None) -> None:
        # Each error whole: on-call reads the reason (a threshold, a key) in the alert.
        lines = [f"{name}: {type(error).__name__}: {error}" for name, error in failures.items()]
        super().__init__(f"{len(failures)} table(s) failed, the others synced: " + "; ".join(lines))
        self.failures = failures
        self.results = results or []

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.failures, self.results))


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return f"{type(error).__name__}: {text.splitlines()[0]}"


def each_isolated(
    items: Iterable[tuple[str, T]],
    step: Callable[[T], Any],
    *,
    fatal: tuple[type[Exception], ...] = (),
) -> tuple[list[Any], dict[str, Exception]]:
    """``step`` over each named item; an item's exception is logged and kept, and the
    next item still runs, unless it is ``fatal`` (wrong configuration, a source gone
    backwards or unreachable: every table's concern), which ends it all at once."""
    results: list[Any] = []
    failures: dict[str, Exception] = {}
    for name, item in items:
        try:
            results.append(step(item))
        except fatal:
            raise
        except Exception as error:  # any one table's fault, reported by name below
            log.error("%s failed; the tier's other tables go on: %s", name, _first_line(error))
            failures[name] = error
    return results, failures
