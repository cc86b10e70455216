"""A bill run's burst of writes into ICOMS ``STATEMENT`` (standard tier) and ``LEDGER``
(bulk tier), paced to ``rows`` in ``seconds``, in a thread of its own.

Each transaction bills a slice of the simulator's accounts: one statement and three
ledger lines (monthly service, tax, usage) per account, about ``rows_per_commit`` rows,
the way a biller's bill run commits in slices. When every account has been billed the
next pass starts with the next statement number. The burst's keys count down from -1
(``STMT_NO`` per pass, ``TRAN_NO`` per line): the workload numbers its new rows
``max() + 1``, which never meets a negative number, so neither side hits the other's keys.
The priority tables (``ACCOUNT``, ``PAYMENT``, ``ADJUSTMENT``) are not touched: what the
priority tier sees of the burst is only the machine and the server it shares.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import psycopg

from billing_sync.simulator.icoms.fragments import in_days, render

LINES_PER_ACCOUNT = 3  # ledger lines per statement
ROWS_PER_ACCOUNT = 1 + LINES_PER_ACCOUNT
BURST_USER = "BILLRUN"

_BILL = render(
    f"""
WITH acc AS (
    SELECT s AS "SITE_ID", a AS "ACCOUNT_NO", ord - 1 AS i
    FROM unnest(%(sites)s::text[], %(accounts)s::text[]) WITH ORDINALITY AS u(s, a, ord)
), issued AS (
    INSERT INTO $S."STATEMENT" ("SITE_ID", "ACCOUNT_NO", "STMT_NO", "STMT_DATE", "DUE_DATE",
        "PREV_BALANCE", "NEW_CHARGES", "AMOUNT_DUE", $AUDIT)
    SELECT "SITE_ID", "ACCOUNT_NO", %(stmt)s, $TODAY, {in_days(21)}, 0, 21.22, 21.22, $NEW
    FROM acc RETURNING 1
), lines AS (
    INSERT INTO $S."LEDGER" ("SITE_ID", "TRAN_NO", "ACCOUNT_NO", "STMT_NO", "TRAN_TYPE",
        "SERVICE_CODE", "TRAN_DATE", "TRAN_AMT", "TRAN_DESC", $AUDIT)
    SELECT acc."SITE_ID", %(tran)s - (acc.i * {LINES_PER_ACCOUNT} + l.n), acc."ACCOUNT_NO",
           %(stmt)s, l.kind, NULL, $TODAY, l.cents, l.text, $NEW
    FROM acc CROSS JOIN (VALUES (0, 'CHG', 1800, 'MONTHLY SERVICE'),
                                (1, 'TAX', 135, 'FRANCHISE AND SALES TAX'),
                                (2, 'USG', 187, 'USAGE CHARGES')) AS l(n, kind, cents, text)
    RETURNING 1
)
SELECT (SELECT count(*) FROM issued), (SELECT count(*) FROM lines)""",
    "icoms",
)


@dataclass
class BillRunProgress:
    """What the bill run wrote, and when (``time.time()`` epoch seconds)."""

    statements: int = 0
    lines: int = 0
    commits: int = 0
    started: float | None = None
    ended: float | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return self.statements + self.lines


class BillRun:
    """Writes about ``rows`` changed rows over ``seconds`` (behind schedule: as fast as the
    server takes them), then stops."""

    def __init__(
        self, url: str, *, rows: int, seconds: float, rows_per_commit: int = 2_000
    ) -> None:
        if rows <= 0 or seconds <= 0:
            raise ValueError(f"a bill run needs rows > 0 and seconds > 0: {rows}, {seconds}")
        self.url = url
        self.rows = rows
        self.seconds = seconds
        self.accounts_per_commit = max(1, rows_per_commit // ROWS_PER_ACCOUNT)
        self.progress = BillRunProgress()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bill-run", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def join(self, timeout: float) -> bool:
        self._thread.join(timeout=timeout)
        return not self._thread.is_alive()

    def _accounts(self, conn: psycopg.Connection[Any]) -> list[tuple[str, str]]:
        rows = conn.execute(
            'SELECT "SITE_ID", "ACCOUNT_NO" FROM icoms."ACCOUNT"'
            " WHERE \"SITE_ID\" <> 'BEN' ORDER BY 1, 2"  # the markers' account: not billed
        ).fetchall()
        return [(row[0], row[1]) for row in rows]

    def _run(self) -> None:
        progress = self.progress
        try:
            with psycopg.connect(self.url, autocommit=True) as conn:
                accounts = self._accounts(conn)
                if not accounts:
                    raise RuntimeError("icoms.ACCOUNT holds no account to bill")
                progress.started = time.time()
                start = time.monotonic()
                position, statement, tran = 0, -1, -1
                while progress.rows < self.rows and not self._stop.is_set():
                    due = self.rows * min(1.0, (time.monotonic() - start) / self.seconds)
                    if progress.rows >= due:
                        time.sleep(0.02)
                        continue
                    left = (self.rows - progress.rows + ROWS_PER_ACCOUNT - 1) // ROWS_PER_ACCOUNT
                    take = min(self.accounts_per_commit, len(accounts) - position, left)
                    chunk = accounts[position : position + take]
                    row = conn.execute(
                        _BILL,
                        {"sites": [a[0] for a in chunk], "accounts": [a[1] for a in chunk],
                         "stmt": statement, "tran": tran, "user": BURST_USER},
                    ).fetchone()  # fmt: skip
                    assert row is not None
                    progress.statements += int(row[0])
                    progress.lines += int(row[1])
                    progress.commits += 1
                    tran -= take * LINES_PER_ACCOUNT
                    position += take
                    if position >= len(accounts):  # every account billed: the next cycle
                        position, statement = 0, statement - 1
        except Exception as error:  # reported by the scenario, never swallowed
            progress.errors.append(f"{type(error).__name__}: {str(error).strip()[:300]}")
        finally:
            progress.ended = time.time()


def burst_rows_in_warehouse(url: str) -> int:
    """Rows of the bill run the warehouse holds (its keys are the negative ones)."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM billing.customer_bill WHERE _source_system = 'icoms'"
            " AND bill_number < 0) + (SELECT count(*) FROM billing.bill_item"
            " WHERE _source_system = 'icoms' AND item_number < 0)"
        ).fetchone()
    assert row is not None
    return int(row[0])
