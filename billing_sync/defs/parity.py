"""Parity checks (DESIGN §7, §8): per entity, ``verify --repair`` on a schedule.

Each run verifies every table against the source by key-range hashing, repairs missing
and stale rows, flags hard deletes, and checks the cache against the warehouse. A check
fails with ERROR severity when the delete cap refuses (a source outage or restore must
never empty the warehouse; on-call decides) or when rows have a change stamp the tail
cannot read (they would be lost without a word), and with WARN when differences remain.
"""

from collections import defaultdict
from collections.abc import Iterator

import dagster as dg
from pydantic import Field

from billing_sync.config import SourceCatalog
from billing_sync.defs.jobs import PARITY_CHECKS_JOB
from billing_sync.defs.keys import warehouse_key
from billing_sync.defs.resources import BillingSyncResource
from billing_sync.reconcile.verify import (
    DEFAULT_MAX_DELETE_FRACTION,
    DeleteCapExceeded,
    TableVerification,
    verify_table,
)

PARITY_CRON = "*/10 * * * *"


class ParityCheckConfig(dg.Config):
    """Overrides for one parity run."""

    repair: bool = True
    # A fraction, as the CLI's --max-delete-fraction: the cap that keeps a source outage
    # from flagging the whole warehouse deleted.
    max_delete_fraction: float = Field(
        default=DEFAULT_MAX_DELETE_FRACTION, ge=0, le=1, allow_inf_nan=False
    )


def parity_checks(catalogs: list[SourceCatalog]) -> dg.AssetChecksDefinition:
    entities = sorted({mapping.entity for catalog in catalogs for mapping in catalog.tables})
    specs = [
        dg.AssetCheckSpec(
            "parity",
            asset=warehouse_key(entity),
            description="Source vs warehouse by key-range hashing, and cache vs warehouse: "
            "missing, extra (hard deletes) and stale rows, repaired through the load path.",
        )
        for entity in entities
    ]

    @dg.multi_asset_check(specs=specs, name="parity_checks")
    def check_parity(
        context: dg.AssetCheckExecutionContext,
        config: ParityCheckConfig,
        billing_sync: BillingSyncResource,
    ) -> Iterator[dg.AssetCheckResult]:
        found: dict[str, list[tuple[TableVerification, str | None]]] = defaultdict(list)
        with billing_sync.engine(run_id=context.run.run_id) as engine:
            engine.setup()
            for catalog, mapping in engine.tables():
                try:
                    verification = verify_table(
                        engine, catalog, mapping, repair=config.repair,
                        max_delete_fraction=config.max_delete_fraction,
                    )  # fmt: skip
                    found[mapping.entity].append((verification, None))
                except DeleteCapExceeded as refused:
                    context.log.error(str(refused))
                    found[mapping.entity].append((refused.verification, str(refused)))
        for entity in entities:
            yield parity_result(entity, found[entity])

    return check_parity


def parity_result(
    entity: str, tables: list[tuple[TableVerification, str | None]]
) -> dg.AssetCheckResult:
    """One entity's check result from its tables' verifications."""
    refusals = [message for _, message in tables if message]
    remaining = sum(v.remaining for v, _ in tables)
    unreadable = [v.unreadable for v, _ in tables if v.unreadable and v.unreadable.count]

    def total(name: str) -> int:
        return sum(int(getattr(v, name)) for v, _ in tables)

    def count(part: str, kind: str) -> int:
        return sum(
            len(getattr(differences, kind))
            for v, _ in tables
            if (differences := getattr(v, part)) is not None
        )

    metadata: dict[str, dg.MetadataValue | float | int | str | bool] = {
        "tables": ", ".join(v.name for v, _ in tables),
        "rows_compared": total("source_rows"),
        "segments": total("segments"),
        "row_hashes_read": total("hashes_read"),
        "seconds": round(sum(v.seconds for v, _ in tables), 3),
        "pending_rows": total("pending"),
        "remaining_differences": remaining,
        "delete_cap_refused": bool(refusals),
        "unreadable_cursor_rows": sum(found.count for found in unreadable),
    }
    for part in ("warehouse", "cache"):
        for kind in ("missing", "extra", "stale"):
            metadata[f"{part}_{kind}"] = count(part, kind)
    for name in (
        "repaired_missing",
        "repaired_stale",
        "repaired_backwards",
        "deleted",
        "cache_repaired",
    ):
        metadata[name] = total(name)
    cache_errors = [v.cache_error for v, _ in tables if v.cache_error]
    if cache_errors:
        metadata["cache"] = "; ".join(cache_errors)
    samples = [f"{v.name}: {v.warehouse.summary()}" for v, _ in tables if v.warehouse.total]
    if samples:
        metadata["samples"] = dg.MetadataValue.text("\n".join(samples))
    if unreadable:
        metadata["unreadable_cursors"] = dg.MetadataValue.text(
            "\n".join(found.summary() for found in unreadable)
        )
    # Rows the tail can never read fail the check (an alert) until the biller fixes them.
    problems = [
        *refusals,
        *([f"{remaining} differences remain in {entity}"] if remaining else []),
        *(found.summary() for found in unreadable),
    ]
    return dg.AssetCheckResult(
        asset_key=warehouse_key(entity),
        check_name="parity",
        passed=not problems,
        severity=(
            dg.AssetCheckSeverity.ERROR if refusals or unreadable else dg.AssetCheckSeverity.WARN
        ),
        metadata=metadata,
        description=" ".join(problems) or None,
    )


def parity_schedule() -> dg.ScheduleDefinition:
    return dg.ScheduleDefinition(
        name="parity_checks_schedule",
        job_name=PARITY_CHECKS_JOB,
        cron_schedule=PARITY_CRON,
        default_status=dg.DefaultScheduleStatus.RUNNING,
    )
