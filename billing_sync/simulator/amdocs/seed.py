"""Seed rows of the simulated Amdocs biller, chunk by chunk (see :mod:`.history`).

Per BAN, on average: 0.9 customers, 1.8 subscribers, 4 service agreements, 6 bills,
16 charges, 5 payments (2% backed out), 0.6 adjustments and 10 usage events, over the two
years before ``as_of`` (UTC).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime

from billing_sync.simulator.amdocs.history import DAY, History
from billing_sync.simulator.amdocs.schema import TABLES
from billing_sync.simulator.tables import Row

CHUNK_ACCOUNTS = 10_000


def generate(rng: random.Random, as_of: datetime, accounts: int) -> Iterator[dict[str, list[Row]]]:
    """Rows of all tables, :data:`CHUNK_ACCOUNTS` BANs a chunk."""
    history = History(rng, as_of)
    last = history.span - 45 * DAY
    opened = sorted(int(rng.random() ** 2 * last) for _ in range(accounts))
    for first in range(0, max(accounts, 1), CHUNK_ACCOUNTS):
        rows: dict[str, list[Row]] = {name: [] for name in TABLES}
        for second in opened[first : first + CHUNK_ACCOUNTS]:
            history.account(second, rows)
        yield rows


def change_key(row: Row) -> datetime:
    """``COALESCE(SYS_UPDATE_DATE, SYS_CREATION_DATE)``: the audit columns end every row."""
    changed: datetime | None = row[-2]
    created: datetime = row[-3]
    return changed or created
