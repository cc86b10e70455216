"""The workload's operation mix: what each operation writes and how rows split between them.

Each :class:`OperationSpec` gives an operation's share of its biller's changed rows; the
workload turns shares into how often to run each operation (:func:`operation_weights`),
dividing by the rows an operation changes on average (learned while running, since a bill
run's size depends on how many accounts a cycle holds). :func:`describe_mix` prints it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class OperationSpec:
    """One kind of source transaction.

    Attributes
    ----------
    name
        Identifier, unique within its biller.
    row_share
        Share of its biller's changed rows this operation should produce (relative).
    tables
        Tables it writes, in the order of the counts its statement returns.
    expected_rows
        Rows it changes on average (a first guess for bill runs: the workload learns).
    description
        What a biller does here, for :func:`describe_mix`.
    hard_delete
        True when it deletes rows (the workload skips it with ``hard_deletes=False``).
    table_rows
        Relative rows per table in :attr:`tables` order (default: even), for the per-table
        breakdown.
    """

    name: str
    row_share: float
    tables: tuple[str, ...]
    expected_rows: float
    description: str
    hard_delete: bool = False
    table_rows: tuple[float, ...] = ()


def operation_weights(
    specs: Sequence[OperationSpec], rows: Mapping[str, float], *, share: float = 1.0
) -> dict[str, float]:
    """How often to run each operation so that rows split as the ``row_share`` say.

    Parameters
    ----------
    specs
        The operations of one biller.
    rows
        Rows an operation changes on average, by name (default: its ``expected_rows``).
    share
        This biller's share of all changed rows (several billers run at once).

    Returns
    -------
    dict of str to float
        Relative frequency per operation; they sum to ``share``.
    """
    raw = {
        spec.name: spec.row_share / max(rows.get(spec.name, spec.expected_rows), 1.0)
        for spec in specs
    }
    total = sum(raw.values()) or 1.0
    return {name: share * weight / total for name, weight in raw.items()}


def describe(system: str, specs: Sequence[OperationSpec], rows: Mapping[str, float]) -> list[str]:
    """Lines of :func:`describe_mix` for one biller."""
    total_share = sum(spec.row_share for spec in specs)
    weights = operation_weights(specs, rows)
    lines = [f"{system}: {'operation':<24}{'rows':>7}{'txns':>8}{'rows/txn':>10}  tables: what"]
    for spec in specs:
        per_txn = rows.get(spec.name, spec.expected_rows)
        lines.append(
            f"{'':<{len(system) + 2}}{spec.name:<24}{spec.row_share / total_share:>7.1%}"
            f"{weights[spec.name]:>8.1%}{per_txn:>10g}  {', '.join(dict.fromkeys(spec.tables))}: "
            f"{spec.description}"
        )
    return lines


def table_shares(specs: Sequence[OperationSpec]) -> dict[str, float]:
    """Expected share of a biller's changed rows per table: each operation's rows split
    between its tables as its ``table_rows`` say (evenly when not given)."""
    total_share = sum(spec.row_share for spec in specs)
    shares: dict[str, float] = {}
    for spec in specs:
        parts = spec.table_rows or (1.0,) * len(spec.tables)
        for table, part in zip(spec.tables, parts, strict=True):
            share = spec.row_share / total_share * part / sum(parts)
            shares[table] = shares.get(table, 0.0) + share
    return dict(sorted(shares.items(), key=lambda item: -item[1]))
