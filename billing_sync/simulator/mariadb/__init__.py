"""The ICOMS-style biller on MariaDB/MySQL: the same 14 tables, seed history and a
workload of its business transactions, for a live non-PostgreSQL source.

- :func:`connect`: a PyMySQL connection (the biller's side: it writes) from a SQLAlchemy URL.
- :func:`create_schema`, :func:`seed`, :func:`seed_if_empty`: tables and seed history.
- :class:`Workload`: a thread committing ICOMS transactions; :meth:`Workload.run` runs one.
"""

from billing_sync.simulator.mariadb.schema import connect, create_schema, table_statements
from billing_sync.simulator.mariadb.seed import seed, seed_if_empty
from billing_sync.simulator.mariadb.workload import OPERATIONS, Workload

__all__ = [
    "OPERATIONS",
    "Workload",
    "connect",
    "create_schema",
    "seed",
    "seed_if_empty",
    "table_statements",
]
