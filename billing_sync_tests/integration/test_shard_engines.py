"""One warehouse, engines that own part of it (issue 18): a shard's run sets up and syncs
only its own entities, and a tier not synced yet has no state at all. A reader over every
entity (``status``, metrics, ``cache catch-up``, the CLI's engine) must read an entity no
engine has set up as "no batch yet", not fail on its missing state row or table."""

from __future__ import annotations

from pathlib import Path

from billing_sync.engine.health import engine_reasons
from billing_sync.engine.status import table_status
from billing_sync.engine.sync import SyncEngine
from billing_sync.entities import entities_of
from billing_sync.postgres import DatabaseUrls
from billing_sync_tests.integration.helpers import seeded_source, settings_for, source_now

SHARD = {"payment"}


def test_an_engine_over_every_entity_reads_entities_no_shard_set_up_as_empty(
    databases: DatabaseUrls, tmp_path: Path
) -> None:
    seeded_source(databases, accounts=20)
    settings = settings_for(databases, tmp_path / "state")
    with SyncEngine.from_settings(settings, entities=SHARD) as shard:
        shard.setup()
        shard.drain(until=source_now(databases.source), tier="priority")
        assert set(shard.cache.entities) == SHARD
    with SyncEngine.from_settings(settings, reading=True) as engine:
        everything = entities_of(engine.catalogs)
        others = set(everything) - SHARD
        assert others  # the catalog has entities outside the shard
        for entity in sorted(others):
            rows, last = engine.warehouse.rows_since(everything[entity], 0)
            assert (rows.num_rows, last) == (0, 0), entity
            assert engine.warehouse.entity_batch(entity) is None
        synced, _ = engine.warehouse.rows_since(everything["payment"], 0)
        assert synced.num_rows > 0
        caught = {applied.entity: applied for applied in engine.catch_up_cache()}
        assert set(caught) == set(everything)
        assert all(caught[entity].rows == 0 for entity in others)
        assert all(applied.caught_up for applied in caught.values())
        statuses = {status.entity for status in table_status(engine)}
        assert "payment" in statuses
        reasons = [reason.line() for reason in engine_reasons(engine)]
        assert not [line for line in reasons if line.startswith("DOWN")], reasons
