"""Validation suites kept in the repo as YAML, loaded into typed models (DESIGN §6).

One file per normalized entity, ``suites/<entity>.yaml``::

    entity: payment
    expectations:
      - {type: expect_column_values_to_not_be_null, column: _source_key}
      - {type: expect_column_values_to_be_between, column: amount,
         min_value: 0.01, max_value: 100000}

Each expectation names a Great Expectations expectation type and its keyword arguments,
flat. Optional sections: ``quarantine`` (the entity's bad-row threshold,
:class:`QuarantinePolicy`) and ``parents`` (cross-entity rules, :class:`ParentRule`).

This module is pure: it never imports ``great_expectations`` (that costs 3.4 s); it knows
the types we support and their arguments, so a bad suite fails here, with the file, entity
and expectation named, before any validation runs.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

SUITES_DIR = Path(__file__).parent / "suites"

#: Lineage columns every normalized row carries (DESIGN §5).
LINEAGE_COLUMNS: tuple[str, ...] = (
    "_source_system",
    "_source_key",
    "_source_version",
    "_batch_id",
    "_row_hash",
    "_is_deleted",
    "_synced_at",
)
#: The column that names a row in reports: the source key columns joined.
KEY_COLUMN = "_source_key"


class SuiteError(ValueError):
    """A suite file is missing or wrong; the message names the file and entity."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# -- keyword arguments of the supported expectation types ---------------------------------

Scalar = bool | int | float | str


class _ColumnKwargs(_Strict):
    column: str = Field(min_length=1)
    mostly: float | None = Field(default=None, ge=0, le=1)


class _BetweenKwargs(_ColumnKwargs):
    """Numeric bounds, or ISO dates (``"2000-01-01"``) for date and timestamp columns."""

    min_value: int | float | str | None = None
    max_value: int | float | str | None = None
    strict_min: bool | None = None
    strict_max: bool | None = None

    @field_validator("min_value", "max_value")
    @classmethod
    def _iso_date(cls, value: int | float | str | None) -> int | float | str | None:
        if not isinstance(value, str):
            return value
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{value!r} is neither a number nor an ISO date") from None
        # GX compares pandas Timestamps; a plain date string would parse as a date,
        # which pandas refuses to compare with a Timestamp.
        return parsed.isoformat(timespec="seconds")

    @model_validator(mode="after")
    def _bounds(self) -> _BetweenKwargs:
        low, high = self.min_value, self.max_value
        if low is None and high is None:
            raise ValueError("give min_value, max_value or both")
        if low is not None and high is not None:
            if isinstance(low, str) != isinstance(high, str):
                raise ValueError("min_value and max_value must both be numbers or both dates")
            if low > high:  # type: ignore[operator]
                raise ValueError(f"min_value {low} is above max_value {high}")
        return self


class _SetKwargs(_ColumnKwargs):
    value_set: list[Scalar] = Field(min_length=1)


class _RegexKwargs(_ColumnKwargs):
    regex: str = Field(min_length=1)


class _LengthKwargs(_ColumnKwargs):
    min_value: int | None = Field(default=None, ge=0)
    max_value: int | None = Field(default=None, ge=0)


class _ColumnOnlyKwargs(_Strict):
    column: str = Field(min_length=1)


class _ColumnListKwargs(_Strict):
    column_list: list[str] = Field(min_length=1)
    mostly: float | None = Field(default=None, ge=0, le=1)


class _ColumnSetKwargs(_Strict):
    column_set: list[str] = Field(min_length=1)  # GX 1.x's name (not column_list)
    exact_match: bool | None = None


#: Expectation types a suite may use, with the model of their keyword arguments.
#: Each name is a Great Expectations 1.x expectation type (checked by the unit tests).
SUPPORTED_EXPECTATIONS: dict[str, type[_Strict]] = {
    "expect_column_to_exist": _ColumnOnlyKwargs,
    "expect_column_values_to_not_be_null": _ColumnKwargs,
    "expect_column_values_to_be_null": _ColumnKwargs,
    "expect_column_values_to_be_unique": _ColumnKwargs,
    "expect_column_values_to_be_between": _BetweenKwargs,
    "expect_column_values_to_be_in_set": _SetKwargs,
    "expect_column_values_to_not_be_in_set": _SetKwargs,
    "expect_column_values_to_match_regex": _RegexKwargs,
    "expect_column_values_to_not_match_regex": _RegexKwargs,
    "expect_column_value_lengths_to_be_between": _LengthKwargs,
    "expect_compound_columns_to_be_unique": _ColumnListKwargs,
    "expect_table_columns_to_match_set": _ColumnSetKwargs,
}

_SPEC_FIELDS = {"type", "kwargs", "description"}


class ExpectationSpec(_Strict):
    """One expectation of a suite: a GX expectation type and its keyword arguments.

    In YAML the arguments sit beside ``type`` (``{type: ..., column: amount, min_value: 0}``);
    here they are gathered, checked and normalized into ``kwargs``.
    """

    type: str
    kwargs: dict[str, Any]
    description: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _gather_kwargs(cls, data: Any) -> Any:
        if isinstance(data, dict) and "kwargs" not in data:
            data = dict(data)
            kwargs = {key: data.pop(key) for key in list(data) if key not in _SPEC_FIELDS}
            data["kwargs"] = kwargs
        return data

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        if value not in SUPPORTED_EXPECTATIONS:
            known = ", ".join(sorted(SUPPORTED_EXPECTATIONS))
            raise ValueError(f"unknown expectation type {value!r}; supported: {known}")
        return value

    @field_validator("kwargs")
    @classmethod
    def _check_kwargs(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        expectation_type = info.data.get("type")
        if expectation_type is None:  # the type was already rejected
            return value
        model = SUPPORTED_EXPECTATIONS[expectation_type]
        try:
            checked = model.model_validate(value)
        except ValidationError as error:
            details = "; ".join(
                f"{'.'.join(str(part) for part in item['loc']) or 'kwargs'}: {item['msg']}"
                for item in error.errors()
            )
            raise ValueError(f"bad arguments for {expectation_type}: {details}") from None
        return checked.model_dump(exclude_none=True)

    @property
    def column(self) -> str | None:
        """The column this expectation is about, or None for table-level expectations."""
        return self.kwargs.get("column")

    @property
    def columns(self) -> list[str]:
        """Every column this expectation reads."""
        if "column" in self.kwargs:
            return [self.kwargs["column"]]
        if self.type == "expect_table_columns_to_match_set":
            return []  # reads the frame's column names, not values
        return list(self.kwargs.get("column_list", []))

    @property
    def label(self) -> str:
        """``type(column)`` as used in messages."""
        target = self.column or ",".join(
            self.kwargs.get("column_list") or self.kwargs.get("column_set") or []
        )
        return f"{self.type}({target})"


class QuarantinePolicy(_Strict):
    """When bad rows go to quarantine and when they fail the whole batch instead.

    A batch fails whole (nothing commits, the watermark stays) when it has at least
    ``min_bad_rows`` bad rows **and** they are more than ``max_bad_share`` of its rows;
    otherwise its bad rows are quarantined and the rest loads.
    """

    max_bad_share: float = Field(default=0.05, ge=0, le=1)
    min_bad_rows: int = Field(default=5, ge=1)

    def fails(self, bad_rows: int, rows: int) -> bool:
        return bad_rows >= self.min_bad_rows and bad_rows > self.max_bad_share * rows


class ParentRule(_Strict):
    """A cross-entity rule checked per batch: each row's parent exists.

    ``key`` names this entity's columns that, joined with ``|``, form the parent's
    ``_source_key`` (e.g. ``[site_id, account_number]`` -> ``billing_account``); where a
    biller keys the parent by fewer of these columns (Amdocs: the BAN alone), only those
    form it. The parent may be in the warehouse already or in the same batch.
    """

    entity: str = Field(pattern=r"^[a-z_][a-z0-9_]*$")
    key: list[str] = Field(min_length=1)
    description: str | None = None

    @property
    def label(self) -> str:
        return f"{PARENT_EXPECTATION}({self.entity}:{','.join(self.key)})"


#: The expectation name quarantine records for a row whose parent is missing.
PARENT_EXPECTATION = "expect_parent_to_exist"


class Suite(_Strict):
    """The expectations one normalized entity's batches must meet."""

    entity: str = Field(pattern=r"^[a-z_][a-z0-9_]*$")
    expectations: list[ExpectationSpec] = Field(min_length=1)
    description: str | None = None
    quarantine: QuarantinePolicy = QuarantinePolicy()
    parents: list[ParentRule] = Field(default_factory=list)

    @property
    def columns(self) -> list[str]:
        """Columns the suite reads, in first-use order, without repeats."""
        seen: dict[str, None] = {}
        for spec in self.expectations:
            for column in spec.columns:
                seen.setdefault(column, None)
        return list(seen)


def available_entities(directory: Path = SUITES_DIR) -> list[str]:
    """Entities that have a suite file in ``directory``."""
    return sorted(path.stem for path in directory.glob("*.yaml"))


def load_suite(entity: str, *, directory: Path = SUITES_DIR) -> Suite:
    """Read and check ``<directory>/<entity>.yaml``.

    Raises :class:`SuiteError` naming the file and entity when the file is missing,
    unreadable, names another entity, or holds an unknown expectation type or bad arguments.
    """
    if directory == SUITES_DIR:
        return _load_packaged(entity)
    return _load(entity, directory)


@cache
def _load_packaged(entity: str) -> Suite:
    return _load(entity, SUITES_DIR)


def _load(entity: str, directory: Path) -> Suite:
    path = directory / f"{entity}.yaml"
    if not path.is_file():
        known = ", ".join(available_entities(directory)) or "none"
        raise SuiteError(
            f"no validation suite for entity {entity!r}: {path} does not exist "
            f"(suites exist for: {known})"
        )
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise SuiteError(f"cannot read suite {path} for entity {entity!r}: {error}") from error
    try:
        suite = Suite.model_validate(raw)
    except ValidationError as error:
        raise SuiteError(f"invalid suite {path} for entity {entity!r}:\n{error}") from error
    if suite.entity != entity:
        raise SuiteError(
            f"invalid suite {path}: it declares entity {suite.entity!r}, expected {entity!r}"
        )
    return suite


def suites_for(entities: Iterable[str], directory: Path | None = None) -> dict[str, Suite]:
    """The suites of ``entities`` that exist in ``directory`` (the packaged ones by
    default), for the data dictionary: an entity without a suite is left out."""
    folder = directory or SUITES_DIR
    return {entity: load_suite(entity, directory=folder) for entity in entities
            if (folder / f"{entity}.yaml").is_file()}  # fmt: skip
