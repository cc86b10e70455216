"""Validation suites and the Great Expectations runner (DESIGN §6)."""

from __future__ import annotations

import datetime as dt
import pickle
import subprocess
import sys
import textwrap
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from billing_sync.column_types import polars_type
from billing_sync.config import load_catalog
from billing_sync.entities import entities_of
from billing_sync.validate import (
    LINEAGE_COLUMNS,
    SUPPORTED_EXPECTATIONS,
    BatchValidationError,
    ExpectationFailure,
    ExpectationSpec,
    SuiteError,
    ValidationReport,
    Validator,
    available_entities,
    load_suite,
    to_pandas_for_validation,
)

TS = dt.datetime(2024, 5, 1, 12, 30, 15, 123456)
DAY = dt.date(2024, 5, 1)

LINEAGE_SCHEMA: dict[str, pl.DataType] = {
    "_source_system": pl.Utf8(),
    "_source_key": pl.Utf8(),
    "_source_version": pl.Datetime("us"),
    "_batch_id": pl.Utf8(),
    "_row_hash": pl.Utf8(),
    "_is_deleted": pl.Boolean(),
    "_synced_at": pl.Datetime("us"),
}
CATALOGS = [load_catalog(system) for system in ("icoms", "amdocs", "peers")]
ENTITIES = sorted({mapping.entity for catalog in CATALOGS for mapping in catalog.tables})
# Every entity's columns as the catalogs map them (both billers agree), then lineage.
SCHEMAS: dict[str, dict[str, pl.DataType]] = {
    entity: {
        **{name: polars_type(kind) for name, kind in columns.business},
        **LINEAGE_SCHEMA,
    }
    for entity, columns in entities_of(CATALOGS).items()
}
DEFAULTS: dict[str, dict[str, Any]] = {
    "payment": {
        "account_number": "000123",
        "payment_date": DAY,
        "amount": Decimal("49.99"),
        "method": "card",
        "status": "posted",
    },
    "billing_account": {
        "name": "J SMITH",
        "status": "active",
        "bill_cycle": 15,
        "balance": Decimal("-12.50"),
        "credit_class": "B",
    },
    "product": {
        "product_code": "HSD100",
        "occurrence": 1,
        "start_date": DAY,
        "stop_date": None,
        "monthly_rate": Decimal("79.99"),
        "quantity": 1,
        "status": "active",
    },
    "customer_bill": {
        "bill_date": DAY,
        "due_date": DAY + dt.timedelta(days=21),
        "previous_balance": Decimal("120.00"),
        "new_charges": Decimal("-5.00"),
        "amount_due": Decimal("115.00"),
    },
}
KEYS = {
    "payment": ["site_id", "payment_number"],
    "billing_account": ["site_id", "account_number"],
    "product": ["site_id", "account_number", "product_code", "occurrence"],
    "customer_bill": ["site_id", "account_number", "bill_number"],
}


def make_frame(entity: str, rows: list[dict[str, Any]]) -> pl.DataFrame:
    """Rows of ``entity`` with the proper dtypes; unspecified columns get sane values and
    ``_source_key`` joins the key columns unless given."""
    filled = []
    for row in rows:
        values: dict[str, Any] = {
            "site_id": "001",
            "account_number": "000123",
            **DEFAULTS[entity],
            "created_at": TS,
            "changed_at": TS,
            "changed_by": "BATCH",
            "record_status": "A",
            "_source_system": "icoms",
            "_source_version": TS,
            "_batch_id": "b-1",
            "_row_hash": "h",
            "_is_deleted": False,
            "_synced_at": TS,
            **row,
        }
        if "_source_key" not in row:
            values["_source_key"] = "|".join(
                "" if values.get(k) is None else str(values[k]) for k in KEYS[entity]
            )
        filled.append(values)
    schema = SCHEMAS[entity]
    return pl.DataFrame(
        [[values.get(name) for name in schema] for values in filled], schema=schema, orient="row"
    )


def payments(*rows: dict[str, Any]) -> pl.DataFrame:
    return make_frame("payment", list(rows))


@pytest.fixture(scope="module")
def validator() -> Validator:
    return Validator()


# -- suites (pure) ---------------------------------------------------------------------------


def test_suites_exist_for_every_entity() -> None:
    assert available_entities() == ENTITIES


@pytest.mark.parametrize("entity", ENTITIES)
def test_suite_loads_and_reads_only_known_columns(entity: str) -> None:
    suite = load_suite(entity)
    assert suite.entity == entity
    mappings = [m for catalog in CATALOGS for m in catalog.tables if m.entity == entity]
    checks = {(spec.type, spec.column) for spec in suite.expectations}
    for mapping in mappings:  # one table per biller feeding the entity
        known = {column.target for column in mapping.columns} | set(LINEAGE_COLUMNS)
        assert set(suite.columns) <= known
        for rule in suite.parents:
            assert set(rule.key) <= known
    # Key columns every feeding biller fills must never be null.
    keys = set.intersection(*({*mapping.target_key} for mapping in mappings))
    for key in [*sorted(keys), "_source_key"]:
        assert ("expect_column_values_to_not_be_null", key) in checks
    assert ("expect_column_values_to_be_unique", "_source_key") in checks
    assert ("expect_column_values_to_be_in_set", "record_status") in checks


def test_spec_gathers_flat_kwargs() -> None:
    spec = ExpectationSpec.model_validate(
        {"type": "expect_column_values_to_be_between", "column": "amount", "min_value": 0.01}
    )
    assert spec.kwargs == {"column": "amount", "min_value": 0.01}
    assert spec.column == "amount"
    assert spec.label == "expect_column_values_to_be_between(amount)"


def _write(directory: Path, entity: str, text: str) -> None:
    (directory / f"{entity}.yaml").write_text(textwrap.dedent(text))


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (
            "expectations:\n  - {type: expect_column_values_to_be_purple, column: x}\n",
            "unknown expectation type 'expect_column_values_to_be_purple'",
        ),
        (
            "expectations:\n  - {type: expect_column_values_to_be_in_set, column: x}\n",
            "bad arguments for expect_column_values_to_be_in_set: value_set: Field required",
        ),
        (
            "expectations:\n  - {type: expect_column_values_to_be_between, column: x, min: 1}\n",
            "bad arguments for expect_column_values_to_be_between",
        ),
        (
            "expectations:\n"
            "  - {type: expect_column_values_to_be_between, column: x,"
            " min_value: 5, max_value: 1}\n",
            "min_value 5 is above max_value 1",
        ),
        ("expectations: []\n", "expectations"),
    ],
)
def test_bad_suite_names_file_entity_and_problem(tmp_path: Path, body: str, fragment: str) -> None:
    _write(tmp_path, "thing", "entity: thing\n" + body)
    with pytest.raises(SuiteError) as caught:
        load_suite("thing", directory=tmp_path)
    message = str(caught.value)
    assert str(tmp_path / "thing.yaml") in message
    assert "'thing'" in message
    assert fragment in message


def test_suite_must_name_its_own_entity(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "thing",
        "entity: other\nexpectations:\n  - {type: expect_column_to_exist, column: x}\n",
    )
    with pytest.raises(SuiteError, match="declares entity 'other', expected 'thing'"):
        load_suite("thing", directory=tmp_path)


def test_missing_suite_is_a_clear_error() -> None:
    with pytest.raises(SuiteError, match=r"no validation suite for entity 'subscription'.*payment"):
        load_suite("subscription")


def test_supported_expectation_types_are_gx_types() -> None:
    from great_expectations.expectations.registry import get_expectation_impl

    for name in SUPPORTED_EXPECTATIONS:
        assert get_expectation_impl(name) is not None, name


# -- conversion --------------------------------------------------------------------------------


def test_pandas_dtypes_do_not_depend_on_nulls() -> None:
    with_nulls = make_frame("billing_account", [{"bill_cycle": None, "balance": None}, {}])
    without = make_frame("billing_account", [{}, {}])
    columns = ["bill_cycle", "balance", "_source_version", "status", "_source_key"]
    a = to_pandas_for_validation(with_nulls, columns)
    b = to_pandas_for_validation(without, columns)
    assert list(a.columns) == columns
    assert a.dtypes.to_dict() == b.dtypes.to_dict()
    assert str(a["bill_cycle"].dtype) == "float64"
    assert str(a["balance"].dtype) == "float64"
    assert b["balance"].tolist() == [-12.5, -12.5]


# -- runner ------------------------------------------------------------------------------------


def test_good_payments_pass(validator: Validator) -> None:
    frame = payments(
        {"payment_number": 1},
        {
            "payment_number": 2,
            "amount": Decimal("100000.00"),
            "method": "direct_debit",
            "status": "reversed",
        },
        {"payment_number": 3, "amount": Decimal("0.01"), "method": "cash"},
        # soft-deleted: keeps its last values and still passes
        {"payment_number": 4, "record_status": "D", "_is_deleted": True},
        # nulls outside key columns are allowed
        {"payment_number": 5, "amount": None, "method": None, "payment_date": None},
    )
    report = validator.validate("payment", frame)
    assert report.success, report.message()
    assert report.failures == []
    assert report.rows == 5
    assert report.expectations == len(load_suite("payment").expectations)
    assert report.seconds > 0
    assert report.message() == f"payment: 5 rows passed {report.expectations} expectations"


def test_bad_payments_fail_with_each_expectation_and_sample_keys(validator: Validator) -> None:
    frame = payments(
        {"payment_number": 1},
        {"payment_number": 2, "amount": Decimal("-5.00")},
        {"payment_number": 3, "_source_key": "001|1"},  # duplicate key
        {"payment_number": None},  # null key column, _source_key "001|"
        {"payment_number": 5, "status": "X"},
        {"payment_number": 6, "_source_key": None},  # null _source_key
    )
    report = validator.validate("payment", frame)

    assert not report.success
    assert report.rows == 6
    found = {
        (f.expectation, f.column): (f.unexpected_count, f.sample_keys, f.sample_values)
        for f in report.failures
    }
    assert found == {
        ("expect_column_values_to_not_be_null", "payment_number"): (1, ["001|"], [None]),
        ("expect_column_values_to_not_be_null", "_source_key"): (1, ["<row 5>"], [None]),
        ("expect_column_values_to_be_unique", "_source_key"): (2, ["001|1"], ["001|1"]),
        ("expect_column_values_to_be_between", "amount"): (1, ["001|2"], [Decimal("-5.00")]),
        ("expect_column_values_to_be_in_set", "status"): (1, ["001|5"], ["X"]),
    }
    # failures come in suite order
    suite_order = [(s.type, s.column) for s in load_suite("payment").expectations]
    positions = [suite_order.index((f.expectation, f.column)) for f in report.failures]
    assert positions == sorted(positions)
    between = next(f for f in report.failures if f.column == "amount")
    assert between.unexpected_percent == pytest.approx(100 / 6)
    assert between.kwargs == {"column": "amount", "min_value": 0.01, "max_value": 100000}
    assert (
        "payment: expect_column_values_to_be_between(amount) failed for 1 of 6 rows, "
        "e.g. keys 001|2" in report.message().splitlines()
    )
    assert len(report.message().splitlines()) == 5


def test_sample_keys_are_capped_at_five(validator: Validator) -> None:
    frame = payments(*({"payment_number": n, "amount": Decimal("0.00")} for n in range(1, 9)))
    report = validator.validate("payment", frame)
    (failure,) = report.failures
    assert failure.unexpected_count == 8
    assert failure.sample_keys == ["001|1", "001|2", "001|3", "001|4", "001|5"]
    assert failure.sample_values == [Decimal("0.00")] * 5


def test_missing_column_is_reported_not_raised(validator: Validator) -> None:
    frame = payments({"payment_number": 1}).drop("method")
    report = validator.validate("payment", frame)
    (failure,) = report.failures
    assert failure.column == "method"
    assert failure.unexpected_count is None
    assert failure.error is not None and "method" in failure.error
    assert report.message().startswith(
        "payment: expect_column_values_to_be_in_set(method) could not be evaluated: "
    )


@pytest.mark.parametrize(
    ("entity", "good", "bad", "column"),
    [
        (
            "billing_account",
            [{"status": "closed", "record_status": "D", "_is_deleted": True, "bill_cycle": 31}],
            {"account_number": "000900", "bill_cycle": 0},
            "bill_cycle",
        ),
        (
            "billing_account",
            [{"status": "suspended"}],
            {"account_number": "000901", "balance": Decimal("1000000.01")},
            "balance",
        ),
        (
            "billing_account",
            [{"status": "active"}],
            {"account_number": "000902", "status": "Z"},
            "status",
        ),
        (
            "product",
            [
                {"status": "disconnected", "record_status": "D", "_is_deleted": True},
                {"occurrence": 2},
            ],
            {"occurrence": 3, "monthly_rate": Decimal("10000.01")},
            "monthly_rate",
        ),
        ("product", [{"status": "pending"}], {"occurrence": 2, "status": "X"}, "status"),
        (
            "customer_bill",
            [{"bill_number": 1, "amount_due": Decimal("-999999.99")}],
            {"bill_number": 2, "new_charges": Decimal("-1000000.01")},
            "new_charges",
        ),
    ],
)
def test_other_entities(
    validator: Validator,
    entity: str,
    good: list[dict[str, Any]],
    bad: dict[str, Any],
    column: str,
) -> None:
    passing = validator.validate(entity, make_frame(entity, good))
    assert passing.success, passing.message()
    failing = validator.validate(entity, make_frame(entity, [*good, bad]))
    assert [f.column for f in failing.failures] == [column]
    bad_key = make_frame(entity, [bad])["_source_key"][0]
    assert failing.failures[0].sample_keys == [bad_key]


def test_empty_frame_passes(validator: Validator) -> None:
    report = validator.validate("payment", payments().clear())
    assert report == ValidationReport(
        entity="payment", success=True, rows=0, seconds=report.seconds
    )
    assert report.message() == "payment: empty batch, nothing to validate"


def test_unknown_entity_raises(validator: Validator) -> None:
    with pytest.raises(SuiteError, match="no validation suite for entity 'subscription'"):
        validator.validate("subscription", pl.DataFrame())


def test_validator_builds_once_and_prints_nothing(
    validator: Validator, capfd: pytest.CaptureFixture[str]
) -> None:
    validator.validate("payment", payments({"payment_number": 1}))
    built = validator.build_seconds
    capfd.readouterr()
    report = validator.validate("payment", payments({"payment_number": 2}))
    assert report.success
    assert validator.build_seconds == built
    out, err = capfd.readouterr()
    assert out == "" and err == ""  # no tqdm bar, no GX logging


def test_import_and_empty_validation_do_not_import_great_expectations() -> None:
    code = textwrap.dedent(
        """
        import sys
        import polars as pl
        import billing_sync.validate
        import billing_sync.validate.runner
        from billing_sync.validate import Validator
        assert "great_expectations" not in sys.modules, "imported by module import"
        report = Validator().validate("payment", pl.DataFrame({"_source_key": []}))
        assert report.success and report.rows == 0
        assert "great_expectations" not in sys.modules, "imported by empty validation"
        print("ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


# -- report ------------------------------------------------------------------------------------


def _failed_report() -> ValidationReport:
    return ValidationReport(
        entity="payment",
        success=False,
        rows=500,
        seconds=0.1,
        failures=[
            ExpectationFailure(
                expectation="expect_column_values_to_be_between",
                column="amount",
                unexpected_count=2,
                unexpected_percent=0.4,
                sample_keys=["001|42", "002|7"],
                sample_values=[Decimal("-1.00"), Decimal("0.00")],
            ),
            ExpectationFailure(
                expectation="expect_column_values_to_be_unique",
                column="_source_key",
                unexpected_count=3,
                unexpected_percent=0.6,
            ),
        ],
        expectations=11,
    )


def test_report_message() -> None:
    assert _failed_report().message() == (
        "payment: expect_column_values_to_be_between(amount) failed for 2 of 500 rows, "
        "e.g. keys 001|42, 002|7\n"
        "payment: expect_column_values_to_be_unique(_source_key) failed for 3 of 500 rows"
    )


def test_batch_validation_error_carries_the_report() -> None:
    report = _failed_report()
    with pytest.raises(BatchValidationError) as caught:
        report.raise_for_failure()
    assert caught.value.report is report
    assert str(caught.value) == report.message()
    copy = pickle.loads(pickle.dumps(caught.value))
    assert copy.report == report and str(copy) == str(caught.value)
    passed = ValidationReport(entity="payment", success=True, rows=1, seconds=0.0)
    assert passed.raise_for_failure() is passed


def test_report_metadata_is_json_safe() -> None:
    import json

    metadata = _failed_report().as_metadata()
    assert json.loads(json.dumps(metadata)) == metadata
    assert metadata["failures"][0]["sample_values"] == ["-1.00", "0.00"]


def test_a_background_warm_up_marks_entities_warming_until_their_suite_is_built() -> None:
    validator = Validator()
    assert not validator.warming("payment")  # no warm-up started: validate() builds it
    release = threading.Event()
    build = validator.warm_up

    def held(entities: list[str] | None = None) -> float:
        release.wait(30)
        return build(entities)

    validator.warm_up = held  # type: ignore[method-assign]
    validator.warm_up_in_background(["payment"])
    assert validator.warming("payment") and validator.warming("usage")
    release.set()
    assert validator._background is not None
    validator._background.join(60)
    assert not validator.warming("payment") and not validator.warming("usage")
    report = validator.validate("payment", pl.DataFrame())
    assert report.success
