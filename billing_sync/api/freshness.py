"""How fresh an answer is: the caught-up point of the entities it reads, in UTC.

The warehouse keeps each table's watermark in its biller's native form (naive local
time of the catalog's zone, DESIGN §11); here it becomes UTC. A batch commits its rows and
its watermark in one transaction, so the watermark read in the same snapshot as the rows
is exactly how far those rows go: ``data_as_of`` is the oldest caught-up point among
the tables (of the account's biller) that feed the entities the answer is made of.
``age_seconds`` is how long ago that was, on this machine's clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from billing_sync.config import Settings, SourceCatalog


@dataclass(frozen=True)
class TableFeed:
    system: str
    table: str
    entity: str
    tier: str
    zone: ZoneInfo
    sla_seconds: float


@dataclass(frozen=True)
class Caught:
    feed: TableFeed
    caught_up_to: datetime | None  # UTC; None: never loaded

    def lag_seconds(self, now: datetime) -> float | None:
        return None if self.caught_up_to is None else (now - self.caught_up_to).total_seconds()

    def within_sla(self, now: datetime) -> bool:
        lag = self.lag_seconds(now)
        return lag is not None and lag <= self.feed.sla_seconds


def feeds_of(
    catalogs: Iterable[SourceCatalog], settings: Settings
) -> dict[tuple[str, str], TableFeed]:
    """Every table of the configured billers, by (system, source table)."""
    return {
        (catalog.system, mapping.table): TableFeed(
            system=catalog.system,
            table=mapping.table,
            entity=mapping.entity,
            tier=mapping.tier,
            zone=ZoneInfo(catalog.timezone),
            sla_seconds=settings.tier(mapping.tier).freshness_sla_seconds,
        )
        for catalog in catalogs
        for mapping in catalog.tables
    }


def to_utc(native: datetime | None, zone: ZoneInfo) -> datetime | None:
    """A watermark (naive, the biller's zone) as an aware UTC instant.

    >>> to_utc(datetime(2026, 12, 4, 12, 0), ZoneInfo("America/Chicago")).isoformat()
    '2026-12-04T18:00:00+00:00'
    """
    if native is None:
        return None
    if native.tzinfo is not None:
        return native.astimezone(UTC)
    return native.replace(tzinfo=zone).astimezone(UTC)


def data_as_of(caught: Iterable[Caught], system: str, entities: Iterable[str]) -> datetime | None:
    """The oldest caught-up point of ``system``'s tables feeding ``entities`` (None when one
    of them was never loaded, or none feeds them)."""
    wanted = set(entities)
    points = [c.caught_up_to for c in caught if c.feed.system == system and c.feed.entity in wanted]
    if not points or any(point is None for point in points):
        return None
    return min(point for point in points if point is not None)


def age_seconds(as_of: datetime | None, now: datetime | None = None) -> float | None:
    if as_of is None:
        return None
    return round(max(0.0, ((now or datetime.now(UTC)) - as_of).total_seconds()), 3)
