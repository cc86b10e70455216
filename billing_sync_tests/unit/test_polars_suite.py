"""The suites in Polars give Great Expectations' verdicts: same failures, same rows."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml

from billing_sync.config import load_catalog
from billing_sync.entities import entities_of, entity_arrow_schema
from billing_sync.validate import ValidationReport, Validator, available_entities
from billing_sync.validate.polars_suite import PolarsValidator, compile_expectation

# fmt: off
FRAME = pl.DataFrame(
    {
        "name": ["abc", None, "", "123-45-6789", "badname", "ok", "abc"],
        "amount": pl.Series(
            [Decimal("1.00"), None, Decimal("0.00"), Decimal("100.00"), Decimal("100.01"),
             None, Decimal("5.50")],
            dtype=pl.Decimal(12, 2),
        ),
        "note": [None, None, "x", None, "", None, None],
        "code": ["001", "002", "002", "12", None, None, "001"],
        "qty": pl.Series([0, 1, 2, 11, None, 3, 3], dtype=pl.Int32),
        "ratio": [0.5, float("nan"), None, 2.0, 0.0, 1.0, 1.0],
        "day": [dt.date(1999, 12, 31), dt.date(2000, 1, 1), None, dt.date(2031, 1, 1),
                dt.date(2020, 5, 5), dt.date(2030, 12, 31), dt.date(2030, 12, 31)],
        "ts": [dt.datetime(2030, 12, 31, 0, 0, 1), dt.datetime(2000, 1, 1), None,
               dt.datetime(1999, 1, 1), dt.datetime(2020, 5, 5), dt.datetime(2030, 12, 31),
               dt.datetime(2030, 12, 31)],
        "status": ["A", "C", "X", None, "B", "A", "A"],
        "_source_key": ["k1", "k2", "k3", "k4", "k5", "k6", "k6"],
    }
)
# fmt: on

EXPECTATIONS: list[dict[str, Any]] = [
    {"type": "expect_column_values_to_not_be_null", "column": "name"},
    {"type": "expect_column_values_to_not_be_null", "column": "amount", "mostly": 0.5},
    {"type": "expect_column_values_to_not_be_null", "column": "amount", "mostly": 0.9},
    {"type": "expect_column_values_to_not_be_null", "column": "ratio"},
    {"type": "expect_column_values_to_be_null", "column": "note"},
    {"type": "expect_column_values_to_be_unique", "column": "code"},
    {"type": "expect_column_values_to_be_unique", "column": "_source_key"},
    {"type": "expect_column_values_to_be_between", "column": "amount", "min_value": 0.01,
     "max_value": 100},
    {"type": "expect_column_values_to_be_between", "column": "qty", "min_value": 0,
     "max_value": 10, "strict_min": True},
    {"type": "expect_column_values_to_be_between", "column": "qty", "max_value": 2,
     "strict_max": True, "mostly": 0.5},
    {"type": "expect_column_values_to_be_between", "column": "ratio", "min_value": 0.1},
    {"type": "expect_column_values_to_be_between", "column": "day", "min_value": "2000-01-01",
     "max_value": "2030-12-31"},
    {"type": "expect_column_values_to_be_between", "column": "ts", "min_value": "2000-01-01",
     "max_value": "2030-12-31"},
    {"type": "expect_column_values_to_be_in_set", "column": "status", "value_set": ["A", "C"]},
    {"type": "expect_column_values_to_be_in_set", "column": "qty", "value_set": [1, 2, 3, 11]},
    {"type": "expect_column_values_to_be_in_set", "column": "status", "value_set": ["A", 1]},
    {"type": "expect_column_values_to_not_be_in_set", "column": "status", "value_set": ["X"]},
    {"type": "expect_column_values_to_match_regex", "column": "code", "regex": "^[0-9]{3}$"},
    {"type": "expect_column_values_to_not_match_regex", "column": "name",
     "regex": "\\d{3}-\\d{2}-\\d{4}"},
    {"type": "expect_column_values_to_match_regex", "column": "name", "regex": "^(?!bad)"},
    {"type": "expect_column_value_lengths_to_be_between", "column": "name", "min_value": 1,
     "max_value": 5},
    {"type": "expect_compound_columns_to_be_unique", "column_list": ["code", "status"]},
    {"type": "expect_compound_columns_to_be_unique", "column_list": ["note", "qty"]},
    {"type": "expect_column_to_exist", "column": "name"},
    {"type": "expect_column_to_exist", "column": "missing"},
    {"type": "expect_table_columns_to_match_set", "column_set": list(FRAME.columns)},
    {"type": "expect_table_columns_to_match_set", "column_set": ["name", "amount"]},
    {"type": "expect_table_columns_to_match_set", "column_set": ["name", "amount"],
     "exact_match": False},
    {"type": "expect_table_columns_to_match_set", "column_set": ["name", "absent"],
     "exact_match": False},
]  # fmt: skip


def _suite_dir(tmp_path: Path, expectations: list[dict[str, Any]]) -> Path:
    (tmp_path / "thing.yaml").write_text(
        yaml.safe_dump({"entity": "thing", "expectations": expectations})
    )
    return tmp_path


def _verdict(report: ValidationReport) -> list[tuple[Any, ...]]:
    def comparable(value: Any) -> Any:
        return "NaN" if isinstance(value, float) and value != value else value

    return [
        (f.expectation, f.column, f.unexpected_count, f.row_positions, f.sample_keys,
         [comparable(v) for v in f.sample_values], f.row_level)
        for f in report.failures
    ]  # fmt: skip


@pytest.mark.parametrize("spec", EXPECTATIONS, ids=lambda s: f"{s['type']}-{s.get('column')}")
def test_each_expectation_fails_the_same_rows_as_great_expectations(
    spec: dict[str, Any], tmp_path: Path
) -> None:
    directory = _suite_dir(tmp_path, [spec])
    expected = Validator(suites_dir=directory).validate("thing", FRAME)
    found = PolarsValidator(suites_dir=directory).validate("thing", FRAME)
    assert _verdict(found) == _verdict(expected)
    assert found.success == expected.success
    assert found.expectations == expected.expectations


def test_a_whole_suite_at_once(tmp_path: Path) -> None:
    directory = _suite_dir(tmp_path, EXPECTATIONS)
    expected = Validator(suites_dir=directory).validate("thing", FRAME)
    found = PolarsValidator(suites_dir=directory).validate("thing", FRAME)
    assert _verdict(found) == _verdict(expected)
    assert len(found.failures) > 10


def test_an_empty_frame_passes(tmp_path: Path) -> None:
    directory = _suite_dir(tmp_path, EXPECTATIONS)
    report = PolarsValidator(suites_dir=directory).validate("thing", FRAME.clear())
    assert report.success and report.rows == 0


def test_a_missing_column_names_no_rows(tmp_path: Path) -> None:
    directory = _suite_dir(tmp_path, [{"type": "expect_column_values_to_not_be_null",
                                       "column": "absent"}])  # fmt: skip
    failure = PolarsValidator(suites_dir=directory).validate("thing", FRAME).failures[0]
    assert not failure.row_level and failure.error is not None and "absent" in failure.error


def _entity_schemas() -> dict[str, pl.Schema]:
    """The normalized frame's schema of every entity of the packaged catalogs."""
    catalogs = [load_catalog(system) for system in ("icoms", "amdocs", "peers")]
    schemas = {}
    for entity, columns in entities_of(catalogs).items():
        frame = pl.from_arrow(entity_arrow_schema(columns).empty_table())
        assert isinstance(frame, pl.DataFrame)
        schemas[entity] = frame.drop("_batch_id").schema
    return schemas


@pytest.mark.parametrize("entity", available_entities())
def test_the_packaged_suites_compile(entity: str) -> None:
    """Every expectation of a packaged suite has a Polars form over its entity's columns,
    which evaluates (an unknown type raises NotImplementedError, a bad one a Polars error)."""
    validator = PolarsValidator()
    validator.warm_up([entity])
    suite = validator.suite(entity)
    assert suite.entity == entity
    assert suite.expectations
    schema = _entity_schemas()[entity]
    empty = pl.DataFrame(schema=schema)
    for index, spec in enumerate(suite.expectations):
        compiled = compile_expectation(index, spec, schema)
        table_level = spec.type in ("expect_column_to_exist", "expect_table_columns_to_match_set")
        assert (compiled is None) == table_level, spec.type
        if compiled is not None:
            found = empty.select(compiled.unexpected.alias("u"), compiled.domain.alias("d"))
            assert found.schema == pl.Schema({"u": pl.Boolean, "d": pl.Boolean}), spec.type


def test_the_equivalence_cases_cover_every_expectation_type_the_suites_use() -> None:
    """The tail validates with the Polars form (validate.shadow) only because every type
    a packaged suite uses is held to GX's verdict above."""
    used = {spec.type for entity in available_entities()
            for spec in PolarsValidator().suite(entity).expectations}  # fmt: skip
    covered = {spec["type"] for spec in EXPECTATIONS}
    assert used and used <= covered, sorted(used - covered)
