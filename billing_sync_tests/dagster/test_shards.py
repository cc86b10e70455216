"""Shards (issue 18): a tier's entities in groups, each its own sensor, job and concurrency
key; named groups that overlap (two runs syncing one table) are refused at start; a
shard's run syncs its own tables only."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import psycopg
import pytest
import yaml

from billing_sync.config import ConfigError
from billing_sync.defs.build import build_definitions
from billing_sync.defs.keys import TIER_TAG
from billing_sync.defs.resources import BillingSyncResource
from billing_sync.entities import STATE_SCHEMA
from billing_sync.postgres import DatabaseUrls
from billing_sync_tests.dagster.test_alerts_mean_it import _run

pytestmark = [pytest.mark.dagster, pytest.mark.integration]


def _shard_priority(settings_file: Path, monkeypatch: pytest.MonkeyPatch, **shards: object) -> None:
    raw = yaml.safe_load(settings_file.read_text())
    raw["tiers"]["priority"].update(shards)
    settings_file.write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("BILLING_SYNC_CONFIG", str(settings_file))


def test_overlapping_shards_are_refused_at_start(
    settings_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    groups = [["payment", "adjustment"], ["billing_account", "payment"]]
    _shard_priority(settings_file, monkeypatch, shard_entities=groups)
    with pytest.raises(ConfigError, match="'payment' is in shards 0 and 1"):
        build_definitions()
    _shard_priority(settings_file, monkeypatch, shard_entities=[["payment"], ["adjustment"]])
    with pytest.raises(ConfigError, match="billing_account in no shard"):
        build_definitions()


def test_two_shards_are_two_sensors_jobs_and_keys_and_sync_their_own_tables(
    settings_file: Path, databases: DatabaseUrls, monkeypatch: pytest.MonkeyPatch
) -> None:
    _shard_priority(settings_file, monkeypatch, shards=2)
    definitions = build_definitions()
    jobs = {name: definitions.resolve_job_def(f"sync_priority_{name}_job") for name in (0, 1)}
    assert {job.tags[TIER_TAG] for job in jobs.values()} == {"priority/0", "priority/1"}
    sensors = {sensor.name for sensor in definitions.sensors or []}
    assert {"sync_priority_0_sensor", "sync_priority_1_sensor"} <= sensors
    assert "sync_priority_sensor" not in sensors
    owned = {
        name: {
            key.path[-1]
            for key in job.asset_layer.executable_asset_keys
            if key.path[0] == "warehouse"
        }
        for name, job in jobs.items()
    }
    assert owned[0] and owned[1] and not owned[0] & owned[1]
    assert owned[0] | owned[1] == {"billing_account", "payment", "adjustment"}

    with dg.instance_for_test() as instance:
        resource = BillingSyncResource(config_file=str(settings_file))
        assert _run(instance, resource, "sync_priority_0_job")
    with psycopg.connect(databases.warehouse) as conn:
        synced = {row[0] for row in conn.execute(f"SELECT entity FROM {STATE_SCHEMA}.batch_log")}
    assert synced == owned[0]
