"""Preparing a Dagster instance folder before the daemon and webserver start.

SQLite storage by default (``dagster.yaml``); PostgreSQL storage (``dagster.postgres.yaml``,
dagster-postgres) when ``DAGSTER_PG_URL`` is set (DESIGN §8).
"""

import os
import shutil
import statistics
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg

from billing_sync.defs.sensors import IN_FLIGHT
from billing_sync.private_files import private_dir

PG_URL_VARIABLE = "DAGSTER_PG_URL"


def dagster_pg_url(url: str) -> str:
    """``url`` with the psycopg2 driver named: dagster-postgres's NOTIFY fails on psycopg 3,
    which a plain ``postgresql://`` resolves to with SQLAlchemy 2.1 (DESIGN §8).

    >>> dagster_pg_url("postgresql://u@h:5432/dagster")
    'postgresql+psycopg2://u@h:5432/dagster'
    """
    scheme, _, rest = url.partition("://")
    if scheme in ("postgresql", "postgres", "postgresql+psycopg"):
        return f"postgresql+psycopg2://{rest}"
    return url


def instance_config(repo_root: Path, env: Mapping[str, str] | None = None) -> Path:
    """The instance file for this environment: PostgreSQL storage when DAGSTER_PG_URL is set."""
    env = os.environ if env is None else env
    name = "dagster.postgres.yaml" if env.get(PG_URL_VARIABLE) else "dagster.yaml"
    return repo_root / name


def instance_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Variables Dagster's processes need for the instance (DAGSTER_PG_URL, driver named)."""
    env = os.environ if env is None else env
    url = env.get(PG_URL_VARIABLE)
    return {PG_URL_VARIABLE: dagster_pg_url(url)} if url else {}


@contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextmanager
def open_instance(home: Path, env: Mapping[str, str] | None = None) -> Iterator[dg.DagsterInstance]:
    """The persistent instance whose ``dagster.yaml`` is in ``home``.

    Dagster's public way in is ``DagsterInstance.get()``, which reads ``DAGSTER_HOME``: it is
    set (with ``env``, the variables the instance file reads) only while the instance opens,
    so that this process's own instance, if any, is left as it was.
    """
    with _environment({**(env or {}), "DAGSTER_HOME": str(home.resolve())}):
        instance = dg.DagsterInstance.get()
    with instance:
        yield instance


def prepare_instance(home: Path, *, config: Path, env: Mapping[str, str] | None = None) -> None:
    """Copy ``config`` to ``home/dagster.yaml`` and create the instance's storage.

    Creating the storage once, before several processes (daemon, code server, webserver)
    open it, avoids their racing migrations ("more than one head present"). ``env`` holds
    the variables the instance file reads (see :func:`instance_env`).
    """
    private_dir(home)  # the instance's storage settings and logs: the service user's
    shutil.copyfile(config, home / "dagster.yaml")
    with open_instance(home, env or instance_env()):
        pass


def wait_runs_finished(home: Path, *, timeout: float, alive: Callable[[], bool]) -> None:
    """Until no run of the instance in ``home`` is in flight (or ``alive()`` turns false)."""

    deadline = time.monotonic() + timeout
    with open_instance(home) as instance:
        while time.monotonic() < deadline and alive():
            if not instance.get_runs(filters=dg.RunsFilter(statuses=IN_FLIGHT), limit=1):
                return
            time.sleep(0.5)


def run_stats(home: Path, *, since: float) -> dict[str, Any]:
    """Runs created since ``since`` (epoch seconds): count by status, launch and run time."""
    with open_instance(home) as instance:
        records = instance.get_run_records(limit=100_000)
    launch, duration = [], []
    runs = 0
    by_status: dict[str, int] = {}
    for record in records:
        created = record.create_timestamp.timestamp()
        if created < since:
            continue
        runs += 1
        status = str(record.dagster_run.status.value)
        by_status[status] = by_status.get(status, 0) + 1
        if record.start_time:
            launch.append(record.start_time - created)
            if record.end_time:
                duration.append(record.end_time - record.start_time)
    return {
        "runs": runs,
        "by_status": by_status,
        "median_launch_seconds": statistics.median(launch) if launch else None,
        "median_run_seconds": statistics.median(duration) if duration else None,
    }
