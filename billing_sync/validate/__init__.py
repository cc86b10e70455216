"""Validation of normalized batches against per-entity suites (DESIGN §6).

Importing this package does not import ``great_expectations``: :class:`Validator` does so
on first use.
"""

from billing_sync.transform.failures import ExpectationFailure
from billing_sync.validate.report import BatchValidationError, ValidationReport
from billing_sync.validate.runner import Validator, to_pandas_for_validation
from billing_sync.validate.suites import (
    LINEAGE_COLUMNS,
    SUPPORTED_EXPECTATIONS,
    ExpectationSpec,
    Suite,
    SuiteError,
    available_entities,
    load_suite,
)

__all__ = [
    "LINEAGE_COLUMNS",
    "SUPPORTED_EXPECTATIONS",
    "BatchValidationError",
    "ExpectationFailure",
    "ExpectationSpec",
    "Suite",
    "SuiteError",
    "ValidationReport",
    "Validator",
    "available_entities",
    "load_suite",
    "to_pandas_for_validation",
]
