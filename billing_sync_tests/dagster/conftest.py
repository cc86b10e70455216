"""Fixtures for Dagster tests: a settings file pointing at fresh databases."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from billing_sync.postgres import DatabaseUrls
from billing_sync_tests.integration.helpers import seeded_source


@pytest.fixture
def settings_file(databases: DatabaseUrls, tmp_path: Path) -> Path:
    seeded_source(databases, accounts=40)
    path = tmp_path / "billing-sync.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "state_dir": str(tmp_path / "state"),
                "source_url": databases.source,
                "warehouse_url": databases.warehouse,
                "cache_path": str(tmp_path / "state" / "cache.duckdb"),
                "capture": {"delay_seconds": 0.2, "batch_rows": 5000},
                "tiers": {
                    tier: {
                        "batches_per_run": 2,
                        "poll_interval_seconds": 0.2,
                        "freshness_sla_seconds": sla,
                    }
                    for tier, sla in (("priority", 10), ("standard", 60), ("bulk", 900))
                },
            }
        )
    )
    return path
