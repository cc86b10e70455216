"""What the workload engine needs from each simulated biller (a :class:`Driver`)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any, Protocol

import psycopg

from billing_sync.simulator.amdocs.driver import AmdocsDriver
from billing_sync.simulator.amdocs.operations import SPECS as AMDOCS_SPECS
from billing_sync.simulator.icoms.driver import IcomsDriver
from billing_sync.simulator.icoms.operations import SPECS
from billing_sync.simulator.mix import OperationSpec

DEFAULT_SHARES: dict[str, float] = {"icoms": 0.6, "amdocs": 0.4}
"""Share of the workload's rows per biller when both run."""


class Driver(Protocol):
    """One biller's operations: SQL, parameters, and what it learns from results."""

    system: str
    specs: tuple[OperationSpec, ...]
    bad_kinds: tuple[str, ...]

    def statements(self) -> dict[str, str]: ...

    def bad_statements(self) -> dict[str, str]: ...

    def load_state(self, conn: psycopg.Connection[Any]) -> None: ...

    def plan(self, name: str) -> dict[str, Any] | None: ...

    def after(self, name: str, params: dict[str, Any], row: Sequence[Any]) -> None: ...

    def bad_row(self, kind: str) -> tuple[dict[str, Any], str] | None: ...


def make_driver(system: str, *, schema: str, rng: random.Random, statement_batch: int) -> Driver:
    """The driver of ``system`` (``icoms`` or ``amdocs``)."""
    if system == "icoms":
        return IcomsDriver(schema=schema, rng=rng, statement_batch=statement_batch)
    if system == "amdocs":
        return AmdocsDriver(schema=schema, rng=rng, statement_batch=statement_batch)
    raise ValueError(f"unknown simulated biller {system!r}; use icoms or amdocs")


def specs_of(system: str) -> tuple[OperationSpec, ...]:
    """The operation mix of ``system``."""
    if system == "icoms":
        return SPECS
    if system == "amdocs":
        return AMDOCS_SPECS
    raise ValueError(f"unknown simulated biller {system!r}; use icoms or amdocs")
