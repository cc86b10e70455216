"""The peers: dlt and Sling, where they are and how each is configured.

Sling comes as the binary in the ``sling-linux-amd64`` wheel (``SLING_BINARY`` overrides):
the ``sling`` package downloads its binary at first use, which cannot work offline.
To write DuckDB Sling runs a DuckDB command-line tool, the ``duckdb-cli`` wheel's
(``DUCKDB_PATH`` overrides). That CLI has ``json`` built in, but Sling still runs
``INSTALL json``, which tries a download; an empty ``json.duckdb_extension`` in a private
extension folder makes it a no-op (``LOAD`` then uses the built-in one). Sling's
``csv_http`` and ``arrow_http`` copy methods need ``httpfs``, whose only wheel pins the
Python ``duckdb`` to the CLI's version, so they are not offered; ``csv_files`` and
``named_pipes`` need nothing more.
"""

from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from billing_sync.bench.data import native_mysql_url, socket_netloc_url

DUCKDB_CLI_VERSION = "1.5.5"


@dataclass(frozen=True)
class PeerConfig:
    """One configuration of a peer, e.g. dlt with the connectorx backend into PostgreSQL."""

    peer: str
    target: str  # "postgres" or "duckdb"
    name: str
    options: dict[str, str] = field(default_factory=dict)
    quick: bool = True  # run by --quick too


DLT_CONFIGS = (
    PeerConfig("dlt", "postgres", "connectorx, parquet via ADBC",
               {"backend": "connectorx", "file_format": "parquet"}),
    PeerConfig("dlt", "postgres", "pyarrow, parquet via ADBC",
               {"backend": "pyarrow", "file_format": "parquet"}, quick=False),
    PeerConfig("dlt", "postgres", "connectorx, insert_values",
               {"backend": "connectorx", "file_format": "insert_values"}, quick=False),
    PeerConfig("dlt", "duckdb", "connectorx", {"backend": "connectorx"}),
    PeerConfig("dlt", "duckdb", "pyarrow", {"backend": "pyarrow"}, quick=False),
)  # fmt: skip

DLT_MYSQL_CONFIGS = tuple(
    replace(config, quick=True) for config in DLT_CONFIGS
    if config.options.get("file_format") != "insert_values"
)  # fmt: skip
"""dlt reading MySQL/MariaDB: both backends to both targets, ``--quick`` too, since which
backend is dlt's fastest there is what that leg finds out (``insert_values``, 12x slower
from PostgreSQL, is left out)."""

SLING_CONFIGS = (
    PeerConfig("sling", "postgres", "full-refresh", {}),
    PeerConfig("sling", "duckdb", "copy_method csv_files", {"copy_method": "csv_files"}),
    PeerConfig("sling", "duckdb", "copy_method named_pipes", {"copy_method": "named_pipes"},
               quick=False),
)  # fmt: skip


def missing_modules(*names: str) -> list[str]:
    return [name for name in names if importlib.util.find_spec(name) is None]


def dlt_unavailable(*drivers: str) -> str | None:
    """Why dlt cannot run here (with the source's DB-API ``drivers``), or None."""
    missing = missing_modules("dlt", "connectorx", "adbc_driver_postgresql", "sqlalchemy", *drivers)
    return f"missing Python packages: {', '.join(missing)}" if missing else None


def sling_binary() -> Path | None:
    given = os.environ.get("SLING_BINARY")
    if given:
        return Path(given)
    spec = importlib.util.find_spec("sling_linux_amd64")
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "bin" / "sling-linux-amd64"


def duckdb_cli() -> Path | None:
    given = os.environ.get("DUCKDB_PATH")
    if given:
        return Path(given)
    spec = importlib.util.find_spec("duckdb_cli")
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "duckdb"


def sling_unavailable(target: str) -> str | None:
    binary = sling_binary()
    if binary is None:
        return "the sling-linux-amd64 wheel is not installed and SLING_BINARY is not set"
    if not binary.exists() or not os.access(binary, os.X_OK):
        return f"{binary} is missing or not executable"
    if target == "duckdb":
        cli = duckdb_cli()
        if cli is None or not cli.exists():
            return "the duckdb-cli wheel is not installed and DUCKDB_PATH is not set"
    return None


def sling_url(url: str) -> str:
    """A URL Sling understands. PostgreSQL: a socket folder goes to ``host=`` in the query;
    MySQL/MariaDB: the SQLAlchemy driver is dropped.

    >>> sling_url("postgresql://postgres:@/wh?host=/tmp/pg")
    'postgresql:///wh?host=/tmp/pg&user=postgres&sslmode=disable'
    >>> sling_url("postgresql://u:p@127.0.0.1:5432/wh")
    'postgresql://u:p@127.0.0.1:5432/wh?sslmode=disable'
    >>> sling_url("mysql+pymysql://root@127.0.0.1:3306/icoms")
    'mysql://root@127.0.0.1:3306/icoms'
    """
    parts = urlsplit(url)
    if parts.scheme.startswith(("mysql", "mariadb")):
        return native_mysql_url(url)
    query = parse_qs(parts.query)
    hosts = query.get("host")
    if hosts and hosts[0].startswith("/"):
        params = [f"host={hosts[0]}"]
        if parts.username:
            params.append(f"user={parts.username}")
        if parts.password:
            params.append(f"password={parts.password}")
        params.append("sslmode=disable")
        return f"postgresql:///{parts.path.lstrip('/')}?{'&'.join(params)}"
    if "sslmode" in query:
        return url
    return url + ("&" if parts.query else "?") + "sslmode=disable"


def dlt_destination_url(url: str) -> str:
    """dlt wants a host and a password: a socket folder moves into the host, and a
    password-less URL gets a placeholder one (ignored by ``trust`` authentication).

    >>> dlt_destination_url("postgresql://postgres:@/wh?host=/tmp/pg")
    'postgresql://postgres:unused@%2Ftmp%2Fpg/wh'
    """

    netloc_url = socket_netloc_url(url)
    parts = urlsplit(netloc_url)
    if parts.password:
        return netloc_url
    user = parts.username or "postgres"
    host = parts.netloc.split("@", 1)[-1]
    return parts._replace(netloc=f"{user}:unused@{host}").geturl()


def sling_environment(home: Path, *, source: str, target: str, duckdb_path: Path | None,
                      copy_method: str | None) -> dict[str, str]:  # fmt: skip
    """Environment for one Sling run: connections ``SRC`` and ``TGT``, a private home."""

    home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLING_", "DUCKDB_"))}
    env.update(
        HOME=str(home),
        SLING_HOME_DIR=str(home / ".sling"),
        SLING_DISABLE_TELEMETRY="true",
        SRC=sling_url(source),
    )
    if duckdb_path is None:
        env["TGT"] = sling_url(target)
    else:
        extensions = home / ".duckdb" / "extensions" / f"v{DUCKDB_CLI_VERSION}" / "linux_amd64"
        extensions.mkdir(parents=True, exist_ok=True)
        (extensions / "json.duckdb_extension").touch()
        cli = duckdb_cli()
        env.update(DUCKDB_PATH=str(cli), DUCKDB_VERSION=DUCKDB_CLI_VERSION)
        connection = {"type": "duckdb", "instance": str(duckdb_path)}
        if copy_method:
            connection["copy_method"] = copy_method
        env["TGT"] = json.dumps(connection)
    return env
