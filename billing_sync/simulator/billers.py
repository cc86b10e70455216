"""The public face of the simulated billers: create, seed, describe (either biller).

``system`` picks the biller: ``icoms`` (the default, DB2/AS400 heritage, 14 tables) or
``amdocs`` (Oracle heritage, 9 tables). ``schema`` defaults to the system's name.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg

from billing_sync.simulator import seeding
from billing_sync.simulator.amdocs import schema as amdocs_schema
from billing_sync.simulator.amdocs import seed as amdocs_seed
from billing_sync.simulator.clock import AMDOCS_TIMEZONE, ICOMS_TIMEZONE
from billing_sync.simulator.drivers import DEFAULT_SHARES, specs_of
from billing_sync.simulator.icoms import schema as icoms_schema
from billing_sync.simulator.icoms import seed as icoms_seed
from billing_sync.simulator.mix import describe, table_shares
from billing_sync.simulator.tables import create_tables

SYSTEMS: tuple[str, ...] = ("icoms", "amdocs")

BILLERS: dict[str, seeding.Biller] = {
    "icoms": seeding.Biller(
        "icoms", icoms_schema.SCHEMA, icoms_schema.TABLES, ICOMS_TIMEZONE,
        icoms_seed.generate, icoms_seed.change_key, "ACCOUNT",
    ),
    "amdocs": seeding.Biller(
        "amdocs", amdocs_schema.SCHEMA, amdocs_schema.TABLES, AMDOCS_TIMEZONE,
        amdocs_seed.generate, amdocs_seed.change_key, "BILLING_ACCOUNT",
    ),
}  # fmt: skip


def biller(system: str) -> seeding.Biller:
    """The :class:`~.seeding.Biller` of ``system``; a clear error for an unknown one."""
    try:
        return BILLERS[system]
    except KeyError:
        raise ValueError(f"unknown simulated biller {system!r}; use one of {SYSTEMS}") from None


def create_schema(
    conn: psycopg.Connection[Any], *, schema: str | None = None, system: str = "icoms"
) -> None:
    """Create the biller's schema, tables and indexes unless they exist.

    Parameters
    ----------
    conn
        An open connection to the source database.
    schema
        PostgreSQL schema (default: the system's name, as its catalog says).
    system
        ``icoms`` or ``amdocs``.
    """
    chosen = biller(system)
    create_tables(conn, chosen.tables, schema=schema or chosen.schema)


def seed(
    conn: psycopg.Connection[Any],
    *,
    accounts: int,
    seed: int = 7,
    schema: str | None = None,
    as_of: datetime | None = None,
    system: str = "icoms",
) -> dict[str, int]:
    """Create the biller's tables if needed and fill them (they must be empty).

    The rows are a pure function of ``seed``, ``accounts`` and ``as_of``. Runs in one
    transaction block, then ``ANALYZE``.

    Parameters
    ----------
    conn
        An open connection to the source database.
    accounts
        Number of accounts (ICOMS ``ACCOUNT``, Amdocs ``BILLING_ACCOUNT`` rows): the scale.
    seed
        Seed of the :class:`random.Random` that draws every value.
    schema
        PostgreSQL schema (default: the system's name).
    as_of
        Naive timestamp in the biller's time zone that the history ends before. Default:
        the start of the current day there, on the source's clock.
    system
        ``icoms`` or ``amdocs``.

    Returns
    -------
    dict of str to int
        Rows written per table.

    Raises
    ------
    ValueError
        If ``accounts`` is negative or a table already holds rows.
    """
    chosen = biller(system)
    return seeding.fill(conn, chosen, accounts=accounts, rng_seed=seed,
                        schema=schema or chosen.schema, as_of=as_of)  # fmt: skip


def seed_if_empty(
    conn: psycopg.Connection[Any],
    *,
    accounts: int,
    seed: int = 7,
    schema: str | None = None,
    as_of: datetime | None = None,
    system: str = "icoms",
) -> dict[str, int]:
    """:func:`seed` unless the biller's accounts table already holds rows (then ``{}``)."""
    chosen = biller(system)
    return seeding.fill_if_empty(conn, chosen, accounts=accounts, rng_seed=seed,
                                 schema=schema or chosen.schema, as_of=as_of)  # fmt: skip


def describe_mix(*, systems: Sequence[str] = ("icoms",), statement_batch: int = 200) -> str:
    """The workload's operation mix as text: per biller, each operation's share of rows
    and transactions and what it writes, then the expected share of rows per table.

    Parameters
    ----------
    systems
        Billers the workload runs (the rate splits between them as
        :data:`~billing_sync.simulator.drivers.DEFAULT_SHARES` says).
    statement_batch
        Accounts per bill run, which sets how often a run happens.
    """
    total = sum(DEFAULT_SHARES.get(system, 1.0) for system in systems)
    lines: list[str] = []
    for system in systems:
        specs = specs_of(system)
        share = DEFAULT_SHARES.get(system, 1.0) / total
        runs = {spec.name: 4.0 * statement_batch for spec in specs if spec.expected_rows >= 100}
        lines.append(f"{system} ({share:.0%} of the rows):")
        lines.extend(describe(system, specs, runs))
        per_table = ", ".join(
            f"{table} {value * share:.1%}" for table, value in table_shares(specs).items()
        )
        lines.append(f"  rows per table: {per_table}")
    lines.append(
        f"(bill runs of up to {statement_batch} accounts; every write stamps its rows from "
        "the transaction start, truncated to the second)"
    )
    return "\n".join(lines)
