"""A warehouse synced from both simulated billers, and the account API on it: in-process
(``client``: FastAPI's TestClient) and as a real uvicorn server on a free port (``served``)."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import psycopg
import pytest
import uvicorn
from fastapi.testclient import TestClient

from billing_sync.api.app import create_app
from billing_sync.api.config import ApiConfig, api_config
from billing_sync.api.keys import ACCOUNTS_READ, FRESHNESS_READ, entry_line, new_key
from billing_sync.config import Settings
from billing_sync.engine.sync import SyncEngine
from billing_sync.postgres import DatabaseUrls, drop_database, ensure_database
from billing_sync_tests.integration.helpers import seeded_source, settings_for

BILLERS = ("icoms", "amdocs")
ACCOUNTS = 25  # per biller


@dataclass(frozen=True)
class Synced:
    urls: DatabaseUrls
    settings: Settings
    engine: SyncEngine
    config: ApiConfig
    key: str  # both scopes
    accounts_only_key: str

    def headers(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.key}"}


def source_clock(url: str) -> datetime:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT clock_timestamp()").fetchone()
    assert row is not None
    value: datetime = row[0]
    return value


@pytest.fixture(scope="package")
def synced(pg_server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synced]:
    tmp: Path = tmp_path_factory.mktemp("api")
    suffix = uuid.uuid4().hex[:10]
    urls = DatabaseUrls(
        source=ensure_database(pg_server_url, f"src_{suffix}"),
        warehouse=ensure_database(pg_server_url, f"wh_{suffix}"),
    )
    seeded_source(urls, accounts=ACCOUNTS, systems=BILLERS)
    settings = settings_for(urls, tmp, systems=list(BILLERS), capture={"delay_seconds": 0.3})
    key, reader = new_key("agents"), new_key("reader")
    entries = "\n".join(
        [
            entry_line("agents", key, [ACCOUNTS_READ, FRESHNESS_READ]),
            entry_line("reader", reader, [ACCOUNTS_READ]),
        ]
    )
    try:
        with SyncEngine.from_settings(settings) as engine:
            engine.setup()
            engine.drain(until=source_clock(urls.source), timeout=180)
            config = api_config(
                settings, urls.warehouse, env={"BILLING_SYNC_API_KEYS": entries}, pool_size=4
            )
            yield Synced(urls, settings, engine, config, key, reader)
    finally:
        drop_database(pg_server_url, f"src_{suffix}")
        drop_database(pg_server_url, f"wh_{suffix}")


@pytest.fixture(scope="package")
def client(synced: Synced) -> Iterator[TestClient]:
    with TestClient(create_app(synced.config), raise_server_exceptions=False) as test_client:
        yield test_client


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="package")
def served(synced: Synced) -> Iterator[str]:
    """The API under a real uvicorn (HTTP on 127.0.0.1), in a thread of this process."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(synced.config), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)
