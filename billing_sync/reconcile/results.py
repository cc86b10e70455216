"""What verifying a table found (:class:`TableVerification`), and its report."""

from __future__ import annotations

from dataclasses import dataclass, field

from billing_sync.capture.unreadable import UnreadableCursors

SAMPLE_SIZE = 5


class DeleteCapExceeded(RuntimeError):
    """More rows vanished from the source than a run may flag deleted; nothing changed."""

    def __init__(self, message: str, verification: TableVerification) -> None:
        super().__init__(message)
        self.verification = verification


@dataclass
class Differences:
    """Keys (``_source_key`` text) that differ between a side and its reference."""

    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    # Of ``stale``: the source holds an older version than the warehouse (not in ``total``).
    backwards: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.missing) + len(self.extra) + len(self.stale)

    def summary(self, sample: int = SAMPLE_SIZE) -> str:
        parts = []
        for name in ("missing", "extra", "stale"):
            keys: list[str] = getattr(self, name)
            text = f"{name} {len(keys)}"
            if keys:
                text += f" (e.g. {', '.join(keys[:sample])})"
            parts.append(text)
        if self.backwards:
            parts.append(f"of them with an older source version {len(self.backwards)}")
        return ", ".join(parts)


@dataclass
class TableVerification:
    """What verifying one table found, read and repaired."""

    system: str
    table: str
    entity: str
    source_rows: int = 0  # rows compared: the source's rows, all segments
    warehouse_rows: int = 0  # the warehouse's rows of this table (recorded hard deletes aside)
    segments: int = 0  # key ranges whose aggregates were compared, all levels
    boundary_queries: int = 0
    leaf_ranges: int = 0
    hashes_read: int = 0  # (key, hash) pairs fetched, both sides, leaves and confirmation
    pending: int = 0  # source rows past the watermark, not yet due in the warehouse
    quarantined: int = 0  # source rows held in quarantine, not missing
    seconds: float = 0.0
    cache_seconds: float = 0.0  # of ``seconds``, comparing (and repairing) the cache
    warehouse: Differences = field(default_factory=Differences)
    cache: Differences | None = None  # None when the cache could not be read
    cache_error: str | None = None
    cache_rows: int = 0
    cache_rows_read: int = 0  # lineage rows fetched from differing buckets, both engines
    repaired_missing: int = 0
    repaired_stale: int = 0
    repaired_backwards: int = 0  # of ``repaired_stale``: back to an older source version
    deleted: int = 0  # hard deletes flagged ``_is_deleted``
    cache_repaired: int = 0
    delete_cap: int = 0  # the most extra rows a repair may flag deleted
    refused: str | None = None  # why the repair refused (delete cap), if it did
    notes: list[str] = field(default_factory=list)
    unreadable: UnreadableCursors | None = None  # rows whose change stamp the tail cannot read

    @property
    def name(self) -> str:
        return f"{self.system}.{self.table}"

    @property
    def remaining(self) -> int:
        """Differences still there after this run (all of them without repair)."""
        warehouse = (
            max(0, len(self.warehouse.missing) - self.repaired_missing)
            + max(0, len(self.warehouse.stale) - self.repaired_stale)
            + max(0, len(self.warehouse.extra) - self.deleted)
        )
        cache = 0 if self.cache is None else max(0, self.cache.total - self.cache_repaired)
        return warehouse + cache

    @property
    def equal(self) -> bool:
        """No difference remains (in the cache too, when it could be read)."""
        return self.remaining == 0


def format_verification(v: TableVerification) -> str:
    """A few lines per table for the CLI."""
    lines = [
        f"{v.name} -> {v.entity}: {v.source_rows} source rows vs {v.warehouse_rows} warehouse "
        f"rows compared in {v.seconds:.2f}s ({v.segments} segments, {v.boundary_queries} "
        f"boundary queries, {v.leaf_ranges} leaf ranges, {v.hashes_read} row hashes read)",
        f"  warehouse: {v.warehouse.summary()}"
        + (f"; pending {v.pending}" if v.pending else "")
        + (f"; quarantined {v.quarantined}" if v.quarantined else ""),
    ]
    if v.cache is None:
        lines.append(f"  cache: not checked ({v.cache_error})")
    else:
        lines.append(f"  cache: {v.cache.summary()} ({v.cache_rows} rows, {v.cache_seconds:.2f}s)")
    if v.repaired_missing or v.repaired_stale or v.deleted or v.cache_repaired:
        lines.append(
            f"  repaired: {v.repaired_missing} missing, {v.repaired_stale} stale"
            + (f" ({v.repaired_backwards} to an older version)" if v.repaired_backwards else "")
            + ", "
            f"{v.deleted} flagged deleted, {v.cache_repaired} in the cache"
        )
    if v.unreadable is not None and v.unreadable.count:
        lines.append(f"  UNREADABLE STAMPS: {v.unreadable.summary()}")
    if v.refused:
        lines.append(f"  REFUSED: {v.refused}")
    lines.extend(f"  note: {note}" for note in v.notes)
    if not v.equal:
        lines.append(f"  DIFFERENT: {v.remaining} differences remain")
    else:
        lines.append("  EQUAL" if v.cache is not None else "  EQUAL (warehouse; cache not checked)")
    return "\n".join(lines)
