"""Seed rows of both simulated billers, drawn in memory: deterministic, consistent, realistic."""

from __future__ import annotations

import random
import re
from collections import Counter, defaultdict
from datetime import date, datetime
from typing import Any

import pytest

from billing_sync.simulator import people
from billing_sync.simulator.billers import BILLERS
from billing_sync.simulator.clock import cyymmdd, from_cyymmdd, hhmmss
from billing_sync.simulator.icoms import reference as ref

AS_OF = datetime(2026, 3, 1)
ACCOUNTS = 600
Rows = dict[str, list[tuple[Any, ...]]]


def draw(system: str, accounts: int = ACCOUNTS, seed: int = 7) -> Rows:
    biller = BILLERS[system]
    rows: Rows = {name: [] for name in biller.tables}
    for chunk in biller.generate(random.Random(seed), AS_OF, accounts):
        for name, table_rows in chunk.items():
            rows[name].extend(table_rows)
    return rows


def records(system: str, rows: Rows, table: str) -> list[dict[str, Any]]:
    names = BILLERS[system].tables[table].column_names
    return [dict(zip(names, row, strict=True)) for row in rows[table]]


@pytest.fixture(scope="module")
def icoms() -> Rows:
    return draw("icoms")


@pytest.fixture(scope="module")
def amdocs() -> Rows:
    return draw("amdocs")


@pytest.mark.parametrize("system", ["icoms", "amdocs"])
def test_same_seed_same_rows_other_seed_other_rows(system: str) -> None:
    assert draw(system, 150) == draw(system, 150)
    assert draw(system, 150, seed=8) != draw(system, 150)


# Rows per account: (low, high) bounds around the documented averages.
ICOMS_RATIOS = {
    "ACCOUNT": (1, 1), "PREMISE": (1.05, 1.3), "CUST_SERVICE": (2.3, 3.4),
    "EQUIPMENT": (1.8, 3.2), "WORK_ORDER": (2.4, 3.8), "WO_LINE": (2.4, 4.0),
    "STATEMENT": (5.0, 7.0), "LEDGER": (25, 40), "PAYMENT": (6.0, 9.5),
    "ADJUSTMENT": (0.3, 1.0), "USAGE_EVENT": (3.0, 8.0), "COLL_ACTIVITY": (0.2, 1.0),
}  # fmt: skip
AMDOCS_RATIOS = {
    "BILLING_ACCOUNT": (1, 1), "CUSTOMER": (0.8, 0.95), "SUBSCRIBER": (1.5, 2.3),
    "SERVICE_AGREEMENT": (3.5, 5.5), "BILL": (5.0, 7.0), "CHARGE": (14, 24),
    "PAYMENT": (4.0, 6.0), "ADJUSTMENT": (0.3, 1.0), "USAGE": (7, 14),
}  # fmt: skip


def test_icoms_ratios_and_reference_rows(icoms: Rows) -> None:
    for table, (low, high) in ICOMS_RATIOS.items():
        assert low <= len(icoms[table]) / ACCOUNTS <= high, (table, len(icoms[table]))
    assert len(icoms["SITE"]) == len(ref.SITES)
    assert len(icoms["SERVICE_CODE"]) == len(ref.SITES) * len(ref.SERVICES)


def test_amdocs_ratios(amdocs: Rows) -> None:
    for table, (low, high) in AMDOCS_RATIOS.items():
        assert low <= len(amdocs[table]) / ACCOUNTS <= high, (table, len(amdocs[table]))


@pytest.mark.parametrize("system", ["icoms", "amdocs"])
def test_keys_are_unique(system: str, icoms: Rows, amdocs: Rows) -> None:
    rows = icoms if system == "icoms" else amdocs
    for table, definition in BILLERS[system].tables.items():
        keys = [tuple(r[c] for c in definition.key) for r in records(system, rows, table)]
        assert len(set(keys)) == len(keys), table


def test_icoms_children_belong_to_accounts_and_the_ledger_is_the_balance(icoms: Rows) -> None:
    accounts = {(a["SITE_ID"], a["ACCOUNT_NO"]): a for a in records("icoms", icoms, "ACCOUNT")}
    for table in ("CUST_SERVICE", "WORK_ORDER", "STATEMENT", "LEDGER", "PAYMENT", "ADJUSTMENT",
                  "USAGE_EVENT", "COLL_ACTIVITY"):  # fmt: skip
        for record in records("icoms", icoms, table):
            assert (record["SITE_ID"], record["ACCOUNT_NO"]) in accounts, table
    premises = {(p["SITE_ID"], p["PREMISE_ID"]) for p in records("icoms", icoms, "PREMISE")}
    assert all((a["SITE_ID"], a["PREMISE_ID"]) in premises for a in accounts.values())
    orders = {(w["SITE_ID"], w["WO_NO"]) for w in records("icoms", icoms, "WORK_ORDER")}
    assert all((w["SITE_ID"], w["WO_NO"]) in orders for w in records("icoms", icoms, "WO_LINE"))
    ledger: dict[tuple[str, str], int] = defaultdict(int)
    for line in records("icoms", icoms, "LEDGER"):
        ledger[line["SITE_ID"], line["ACCOUNT_NO"]] += line["TRAN_AMT"]
    for key, account in accounts.items():
        assert round(float(account["AR_BALANCE"]) * 100) == ledger[key], key
    for statement in records("icoms", icoms, "STATEMENT"):
        due = float(statement["PREV_BALANCE"]) + float(statement["NEW_CHARGES"])
        assert abs(due - float(statement["AMOUNT_DUE"])) < 0.005


def test_icoms_values_look_like_an_as400(icoms: Rows) -> None:
    for account in records("icoms", icoms, "ACCOUNT"):
        assert re.fullmatch(r"[0-9]{8}", account["ACCOUNT_NO"])  # 8 digits: never SSN-shaped
        assert account["SSN"] is None or re.fullmatch(r"[0-9]{9}", account["SSN"])
        assert account["DOB"] == 0 or from_cyymmdd(account["DOB"]).year >= 1900
        assert account["ACCT_STATUS"] in "ASC" and account["ACCT_TYPE"] in "RBC"
    services = records("icoms", icoms, "CUST_SERVICE")
    assert any(s["STOP_DATE"] == 9_999_999 for s in services)  # open-ended
    for code in records("icoms", icoms, "SERVICE_CODE"):
        assert code["SVC_DESC"].decode("cp037").isupper()  # EBCDIC bytes
    addresses = [p["ADDR_LINE"].decode("latin-1") for p in records("icoms", icoms, "PREMISE")]
    assert any(not text.isascii() for text in addresses)
    cards = [p["CARD_NO"] for p in records("icoms", icoms, "PAYMENT") if p["CARD_NO"]]
    assert cards and all(people.luhn_valid(card) for card in cards)
    memos = [a["MEMO"] for a in records("icoms", icoms, "ADJUSTMENT")]
    assert any(re.search(r"\d{3}-\d{2}-\d{4}|(\d[ -]?){13,19}", memo or "") for memo in memos)


@pytest.mark.parametrize("system", ["icoms", "amdocs"])
def test_changes_follow_creation_and_end_before_as_of(
    system: str, icoms: Rows, amdocs: Rows
) -> None:
    rows = icoms if system == "icoms" else amdocs
    for table in BILLERS[system].tables:
        for row in rows[table]:
            if system == "icoms":
                created = from_cyymmdd(row[-6], row[-5])
                changed: datetime | None = from_cyymmdd(row[-4], row[-3])
            else:
                created, changed = row[-3], row[-2]
            assert created <= AS_OF, table
            assert changed is None or created <= changed <= AS_OF, table


def test_icoms_statement_runs_share_their_stamp(icoms: Rows) -> None:
    runs = Counter(
        (s["SITE_ID"], s["CRT_DATE"], s["CRT_TIME"]) for s in records("icoms", icoms, "STATEMENT")
    )
    assert max(runs.values()) >= 3  # a bill run stamps a cycle's statements alike


def test_amdocs_values_look_like_oracle(amdocs: Rows) -> None:
    bans = {b["BAN"]: b for b in records("amdocs", amdocs, "BILLING_ACCOUNT")}
    assert all(10_000_000 <= ban < 100_000_000 for ban in bans)  # 8 digits
    customers = {c["CUSTOMER_ID"] for c in records("amdocs", amdocs, "CUSTOMER")}
    assert all(b["CUSTOMER_ID"] in customers for b in bans.values())
    assert any(b["PARENT_BAN"] in bans for b in bans.values())  # hierarchy
    for table in (
        "SUBSCRIBER",
        "SERVICE_AGREEMENT",
        "BILL",
        "CHARGE",
        "PAYMENT",
        "ADJUSTMENT",
        "USAGE",
    ):
        assert all(r["BAN"] in bans for r in records("amdocs", amdocs, table)), table
    assert all(isinstance(p["ACTV_AMT"], float) for p in records("amdocs", amdocs, "PAYMENT"))
    ssns = [c["SSN"] for c in records("amdocs", amdocs, "CUSTOMER") if c["SSN"]]
    assert ssns and all(re.fullmatch(r"\d{3}-\d{2}-\d{4}", ssn) for ssn in ssns)


@pytest.mark.parametrize(
    ("day", "expected"),
    [(date(2026, 11, 25), 1_261_125), (date(1999, 12, 31), 991_231), (None, 0),
     (date(2000, 1, 1), 1_000_101)],
)  # fmt: skip
def test_cyymmdd(day: date | None, expected: int) -> None:
    assert cyymmdd(day) == expected
    if day is not None:
        assert from_cyymmdd(expected).date() == day


def test_hhmmss() -> None:
    assert hhmmss(datetime(2026, 1, 1, 14, 5, 9)) == 140_509
    assert from_cyymmdd(1_261_125, 140_509) == datetime(2026, 11, 25, 14, 5, 9)


@pytest.mark.parametrize("seed", range(20))
def test_fake_cards_pass_luhn_and_ssns_are_nine_digits(seed: int) -> None:
    rng = random.Random(seed)
    card = people.fake_card(rng)
    assert people.luhn_valid(card) and 15 <= len(card) <= 16
    assert not people.luhn_valid(card[:-1] + str((int(card[-1]) + 1) % 10))
    assert re.fullmatch(r"[0-9]{9}", people.fake_ssn(rng))


def test_luhn_known_numbers() -> None:
    assert people.luhn_valid("4111 1111 1111 1111")
    assert people.luhn_valid("378282246310005")
    assert not people.luhn_valid("4111111111111112")
