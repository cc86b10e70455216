"""Seed rows of the simulated ICOMS biller, chunk by chunk (see :mod:`.history`).

Per account, on average: 1.15 premises, 2.8 services, 2.3 pieces of equipment, 1.8 work
orders with 2 lines, 6 statements, 28 ledger lines, 7 payments (2% reversed), 0.6
adjustments, 6 usage events and 0.5 collection steps, over the two years before
``as_of``. Accounts are opened over those years, more of them early (the base built up).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime

from billing_sync.simulator.icoms.history import DAY, History
from billing_sync.simulator.icoms.schema import TABLES
from billing_sync.simulator.tables import Row

CHUNK_ACCOUNTS = 10_000


def generate(rng: random.Random, as_of: datetime, accounts: int) -> Iterator[dict[str, list[Row]]]:
    """Rows of all tables: reference rows first, then :data:`CHUNK_ACCOUNTS` accounts a chunk."""
    history = History(rng, as_of)
    last = history.span - 45 * DAY
    opened = sorted(int(rng.random() ** 2 * last) for _ in range(accounts))
    rows: dict[str, list[Row]] = {name: [] for name in TABLES}
    history.reference(rows)
    for first in range(0, accounts, CHUNK_ACCOUNTS):
        for second in opened[first : first + CHUNK_ACCOUNTS]:
            history.account(second, rows)
        yield rows
        rows = {name: [] for name in TABLES}
    if not accounts:
        yield rows


def change_key(row: Row) -> tuple[int, int]:
    """``(CHG_DATE, CHG_TIME)``: the audit columns end every row."""
    return row[-4], row[-3]
