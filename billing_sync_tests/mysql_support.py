"""Fixtures for tests against a live MySQL/MariaDB server.

``BILLING_SYNC_TEST_MYSQL_URL`` (a SQLAlchemy URL of a user that may create databases)
names the server; otherwise ``mysql+pymysql://root@127.0.0.1:3306``. Each test gets its
own database. Without a reachable server the tests skip, saying how to enable them.
Import the fixtures into a test module: ``from billing_sync_tests.mysql_support import
mysql_server, mysql_database``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError

DEFAULT_URL = "mysql+pymysql://root@127.0.0.1:3306"
HOW = (
    "set BILLING_SYNC_TEST_MYSQL_URL to a MySQL/MariaDB server, or install and start one"
    " (apt-get install mariadb-server; .ci/run does both)"
)


@pytest.fixture(scope="session")
def mysql_server() -> URL:
    pytest.importorskip("pymysql", reason="pip install -e '.[dev]' (or billing-sync[mysql])")
    url = make_url(os.environ.get("BILLING_SYNC_TEST_MYSQL_URL", DEFAULT_URL))
    engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except DBAPIError as error:
        pytest.skip(f"no MySQL/MariaDB at {url.render_as_string()}: {error.orig}; {HOW}")
    finally:
        engine.dispose()
    return url


@pytest.fixture
def mysql_database(mysql_server: URL) -> Iterator[URL]:
    """The URL of a fresh database on the server, dropped afterwards."""
    name = f"bs_{uuid.uuid4().hex[:10]}"
    root = sa.create_engine(mysql_server, isolation_level="AUTOCOMMIT")
    with root.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE `{name}`")
    try:
        yield mysql_server.set(database=name)
    finally:
        with root.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
        root.dispose()
