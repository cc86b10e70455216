"""Source engines behind one interface (DESIGN §11): pick the adapter from a URL.

>>> adapter_class("mariadb+pymysql://u@h/db").name
'mysql'
>>> adapter_class("db2+ibm_db://u@h/db").name, adapter_class("ibmi://u@h").name
('db2', 'db2-for-i')
"""

from __future__ import annotations

from sqlalchemy.engine import URL, make_url

from billing_sync.source.engines.base import (
    EngineAdapter,
    MissingDriver,
    OldestTransaction,
    ReadOnlyRefused,
)
from billing_sync.source.engines.db2 import Db2Adapter, Db2ForIAdapter
from billing_sync.source.engines.mysql import MySQLAdapter
from billing_sync.source.engines.oracle import OracleAdapter
from billing_sync.source.engines.postgres import PostgresAdapter
from billing_sync.source.engines.types import ReflectedTable

ADAPTERS: tuple[type[EngineAdapter], ...] = (
    PostgresAdapter,
    MySQLAdapter,
    OracleAdapter,
    Db2Adapter,
    Db2ForIAdapter,
)
_BY_DIALECT = {dialect: adapter for adapter in ADAPTERS for dialect in adapter.dialects}


class UnsupportedEngine(ValueError):
    """No adapter serves the URL's database."""


def adapter_class(url: str | URL) -> type[EngineAdapter]:
    backend = make_url(url).get_backend_name()
    try:
        return _BY_DIALECT[backend]
    except KeyError:
        known = ", ".join(sorted(_BY_DIALECT))
        raise UnsupportedEngine(
            f"no source adapter for {backend!r} URLs (known: {known})"
        ) from None


def adapter_for(url: str | URL) -> EngineAdapter:
    """The adapter for ``url``; its driver is imported on first connect, and a missing
    one raises :class:`MissingDriver` naming the extra to install."""
    return adapter_class(url)(url)


__all__ = [
    "ADAPTERS",
    "EngineAdapter",
    "MissingDriver",
    "OldestTransaction",
    "ReadOnlyRefused",
    "ReflectedTable",
    "UnsupportedEngine",
    "adapter_class",
    "adapter_for",
]
