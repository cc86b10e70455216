"""``billing-sync demo --source-engine mariadb``: the ICOMS-style biller hosted on MariaDB.

The ICOMS biller (the harder cursor: ``CHG_DATE``/``CHG_TIME`` integers) runs on a
MariaDB/MySQL server (:mod:`billing_sync.simulator.mariadb`); Amdocs stays on the
embedded PostgreSQL. No MariaDB server ships as a Python package, so the demo needs one
that answers: the machine's (``mysql+pymysql://root@127.0.0.1:3306``) by default,
else the one ``--mariadb-url`` or ``$BILLING_SYNC_DEMO_MARIADB_URL`` names.

The biller's MariaDB database is the URL's (default ``billing_sync_demo``); the
catalog's ``schema`` is that database, so the demo writes its catalogs into
``<state>/catalogs/`` with ICOMS's schema set to it (the shipped catalogs are untouched).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy.engine import URL, make_url

from billing_sync.config import CATALOG_DIR, Settings
from billing_sync.secrets import mask_secrets
from billing_sync.simulator import Workload

SOURCE_ENGINES = ("postgresql", "mariadb")
MARIADB_SYSTEMS = ("icoms",)  # the simulated billers that have a MariaDB schema
URL_ENV = "BILLING_SYNC_DEMO_MARIADB_URL"
DEFAULT_URL = "mysql+pymysql://root@127.0.0.1:3306/billing_sync_demo"
DEFAULT_DATABASE = "billing_sync_demo"
# Rows an ICOMS transaction on MariaDB writes, on average (measured over the demo's mix:
# a payment writes 3, a usage burst up to 20); turns the demo's rows/s into transactions/s.
ROWS_PER_TRANSACTION = 5.0


class NoMariaDB(RuntimeError):
    """No MariaDB/MySQL server answers at the demo's URL."""


def demo_url(given: str | None, env: Mapping[str, str] | None = None) -> URL:
    """The MariaDB URL: ``--mariadb-url``, else ``$BILLING_SYNC_DEMO_MARIADB_URL``, else
    the machine's server; a URL without a database gets ``billing_sync_demo``.

    >>> str(demo_url("mysql+pymysql://root@db:3307"))
    'mysql+pymysql://root@db:3307/billing_sync_demo'
    """
    env = os.environ if env is None else env
    url = make_url(given or env.get(URL_ENV) or DEFAULT_URL)
    if url.get_backend_name() not in ("mysql", "mariadb"):
        raise NoMariaDB(
            f"--mariadb-url must be a MariaDB/MySQL URL (mysql+pymysql://...), got"
            f" {url.render_as_string()}"
        )
    return url if url.database else url.set(database=DEFAULT_DATABASE)


def require_server(url: URL, *, timeout: int = 3) -> None:
    """Connect once; :class:`NoMariaDB` saying how to point the demo at a server if none
    answers (the password is never shown)."""
    # why: an optional extra's driver, imported only for this engine
    import pymysql

    try:
        conn = pymysql.connect(
            host=url.host or "127.0.0.1", port=url.port or 3306,
            user=url.username or "root", password=url.password or "",
            connect_timeout=timeout,
        )  # fmt: skip
    except pymysql.err.MySQLError as error:
        raise NoMariaDB(
            f"demo --source-engine mariadb: no MariaDB/MySQL server answers at"
            f" {url.render_as_string()} ({mask_secrets(str(error))}). Start one (Debian:"
            " apt-get install mariadb-server) or point the demo at one with"
            " --mariadb-url mysql+pymysql://USER:PASSWORD@HOST:PORT/DATABASE or"
            f" ${URL_ENV}; the user needs CREATE on that database and PROCESS"
        ) from None
    conn.close()


def mariadb_systems(systems: Sequence[str]) -> tuple[str, ...]:
    return tuple(system for system in systems if system in MARIADB_SYSTEMS)


def write_catalogs(settings: Settings, systems: Sequence[str], database: str) -> Path:
    """The systems' catalogs in ``<state>/catalogs/``, the MariaDB-hosted ones with their
    ``schema`` set to ``database``; returns the folder (the settings' ``catalog_dir``)."""
    folder = settings.state_dir / "catalogs"
    folder.mkdir(parents=True, exist_ok=True)
    source = settings.catalog_dir or CATALOG_DIR
    for system in settings.systems:
        catalog: dict[str, Any] = yaml.safe_load((source / f"{system}.yaml").read_text())
        if system in systems:
            catalog["schema"] = database
        (folder / f"{system}.yaml").write_text(yaml.safe_dump(catalog, sort_keys=False))
    return folder.resolve()


def with_mariadb(settings: Settings, url: URL, systems: Sequence[str]) -> Settings:
    """``settings`` whose ``systems`` read the MariaDB server at ``url``."""
    text = url.render_as_string(hide_password=False)
    database = url.database or DEFAULT_DATABASE
    return settings.model_copy(
        update={
            "source_urls": {**settings.source_urls, **dict.fromkeys(systems, text)},
            "catalog_dir": write_catalogs(settings, systems, database),
        }
    )


def prepare_biller(url: URL, *, accounts: int) -> dict[str, int]:
    """Create and seed the ICOMS biller in the URL's database unless it holds accounts."""
    # why: imports PyMySQL (an optional extra)
    from billing_sync.simulator import mariadb

    # Connected to no database: seed_if_empty creates the URL's.
    conn = mariadb.connect(url._replace(database=None).render_as_string(hide_password=False))
    try:
        return mariadb.seed_if_empty(conn, accounts=accounts, schema=url.database or "")
    finally:
        conn.close()


def mariadb_clock(url: URL) -> datetime:
    """The server's clock, UTC-aware (its sessions run in UTC: see simulator.mariadb)."""
    # why: imports PyMySQL (an optional extra)
    from billing_sync.simulator import mariadb

    conn = mariadb.connect(url.render_as_string(hide_password=False))
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT UTC_TIMESTAMP(6)")
            row = cur.fetchone()
    finally:
        conn.close()
    assert row is not None
    value: datetime = row[0]
    return value.replace(tzinfo=UTC)


class DemoWorkload:
    """The demo's workload over billers on both engines, one thread each; ``counts`` per
    ``system.TABLE`` (PostgreSQL billers) and ``system.*`` (rows of the MariaDB biller)."""

    def __init__(
        self,
        *,
        postgres_url: str,
        urls: Mapping[str, str],
        systems: Sequence[str],
        rate: float,
        mariadb_url: URL | None,
    ) -> None:
        hosted = mariadb_systems(systems) if mariadb_url is not None else ()
        self.postgres_systems = tuple(system for system in systems if system not in hosted)
        share = rate / max(1, len(systems))
        self.postgres: Workload | None = None
        if self.postgres_systems:
            self.postgres = Workload(
                postgres_url, rate=share * len(self.postgres_systems),
                systems=self.postgres_systems,
                urls={system: urls[system] for system in self.postgres_systems},
            )  # fmt: skip
        self.mariadb: Any = None
        self._stopped = True  # until started
        if hosted and mariadb_url is not None:
            # why: imports PyMySQL (optional)
            from billing_sync.simulator import mariadb

            self.mariadb = mariadb.Workload(
                mariadb_url.render_as_string(hide_password=False),
                schema=mariadb_url.database or "", rate=share / ROWS_PER_TRANSACTION,
            )  # fmt: skip

    def start(self) -> None:
        self._stopped = False
        if self.postgres is not None:
            self.postgres.start()
        if self.mariadb is not None:
            self.mariadb.start()

    def stop(self) -> None:
        """Stop both threads (once: the demo stops it again on its way out); raises the
        first error either met."""
        if self._stopped:
            return
        self._stopped = True
        errors: list[BaseException] = []
        for part in (self.postgres, self.mariadb):
            if part is not None:
                try:
                    part.stop()
                except Exception as error:  # the other one still stops
                    errors.append(error)
        if errors:
            raise errors[0]

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        if self.postgres is not None:
            prefix = "" if len(self.postgres_systems) > 1 else f"{self.postgres_systems[0]}."
            counts.update({prefix + table: n for table, n in self.postgres.counts().items()})
        if self.mariadb is not None:
            counts["icoms.*"] = int(self.mariadb.rows)
        return counts


def latest_clock(postgres_clock: datetime, url: URL | None) -> datetime:
    """The later of the sources' clocks: a drain must reach past every biller's last
    commit, and two servers' clocks need not agree."""
    return postgres_clock if url is None else max(postgres_clock, mariadb_clock(url))
