"""The ICOMS change workload on MariaDB: the PostgreSQL biller's business transactions
(parameters drawn by the same :class:`~billing_sync.simulator.icoms.driver.IcomsDriver`),
written as short multi-statement InnoDB transactions.

Each transaction locks the account it touches first (``SELECT ... FOR UPDATE``), then
reads the clock (:func:`~.schema.stamp`), so that every row it writes is stamped at or
after the second ``INNODB_TRX`` shows it starting in (the capture horizon relies on it).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any, TypeAlias

import pymysql

from billing_sync.simulator.clock import cyymmdd, hhmmss
from billing_sync.simulator.icoms import reference as ref
from billing_sync.simulator.icoms.driver import IcomsDriver
from billing_sync.simulator.icoms.operations import SPECS
from billing_sync.simulator.mariadb.schema import connect, quote, stamp

log = logging.getLogger(__name__)

Conn: TypeAlias = "pymysql.connections.Connection[Any]"
AUDIT = "`CRT_DATE`, `CRT_TIME`, `CHG_DATE`, `CHG_TIME`, `CHG_USER`, `REC_STATUS`"
_STAMP_SET = "`CHG_DATE` = %(d)s, `CHG_TIME` = %(t)s, `CHG_USER` = %(user)s"


class _Tx:
    """One transaction's cursor, its schema and its stamp (after the locking read)."""

    def __init__(self, conn: Conn, schema: str, params: dict[str, Any]) -> None:
        self.conn = conn
        self.cur = conn.cursor()
        self.s = quote(schema)
        self.params = dict(params)

    def run(self, statement: str, /, **extra: Any) -> int:
        count: int = self.cur.execute(statement.replace("$S", self.s), {**self.params, **extra})
        return count

    def one(self, statement: str, /, **extra: Any) -> Any:
        self.run(statement, **extra)
        return self.cur.fetchone()

    def stamp(self) -> None:
        d, t, moment = stamp(self.conn)
        self.params.update(d=d, t=t, today=cyymmdd(moment.date()), local=moment)

    def next_no(self, table: str, column: str) -> int:
        row = self.one(f"SELECT COALESCE(MAX(`{column}`), 0) + 1 FROM $S.`{table}`"
                       " WHERE `SITE_ID` = %(site)s FOR UPDATE")  # fmt: skip
        return int(row[0])

    def lock_account(self, extra: str = "") -> Decimal | None:
        row = self.one("SELECT `AR_BALANCE` FROM $S.`ACCOUNT` WHERE `SITE_ID` = %(site)s"
                       f" AND `ACCOUNT_NO` = %(account)s AND `REC_STATUS` = 'A'{extra}"
                       " FOR UPDATE")  # fmt: skip
        if row is None:
            return None
        self.stamp()
        balance: Decimal = row[0]
        return balance

    def ledger(self, kind: str, cents: int, text: str) -> int:
        return self.run(
            "INSERT INTO $S.`LEDGER` (`SITE_ID`, `TRAN_NO`, `ACCOUNT_NO`, `STMT_NO`, `TRAN_TYPE`,"
            f" `SERVICE_CODE`, `TRAN_DATE`, `TRAN_AMT`, `TRAN_DESC`, {AUDIT}) VALUES (%(site)s,"
            " %(tran)s, %(account)s, 0, %(kind)s, NULL, %(today)s, %(cents)s, %(text)s,"
            " %(d)s, %(t)s, %(d)s, %(t)s, %(user)s, 'A')",
            tran=self.next_no("LEDGER", "TRAN_NO"), kind=kind, cents=cents, text=text,
        )  # fmt: skip

    def balance(self, delta: Decimal) -> int:
        return self.run(f"UPDATE $S.`ACCOUNT` SET `AR_BALANCE` = `AR_BALANCE` + %(delta)s,"
                        f" {_STAMP_SET} WHERE `SITE_ID` = %(site)s AND `ACCOUNT_NO` = %(account)s",
                        delta=delta)  # fmt: skip

    def pick_service(self) -> tuple[str, int] | None:
        self.run("SELECT `SERVICE_CODE`, `OCCURRENCE` FROM $S.`CUST_SERVICE`"
                 " WHERE `SITE_ID` = %(site)s AND `ACCOUNT_NO` = %(account)s"
                 " AND `SVC_STATUS` = 'A' AND `REC_STATUS` = 'A'"
                 " ORDER BY `SERVICE_CODE`, `OCCURRENCE` FOR UPDATE")  # fmt: skip
        services = self.cur.fetchall()
        if not services:
            return None
        code, occurrence = services[int(self.params["pick"] * len(services))]
        return code, occurrence


def _post_payment(tx: _Tx) -> int:
    balance = tx.lock_account()
    if balance is None:
        return 0
    p = tx.params
    paid = round(balance * p["share"], 2) if balance >= 1 else p["amount"]
    written = tx.run(
        "INSERT INTO $S.`PAYMENT` (`SITE_ID`, `PAYMENT_NO`, `ACCOUNT_NO`, `PAY_DATE`, `AMOUNT`,"
        f" `PAY_METHOD`, `PAY_STATUS`, `CARD_NO`, `CARD_EXP`, `CVV`, {AUDIT}) VALUES (%(site)s,"
        " %(no)s, %(account)s, %(today)s, %(paid)s, %(method)s, 'P', %(card)s, %(expiry)s,"
        " %(cvv)s, %(d)s, %(t)s, %(d)s, %(t)s, %(user)s, 'A')",
        no=tx.next_no("PAYMENT", "PAYMENT_NO"), paid=paid,
    )  # fmt: skip
    written += tx.ledger("PAY", -int(paid * 100), "PAYMENT - THANK YOU")
    return written + tx.balance(-paid)


def _post_adjustment(tx: _Tx) -> int:
    if tx.lock_account() is None:
        return 0
    p = tx.params
    written = tx.run(
        "INSERT INTO $S.`ADJUSTMENT` (`SITE_ID`, `ADJ_NO`, `ACCOUNT_NO`, `ADJ_DATE`, `ADJ_AMT`,"
        f" `REASON_CD`, `MEMO`, {AUDIT}) VALUES (%(site)s, %(no)s, %(account)s, %(today)s,"
        " %(cents)s, %(reason)s, %(memo)s, %(d)s, %(t)s, %(d)s, %(t)s, %(user)s, 'A')",
        no=tx.next_no("ADJUSTMENT", "ADJ_NO"),
    )  # fmt: skip
    written += tx.ledger("ADJ", p["cents"], f"ADJUSTMENT {p['reason']}")
    return written + tx.balance(Decimal(p["cents"]) / 100)


def _usage_burst(tx: _Tx) -> int:
    if tx.lock_account(" AND `ACCT_STATUS` = 'A'") is None:
        return 0
    p = tx.params
    top = tx.next_no("USAGE_EVENT", "EVENT_NO")
    written = 0
    for n, (kind, ago, duration, text, cents) in enumerate(
        zip(p["kinds"], p["agos"], p["durations"], p["texts"], p["cents"], strict=True)
    ):
        when = p["local"] - timedelta(seconds=ago)
        written += tx.run(
            "INSERT INTO $S.`USAGE_EVENT` (`SITE_ID`, `EVENT_NO`, `ACCOUNT_NO`, `EVENT_TYPE`,"
            " `EVENT_DATE`, `EVENT_TIME`, `DURATION_SEC`, `EVENT_DESC`, `CHARGE_AMT`,"
            f" {AUDIT}) VALUES (%(site)s, %(no)s, %(account)s, %(kind)s, %(ed)s, %(et)s,"
            " %(dur)s, %(text)s, %(charge)s, %(d)s, %(t)s, %(d)s, %(t)s, %(user)s, 'A')",
            no=top + n, kind=kind, ed=cyymmdd(when.date()), et=hhmmss(when), dur=duration,
            text=text, charge=cents,
        )  # fmt: skip
    return written


def _change_service(tx: _Tx) -> int:
    if tx.lock_account() is None or (picked := tx.pick_service()) is None:
        return 0
    p = tx.params
    quantity = "LEAST(4, GREATEST(1, `QUANTITY` + %(delta)s))"
    return tx.run(
        "UPDATE $S.`CUST_SERVICE` SET `MONTHLY_RATE` = ROUND(`MONTHLY_RATE` * %(factor)s, 2),"
        f" `QUANTITY` = CASE WHEN `SERVICE_CODE` IN %(multi)s THEN {quantity}"
        f" ELSE `QUANTITY` END, {_STAMP_SET} WHERE `SITE_ID` = %(site)s"
        " AND `ACCOUNT_NO` = %(account)s AND `SERVICE_CODE` = %(code)s"
        " AND `OCCURRENCE` = %(occ)s",
        multi=tuple(p["multi_unit"]) or ("",), code=picked[0], occ=picked[1],
    )  # fmt: skip


def _disconnect_service(tx: _Tx) -> int:
    if tx.lock_account() is None or (picked := tx.pick_service()) is None:
        return 0
    return tx.run(
        "UPDATE $S.`CUST_SERVICE` SET `SVC_STATUS` = 'D', `STOP_DATE` = %(today)s,"
        f" `REC_STATUS` = %(rec_status)s, {_STAMP_SET} WHERE `SITE_ID` = %(site)s"
        " AND `ACCOUNT_NO` = %(account)s AND `SERVICE_CODE` = %(code)s"
        " AND `OCCURRENCE` = %(occ)s",
        code=picked[0], occ=picked[1],
    )  # fmt: skip


def _update_account_profile(tx: _Tx) -> int:
    if tx.lock_account() is None:
        return 0
    return tx.run(
        "UPDATE $S.`ACCOUNT` SET `ACCT_NAME` = %(name)s, `CREDIT_CLASS` = %(credit)s,"
        f" `PIN` = COALESCE(%(pin)s, `PIN`), {_STAMP_SET}"
        " WHERE `SITE_ID` = %(site)s AND `ACCOUNT_NO` = %(account)s"
    )


def _purge_usage(tx: _Tx) -> int:
    # A hard delete: nothing is stamped, reconciliation (verify) finds it.
    row = tx.one("SELECT MAX(`EVENT_NO`) FROM $S.`USAGE_EVENT` WHERE `SITE_ID` = %(site)s")
    if row is None or row[0] is None:
        return 0
    victim = int(row[0] * tx.params["fraction"])
    return tx.run(
        "DELETE FROM $S.`USAGE_EVENT` WHERE `SITE_ID` = %(site)s AND `EVENT_NO` = %(no)s",
        no=victim,
    )


OPERATIONS: dict[str, Callable[[_Tx], int]] = {
    "post_payment": _post_payment,
    "post_adjustment": _post_adjustment,
    "usage_burst": _usage_burst,
    "change_service": _change_service,
    "disconnect_service": _disconnect_service,
    "update_account_profile": _update_account_profile,
    "purge_usage": _purge_usage,
}
"""The ICOMS operations this biller runs, by the PostgreSQL workload's names."""

# Transactions per operation: its share of rows over the rows one transaction writes.
_WEIGHTS = {s.name: s.row_share / s.expected_rows for s in SPECS if s.name in OPERATIONS}
_HARD_DELETES = {s.name for s in SPECS if s.hard_delete}


class Workload:
    """ICOMS transactions committed on a MariaDB biller, in the foreground
    (:meth:`run`) or by a background thread (:meth:`start` / :meth:`stop`).

    Parameters
    ----------
    url
        SQLAlchemy URL of the server (a writer: the biller's own user).
    schema
        The biller's database.
    rate
        Transactions per second of the background thread.
    seed
        Seed of the parameters' random generator.
    """

    def __init__(self, url: str, *, schema: str = "icoms", rate: float = 20.0,
                 seed: int = 11, hard_deletes: bool = True) -> None:  # fmt: skip
        self.url = url
        self.schema = schema
        self.rate = rate
        self.weights = {
            name: weight
            for name, weight in _WEIGHTS.items()
            if hard_deletes or name not in _HARD_DELETES
        }
        self.driver = IcomsDriver(schema=schema, rng=random.Random(seed), statement_batch=50)
        self.committed: Counter[str] = Counter()
        self.rows = 0
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: Conn | None = None

    def _connection(self) -> Conn:
        if self._conn is None:
            self._conn = connect(self.url)
            with self._conn.cursor() as cur:
                cur.execute(f"SELECT `SITE_ID`, MAX(`ACCOUNT_NO`) FROM {quote(self.schema)}"
                            ".`ACCOUNT` GROUP BY `SITE_ID`")  # fmt: skip
                found = {site.strip(): int(top) for site, top in cur.fetchall() if top.isdigit()}
            self._conn.commit()
            self.driver.state.accounts = {site: found.get(site, 0) for site in ref.SITES}
        return self._conn

    def run(self, name: str | None = None) -> int:
        """Commit one transaction (``name``, or one drawn by the mix); rows written."""
        conn = self._connection()
        rng = self.driver.rng
        name = name or rng.choices(list(self.weights), weights=list(self.weights.values()))[0]
        params = self.driver.plan(name)
        if params is None:
            return 0
        tx = _Tx(conn, self.schema, params)
        try:
            written = OPERATIONS[name](tx)
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        finally:
            tx.cur.close()
        self.committed[name] += 1
        self.rows += written
        return written

    def start(self) -> Workload:
        self._thread = threading.Thread(target=self._loop, name="mariadb-workload", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        interval = 1.0 / self.rate
        while not self._stop.is_set():
            began = time.monotonic()
            try:
                self.run()
            except pymysql.err.OperationalError as error:  # deadlock or lock wait: retry
                log.debug("workload transaction rolled back: %s", error)
            except Exception as error:  # reported by stop()
                self.errors.append(error)
                return
            self._stop.wait(max(0.0, interval - (time.monotonic() - began)))

    def stop(self) -> None:
        """Stop the thread and close the connection; raises the first error it met."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self.errors:
            raise self.errors[0]
