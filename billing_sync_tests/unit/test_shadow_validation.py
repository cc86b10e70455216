"""Great Expectations re-validates, in the background, what the Polars suite validated."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml

from billing_sync.validate import Validator
from billing_sync.validate.polars_suite import PolarsValidator
from billing_sync.validate.shadow import ShadowValidation, verdict

FRAME = pl.DataFrame({"code": ["001", None, "3"], "_source_key": ["k1", "k2", "k3"]})


def _suite(directory: Path, expectations: list[dict[str, Any]]) -> Path:
    directory.mkdir()
    (directory / "thing.yaml").write_text(
        yaml.safe_dump({"entity": "thing", "expectations": expectations})
    )
    return directory


@pytest.fixture
def suites(tmp_path: Path) -> tuple[Path, Path]:
    not_null = [{"type": "expect_column_values_to_not_be_null", "column": "code"}]
    regex = [*not_null, {"type": "expect_column_values_to_match_regex", "column": "code",
                         "regex": "^[0-9]{3}$"}]  # fmt: skip
    return _suite(tmp_path / "same", not_null), _suite(tmp_path / "other", regex)


def test_agreeing_verdicts_report_nothing(suites: tuple[Path, Path]) -> None:
    same, _ = suites
    report = PolarsValidator(suites_dir=same).validate("thing", FRAME)
    shadow = ShadowValidation(Validator(suites_dir=same), sample_seconds=0)
    assert shadow.submit("thing", FRAME, report)
    shadow.join()
    assert shadow.checked == 1 and shadow.disagreements() == []
    shadow.close()


def test_a_disagreement_is_reported_once_with_both_verdicts(suites: tuple[Path, Path]) -> None:
    """GX holding a different suite stands in for a Polars form that drifted from GX."""
    same, other = suites
    report = PolarsValidator(suites_dir=same).validate("thing", FRAME)
    shadow = ShadowValidation(Validator(suites_dir=other), sample_seconds=0)
    shadow.submit("thing", FRAME, report)
    shadow.join()
    (found,) = shadow.disagreements()
    assert found.entity == "thing" and found.polars == verdict(report)
    assert [f[0] for f in found.great_expectations] == [
        "expect_column_values_to_not_be_null", "expect_column_values_to_match_regex"]  # fmt: skip
    assert "disagree" in found.message and shadow.disagreements() == []
    shadow.close()


def test_passing_batches_are_sampled_and_failing_ones_always_checked(
    suites: tuple[Path, Path],
) -> None:
    same, _ = suites
    polars = PolarsValidator(suites_dir=same)
    shadow = ShadowValidation(Validator(suites_dir=same), sample_seconds=3600)
    clean = FRAME.filter(pl.col("code").is_not_null())
    passing = polars.validate("thing", clean)
    assert passing.success
    assert shadow.submit("thing", clean, passing)
    assert not shadow.submit("thing", clean, passing)  # sampled: the next one is not due
    failing = polars.validate("thing", FRAME)
    assert shadow.submit("thing", FRAME, failing)
    shadow.join()
    assert shadow.checked == 2 and shadow.disagreements() == []
    shadow.close()
