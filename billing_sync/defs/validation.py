"""Validation results as Dagster asset checks (DESIGN §6): ``validation`` on each
``warehouse/<entity>``. WARN when a batch quarantined rows, ERROR when a batch failed whole
or when Great Expectations, re-validating in the background, disagreed with the Polars
suite the tail validated with (:mod:`billing_sync.validate.shadow`); the failing
expectations, counts and sample keys are in the metadata."""

from collections.abc import Iterator
from dataclasses import dataclass, field

import dagster as dg

from billing_sync.defs.keys import warehouse_key
from billing_sync.engine.batch import TableBatch
from billing_sync.validate.report import BatchValidationError, ValidationReport
from billing_sync.validate.shadow import Disagreement

CHECK = "validation"


def validation_spec(entity: str) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        CHECK,
        asset=warehouse_key(entity),
        description="Great Expectations suite and parent rules of each batch: WARN when rows "
        "went to quarantine, ERROR when a batch had too many bad rows and did not load.",
    )


def _failures(report: ValidationReport | None) -> list[dict[str, object]]:
    if report is None:
        return []
    return [
        {
            "expectation": failure.label,
            "rows": failure.unexpected_count,
            "sample_keys": failure.sample_keys,
            "error": failure.error,
        }
        for failure in report.failures
    ]


def _metadata(
    report: ValidationReport | None, *, rows: int, quarantined: int, released: int, seconds: float
) -> dict[str, dg.MetadataValue | int | float | str]:
    failures = _failures(report)
    keys = {key for failure in report.failures for key in failure.sample_keys} if report else set()
    samples = sorted(keys)[:10]
    return {
        "rows_validated": rows,
        "rows_quarantined": quarantined,
        "rows_released": released,
        "validation_seconds": round(seconds, 4),
        "failing_expectations": dg.MetadataValue.json(failures),
        "sample_keys": ", ".join(samples),
    }


def _describe(report: ValidationReport | None, quarantined: int, rows: int) -> str:
    labels = ", ".join(f"{f['expectation']} ({f['rows']})" for f in _failures(report))
    return f"{quarantined} of {rows} rows quarantined: {labels}"


def batch_evaluation(batch: TableBatch) -> dg.AssetCheckEvaluation | None:
    """A WARN evaluation for a batch that quarantined rows (nothing for a clean batch)."""
    if not batch.quarantined:
        return None
    return dg.AssetCheckEvaluation(
        asset_key=warehouse_key(batch.entity),
        check_name=CHECK,
        passed=False,
        severity=dg.AssetCheckSeverity.WARN,
        description=_describe(batch.validation, batch.quarantined, batch.rows_read),
        metadata={
            **_metadata(
                batch.validation,
                rows=batch.rows_read,
                quarantined=batch.quarantined,
                released=batch.released,
                seconds=batch.validation_seconds,
            ),
            "batch_id": batch.batch_id or 0,
        },
    )


def failed_batch_evaluation(error: BatchValidationError) -> dg.AssetCheckEvaluation:
    """An ERROR evaluation for a batch that failed whole (nothing committed)."""
    report = error.report
    return dg.AssetCheckEvaluation(
        asset_key=warehouse_key(report.entity),
        check_name=CHECK,
        passed=False,
        severity=dg.AssetCheckSeverity.ERROR,
        description=f"Batch failed, nothing loaded, the watermark stays: {error}",
        metadata=_metadata(
            report, rows=report.rows, quarantined=0, released=0, seconds=report.seconds
        ),
    )


def disagreement_evaluation(found: Disagreement) -> dg.AssetCheckEvaluation:
    """An ERROR evaluation: GX's verdict on a batch differs from the Polars suite's."""
    return dg.AssetCheckEvaluation(
        asset_key=warehouse_key(found.entity),
        check_name=CHECK,
        passed=False,
        severity=dg.AssetCheckSeverity.ERROR,
        description=found.message,
        metadata={
            "rows_validated": found.rows,
            "polars_failures": dg.MetadataValue.json([list(map(str, f)) for f in found.polars]),
            "gx_failures": dg.MetadataValue.json(
                [list(map(str, f)) for f in found.great_expectations]
            ),
        },
    )


@dataclass
class RunTally:
    """Validation over a whole run, per entity: the check result the run ends with."""

    entities: list[str]
    rows: dict[str, int] = field(default_factory=dict)
    quarantined: dict[str, int] = field(default_factory=dict)
    released: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    last_bad: dict[str, ValidationReport] = field(default_factory=dict)
    disagreed: dict[str, str] = field(default_factory=dict)  # entity -> last message

    def disagree(self, found: Disagreement) -> None:
        self.disagreed[found.entity] = found.message

    def add(self, batch: TableBatch) -> None:
        entity = batch.entity
        self.rows[entity] = self.rows.get(entity, 0) + batch.rows_read
        self.quarantined[entity] = self.quarantined.get(entity, 0) + batch.quarantined
        self.released[entity] = self.released.get(entity, 0) + batch.released
        self.seconds[entity] = self.seconds.get(entity, 0.0) + batch.validation_seconds
        if batch.quarantined and batch.validation is not None:
            self.last_bad[entity] = batch.validation

    def results(self) -> Iterator[dg.AssetCheckResult]:
        for entity in self.entities:
            rows, bad = self.rows.get(entity, 0), self.quarantined.get(entity, 0)
            report = self.last_bad.get(entity)
            disagreed = self.disagreed.get(entity)
            yield dg.AssetCheckResult(
                asset_key=warehouse_key(entity),
                check_name=CHECK,
                passed=bad == 0 and disagreed is None,
                severity=dg.AssetCheckSeverity.WARN
                if disagreed is None
                else dg.AssetCheckSeverity.ERROR,
                description=disagreed or (None if bad == 0 else _describe(report, bad, rows)),
                metadata=_metadata(
                    report,
                    rows=rows,
                    quarantined=bad,
                    released=self.released.get(entity, 0),
                    seconds=self.seconds.get(entity, 0.0),
                ),
            )
