"""What a validation found, as plain data: no Great Expectations types leak out of here."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

import polars as pl

from billing_sync.transform.failures import ExpectationFailure
from billing_sync.transform.protect import redact_text
from billing_sync.validate.suites import KEY_COLUMN


@dataclass(frozen=True)
class ValidationReport:
    """The outcome of validating one batch of one entity."""

    entity: str
    success: bool
    rows: int
    seconds: float
    failures: list[ExpectationFailure] = field(default_factory=list)
    expectations: int = 0  # how many expectations were evaluated (0 for an empty batch)

    def message(self) -> str:
        """One line per failure; a one-line summary when the batch passed."""
        if not self.failures and self.rows == 0:
            return f"{self.entity}: empty batch, nothing to validate"
        if not self.failures:
            return f"{self.entity}: {self.rows} rows passed {self.expectations} expectations"
        return "\n".join(failure.message(self.entity, self.rows) for failure in self.failures)

    def raise_for_failure(self) -> ValidationReport:
        """Raise :class:`BatchValidationError` unless the batch passed; return self otherwise."""
        if not self.success:
            raise BatchValidationError(self)
        return self

    def as_metadata(self) -> dict[str, Any]:
        """JSON-safe summary (for asset-check metadata, logs, the batch log)."""
        return {
            "entity": self.entity,
            "success": self.success,
            "rows": self.rows,
            "seconds": round(self.seconds, 4),
            "expectations": self.expectations,
            "failures": [
                {
                    "expectation": failure.expectation,
                    "column": failure.column,
                    "unexpected_count": failure.unexpected_count,
                    "unexpected_percent": failure.unexpected_percent,
                    "sample_keys": list(failure.sample_keys),
                    "sample_values": [_json_safe(value) for value in failure.sample_values],
                    "error": failure.error,
                }
                for failure in self.failures
            ],
        }


def with_conversion_failures(
    report: ValidationReport, failures: list[ExpectationFailure]
) -> ValidationReport:
    """``report`` with the batch's conversion failures first (they quarantine their rows)."""
    if not failures:
        return report
    return replace(report, success=False, failures=[*failures, *report.failures])


class BatchValidationError(Exception):
    """A batch failed validation; ``str()`` is the report's message, ``.report`` the details."""

    def __init__(self, report: ValidationReport, reason: str | None = None) -> None:
        super().__init__(report.message() + (f"\n{reason}" if reason else ""))
        self.report = report
        self.reason = reason

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.report, self.reason))


def _json_safe(value: Any) -> Any:
    """``value`` as JSON, text redacted: what leaves here is persisted (quarantine lines,
    the batch log) or shown (metadata, alerts), so no card number or SSN in clear."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        text = str(value)
        return value if redact_text(text) == text else redact_text(text)
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, float):
        return value if value == value else None  # NaN -> None
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.date | dt.datetime | dt.time):
        return value.isoformat()
    return redact_text(str(value))


def failing_samples(
    frame: pl.DataFrame, column: str | None, positions: list[int], *, size: int
) -> tuple[list[str], list[Any]]:
    """Up to ``size`` distinct keys of the rows at ``positions``, with their ``column`` values
    (the samples both validators report, so GX and Polars failures read alike)."""
    if not positions:
        return [], []
    keys_column = (
        frame.get_column(KEY_COLUMN).gather(positions).to_list()
        if KEY_COLUMN in frame.columns
        else [None] * len(positions)
    )
    values_column = (
        frame.get_column(column).gather(positions).to_list()
        if column is not None and column in frame.columns
        else [None] * len(positions)
    )
    keys: list[str] = []
    values: list[Any] = []
    for position, key, value in zip(positions, keys_column, values_column, strict=True):
        label = f"<row {position}>" if key is None else str(key)
        if label in keys:
            continue
        keys.append(label)
        values.append(value)
        if len(keys) == size:
            break
    return keys, values
