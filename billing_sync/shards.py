"""Shards: a tier's entities split into groups, each synced by its own Dagster sensor, run
and concurrency key (issue 18, DESIGN §11), so that on Kubernetes each shard is its own
pod through the K8sRunLauncher. Groups are whole entities: the tables feeding one entity
(one per biller) are one asset and stay in one run. No table is ever synced by two runs
at once: named groups that overlap, or that leave an entity out, are refused at start.
"""

from __future__ import annotations

from dataclasses import dataclass

from billing_sync.config import TIERS, ConfigError, Settings, SourceCatalog, Tier


@dataclass(frozen=True)
class Shard:
    tier: Tier
    index: int
    count: int
    entities: tuple[str, ...]

    @property
    def name(self) -> str:
        """``priority`` for a tier of one shard (names unchanged), ``priority_1`` else.

        >>> Shard("priority", 1, 2, ("payment",)).name
        'priority_1'
        """
        return self.tier if self.count == 1 else f"{self.tier}_{self.index}"

    @property
    def tag(self) -> str:
        """The run tag value the queue limits to one run at a time."""
        return self.tier if self.count == 1 else f"{self.tier}/{self.index}"


def tier_shards(settings: Settings, catalogs: list[SourceCatalog]) -> list[Shard]:
    """Every tier's shards, checked: each entity of a tier in exactly one shard."""
    shards = []
    for tier in TIERS:
        counts: dict[str, int] = {}
        for catalog in catalogs:
            for mapping in catalog.for_tier(tier):
                counts[mapping.entity] = counts.get(mapping.entity, 0) + 1
        if not counts:
            continue
        config = settings.tier(tier)
        groups = (
            _named(tier, config.shard_entities, set(counts))
            if config.shard_entities is not None
            else _balanced(counts, config.shards)
        )
        shards += [Shard(tier, i, len(groups), tuple(g)) for i, g in enumerate(groups)]
    return shards


def _named(tier: str, groups: list[list[str]], entities: set[str]) -> list[list[str]]:
    owner: dict[str, int] = {}
    for index, group in enumerate(groups):
        for entity in group:
            if entity not in entities:
                raise ConfigError(
                    f"tiers.{tier}.shard_entities[{index}]: {entity!r} is not an entity of the"
                    f" {tier} tier (its entities: {', '.join(sorted(entities))})"
                )
            if entity in owner:
                raise ConfigError(
                    f"tiers.{tier}.shard_entities: {entity!r} is in shards {owner[entity]} and"
                    f" {index}: two runs would sync its tables at once; name it in one shard"
                )
            owner[entity] = index
    missing = sorted(entities - set(owner))
    if missing:
        raise ConfigError(
            f"tiers.{tier}.shard_entities: {', '.join(missing)} in no shard: nothing would"
            " sync them; name each entity of the tier in one shard"
        )
    return [sorted(group) for group in groups if group]


def _balanced(tables: dict[str, int], count: int) -> list[list[str]]:
    """Entities in ``count`` groups of about as many tables each (largest first), fewer
    groups when there are fewer entities.

    >>> _balanced({"a": 2, "b": 1, "c": 1}, 2)
    [['a'], ['b', 'c']]
    """
    groups: list[list[str]] = [[] for _ in range(min(count, len(tables)))]
    load = [0] * len(groups)
    for entity in sorted(tables, key=lambda name: (-tables[name], name)):
        lightest = load.index(min(load))
        groups[lightest].append(entity)
        load[lightest] += tables[entity]
    return [sorted(group) for group in groups]
