"""Seed data drawn in memory (no database): deterministic, consistent, realistic."""

from __future__ import annotations

import random
from collections import Counter
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from billing_sync.simulator import reference as ref
from billing_sync.simulator.schema import TABLES
from billing_sync.simulator.seed import _Generator

AS_OF = datetime(2026, 3, 1, 6, 30)
Rows = dict[str, list[tuple[Any, ...]]]


def draw(accounts: int, seed: int = 7) -> Rows:
    generator = _Generator(random.Random(seed), AS_OF)
    rows: Rows = {name: [] for name in TABLES}
    for chunk in generator.chunks(accounts):
        for name, table_rows in chunk.items():
            rows[name].extend(table_rows)
    return rows


def as_dicts(rows: Rows, table: str) -> list[dict[str, Any]]:
    names = TABLES[table].column_names
    return [dict(zip(names, row, strict=True)) for row in rows[table]]


@pytest.fixture(scope="module")
def rows() -> Rows:
    return draw(1000)


def test_same_seed_same_rows_other_seed_other_rows(rows: Rows) -> None:
    assert draw(1000) == rows
    assert draw(1000, seed=8) != rows


def test_ratios(rows: Rows) -> None:
    counts = {name: len(table_rows) for name, table_rows in rows.items()}
    assert counts["ACCOUNT"] == 1000
    assert 2.6 <= counts["CUST_SERVICE"] / 1000 <= 3.5
    assert 5.0 <= counts["STATEMENT"] / 1000 <= 7.0
    assert 7.0 <= counts["PAYMENT"] / 1000 <= 9.0


def test_keys_are_unique_and_padded(rows: Rows) -> None:
    for table, definition in TABLES.items():
        records = as_dicts(rows, table)
        keys = [tuple(record[column] for column in definition.key) for record in records]
        assert len(set(keys)) == len(keys), table
        for record in records:
            assert record["SITE_ID"] in ref.SITES
            assert len(record["ACCOUNT_NO"]) == 9 and record["ACCOUNT_NO"].isdigit()


def test_timestamps(rows: Rows) -> None:
    nulls = total = 0
    for table in TABLES:
        for record in as_dicts(rows, table):
            created, changed = record["CRT_TS"], record["CHG_TS"]
            assert AS_OF - timedelta(days=730) <= created < AS_OF
            if changed is None:
                nulls += 1
            else:
                assert created <= changed < AS_OF
            total += 1
    assert 0.25 <= nulls / total <= 0.35


def test_children_belong_to_accounts_and_follow_their_opening(rows: Rows) -> None:
    opened = {(a["SITE_ID"], a["ACCOUNT_NO"]): a["CRT_TS"] for a in as_dicts(rows, "ACCOUNT")}
    for table in ("CUST_SERVICE", "STATEMENT", "PAYMENT"):
        for record in as_dicts(rows, table):
            assert record["CRT_TS"] >= opened[record["SITE_ID"], record["ACCOUNT_NO"]], table


def test_balances_follow_statements_and_payments(rows: Rows) -> None:
    statements = sorted(
        as_dicts(rows, "STATEMENT"), key=lambda s: (s["SITE_ID"], s["ACCOUNT_NO"], s["STMT_NO"])
    )
    for statement in statements:
        assert Decimal(statement["PREV_BALANCE"]) + Decimal(statement["NEW_CHARGES"]) == Decimal(
            statement["AMOUNT_DUE"]
        )
    last_due = {(s["SITE_ID"], s["ACCOUNT_NO"]): s for s in statements}
    paid: Counter[tuple[str, str]] = Counter()
    for payment in as_dicts(rows, "PAYMENT"):
        key = (payment["SITE_ID"], payment["ACCOUNT_NO"])
        if payment["PAY_STATUS"] == "P" and payment["PAY_DATE"] > last_due[key]["STMT_DATE"]:
            paid[key] += int(Decimal(payment["AMOUNT"]) * 100)
    for account in as_dicts(rows, "ACCOUNT"):
        key = (account["SITE_ID"], account["ACCOUNT_NO"])
        if key in last_due:
            due = int(Decimal(last_due[key]["AMOUNT_DUE"]) * 100)
            assert int(Decimal(account["AR_BALANCE"]) * 100) == due - paid[key], key


def test_values_and_statuses(rows: Rows) -> None:
    accounts = as_dicts(rows, "ACCOUNT")
    names = [a["ACCT_NAME"] for a in accounts]
    assert "" in names and None in names
    assert any(name and not name.isascii() for name in names)
    assert all(name is None or len(name) <= 40 for name in names)
    statuses = Counter(a["ACCT_STATUS"] for a in accounts)
    assert statuses["A"] > 800 and statuses["S"] > 0 and statuses["C"] > 0
    assert {a["CREDIT_CLASS"] for a in accounts} == set(ref.CREDIT_CLASSES)
    assert {a["BILL_CYCLE"] for a in accounts} == set(range(1, 29))

    services = as_dicts(rows, "CUST_SERVICE")
    assert {s["SERVICE_CODE"] for s in services} == set(ref.SERVICE_BY_CODE)
    for service in services:
        assert (service["SVC_STATUS"] == "D") == (service["STOP_DATE"] is not None)
        assert service["REC_STATUS"] == "A" or service["SVC_STATUS"] == "D"
        assert service["START_DATE"] <= (service["STOP_DATE"] or service["START_DATE"])
    assert any(s["REC_STATUS"] == "D" for s in services)

    payments = as_dicts(rows, "PAYMENT")
    assert {p["PAY_METHOD"] for p in payments} == set(ref.PAY_METHODS)
    reversed_share = sum(p["PAY_STATUS"] == "R" for p in payments) / len(payments)
    assert 0.005 < reversed_share < 0.05


def test_statement_runs_share_their_timestamp(rows: Rows) -> None:
    runs = Counter(s["CRT_TS"] for s in as_dicts(rows, "STATEMENT"))
    assert max(runs.values()) > 5


def test_rows_are_in_change_order(rows: Rows) -> None:
    for table in TABLES:
        stamps = [r["CHG_TS"] or r["CRT_TS"] for r in as_dicts(rows, table)]
        assert stamps == sorted(stamps), table


def test_fake_names_are_deterministic() -> None:
    first = [ref.fake_name(random.Random(3)) for _ in range(3)]
    assert first == [ref.fake_name(random.Random(3)) for _ in range(3)]
    drawn = [ref.fake_name(rng) for rng in [random.Random(5)] for _ in range(5000)]
    assert 0.005 < drawn.count("") / 5000 < 0.03
    assert 0.005 < drawn.count(None) / 5000 < 0.03
