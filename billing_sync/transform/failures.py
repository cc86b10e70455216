"""A rule a batch's rows did not meet, as plain data.

Normalizing finds the first ones (source values that do not convert,
``expect_column_values_to_convert``); validation adds the suite's
(:mod:`billing_sync.validate.report`). Both quarantine the rows they name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ExpectationFailure:
    """One expectation a batch did not meet.

    ``unexpected_count`` and ``unexpected_percent`` (of all rows in the batch) are None when
    the expectation is not row-level or could not be evaluated; then ``error`` says why.
    ``sample_keys`` are up to five distinct ``_source_key`` values of offending rows, in row
    order (``<row N>`` where the key itself is null); ``sample_values`` are the offending
    values of those same rows, as in the frame.
    """

    expectation: str
    column: str | None
    unexpected_count: int | None
    unexpected_percent: float | None
    sample_keys: list[str] = field(default_factory=list)
    sample_values: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    #: Positions (in the validated frame) of every offending row, for quarantine.
    row_positions: tuple[int, ...] = field(default=(), repr=False)
    #: The offending values of those rows when the frame no longer holds them (a source
    #: value that did not convert is NULL in the frame; None for protected columns).
    row_values: tuple[Any, ...] | None = field(default=None, repr=False)

    @property
    def row_level(self) -> bool:
        """True when the failure names its rows (so they can be quarantined)."""
        return self.error is None and self.unexpected_count is not None

    @property
    def label(self) -> str:
        target = self.column or ",".join(
            self.kwargs.get("column_list") or self.kwargs.get("column_set") or []
        )
        return f"{self.expectation}({target})"

    def message(self, entity: str, rows: int) -> str:
        """One human line, e.g. ``payment: expect_..._between(amount) failed for 2 of 500 rows,
        e.g. keys 001|42, 002|7``."""
        head = f"{entity}: {self.label}"
        if self.error is not None:
            return f"{head} could not be evaluated: {self.error}"
        if self.unexpected_count is None:
            return f"{head} failed"
        text = f"{head} failed for {self.unexpected_count} of {rows} rows"
        if self.sample_keys:
            text += f", e.g. keys {', '.join(self.sample_keys)}"
        return text
