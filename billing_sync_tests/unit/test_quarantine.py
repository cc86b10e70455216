"""The pure part of quarantine: which rows of a batch go aside, and when a batch fails whole."""

from __future__ import annotations

import datetime as dt

import polars as pl

from billing_sync.transform.failures import ExpectationFailure
from billing_sync.validate.quarantine import RowProblem, decide, row_problems
from billing_sync.validate.report import ValidationReport
from billing_sync.validate.suites import QuarantinePolicy, load_suite

TS = dt.datetime(2026, 1, 1, 12)


def frame(n: int) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "amount": [float(i) for i in range(n)],
            "_source_key": [f"001|{i}" for i in range(n)],
            "_source_version": [TS] * n,
        }
    )


def amount_failure(positions: tuple[int, ...], rows: int) -> ExpectationFailure:
    return ExpectationFailure(
        expectation="expect_column_values_to_be_between",
        column="amount",
        unexpected_count=len(positions),
        unexpected_percent=100.0 * len(positions) / rows,
        kwargs={"column": "amount"},
        row_positions=positions,
    )


def report(rows: int, *failures: ExpectationFailure) -> ValidationReport:
    return ValidationReport("payment", not failures, rows, 0.01, list(failures), 14)


def test_row_problems_name_each_offending_row_and_value() -> None:
    data = frame(4)
    by_row, whole = row_problems(data, report(4, amount_failure((1, 3), 4)))
    assert whole == []
    assert by_row == {
        1: [RowProblem("expect_column_values_to_be_between(amount)", "amount", 1.0)],
        3: [RowProblem("expect_column_values_to_be_between(amount)", "amount", 3.0)],
    }


def test_bad_rows_go_aside_and_the_rest_loads() -> None:
    data = frame(100)
    suite = load_suite("payment")
    screened = decide(
        data,
        entity="payment",
        source_table="PAYMENT",
        suite=suite,
        report=report(100, amount_failure((5, 7), 100)),
        orphans={
            9: ([RowProblem("expect_parent_to_exist(x)", "k", "001|9")], {"b": "001|9"}, False)
        },
    )
    assert not screened.fails_batch
    assert screened.good.height == 97
    assert sorted(screened.bad["_source_key"].to_list()) == ["001|5", "001|7", "001|9"]
    assert screened.parent_keys == {"001|9": {"b": "001|9"}}
    assert screened.quarantined == 3 and screened.needs_batch


def test_too_many_bad_rows_or_a_failure_naming_no_rows_fail_the_batch_whole() -> None:
    suite = load_suite("payment")
    over = decide(
        frame(20),
        entity="payment",
        source_table="PAYMENT",
        suite=suite,
        report=report(20, amount_failure((0, 1, 2, 3, 4), 20)),
        orphans={},
    )
    assert over.fails_batch and "5 of 20 rows are bad" in (over.reason or "")
    table_level = ExpectationFailure("expect_table_columns_to_match_set", None, None, None)
    whole = decide(
        frame(20),
        entity="payment",
        source_table="PAYMENT",
        suite=suite,
        report=report(20, table_level),
        orphans={},
    )
    assert whole.fails_batch and "names no rows" in (whole.reason or "")


def test_the_threshold_needs_both_a_share_and_a_count() -> None:
    policy = QuarantinePolicy(max_bad_share=0.05, min_bad_rows=5)
    assert not policy.fails(4, 4)  # a few bad rows in a tiny batch: quarantined
    assert not policy.fails(5, 200)  # 2.5%
    assert policy.fails(11, 200)
    assert policy.fails(5, 5)


def test_the_parent_key_follows_how_each_biller_keys_the_parent() -> None:
    from billing_sync.config import TableMapping
    from billing_sync.validate.quarantine import parent_key_expr
    from billing_sync.validate.suites import ParentRule

    rule = ParentRule(entity="billing_account", key=["site_id", "account_number"])
    children = pl.DataFrame({"site_id": ["001", "AMD"], "account_number": ["00000042", "2001"]})

    def parent(key: list[str]) -> TableMapping:
        columns = [
            {"source": "SITE_ID", "target": "site_id", "type": "text"},
            {"source": "BAN", "target": "account_number", "type": "text"},
        ]
        return TableMapping.model_validate(
            {"table": "T", "entity": "billing_account", "key": key, "cursor": "TS",
             "columns": columns}
        )  # fmt: skip

    def keys(mapping: TableMapping | None) -> list[str]:
        return children.select(parent_key_expr(rule, mapping)).to_series().to_list()

    assert keys(None) == ["001|00000042", "AMD|2001"]
    assert keys(parent(["SITE_ID", "BAN"])) == ["001|00000042", "AMD|2001"]
    assert keys(parent(["BAN"])) == ["00000042", "2001"]
