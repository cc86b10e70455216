"""Scenario reports: a table for the terminal and README, and a JSON file with every figure."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

Row = dict[str, Any]


@dataclass(frozen=True)
class Column:
    """A column of a printed table: which key of a row, its heading, how to format it."""

    key: str
    heading: str
    fmt: str = "{}"
    align: str = ">"

    def render(self, row: Row) -> str:
        value = row.get(self.key)
        if value is None:
            return "-"
        if isinstance(value, float) and math.isinf(value):
            return "never"
        try:
            return self.fmt.format(value)
        except (ValueError, TypeError):
            return str(value)


@dataclass
class Report:
    """One scenario's result: rows of figures, notes, and the machine it ran on."""

    scenario: str
    title: str
    columns: list[Column]
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def table(self) -> str:
        return format_table(self.rows, self.columns)

    def text(self) -> str:
        parts = [f"## {self.title}", "", self.table()]
        if self.notes:
            parts += ["", *(f"- {note}" for note in self.notes)]
        return "\n".join(parts)

    def to_json(self, machine: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "title": self.title,
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": machine,
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
            "options": options,
            "rows": self.rows,
            "notes": self.notes,
            "details": self.details,
        }


def format_table(rows: Sequence[Row], columns: Sequence[Column]) -> str:
    """A Markdown table (it reads well in a terminal too).

    >>> print(format_table([{"a": "x", "b": 1.5}], [Column("a", "name", align="<"),
    ...                                             Column("b", "s", "{:.2f}")]))
    | name |    s |
    |:-----|-----:|
    | x    | 1.50 |
    """
    cells = [[column.render(row) for column in columns] for row in rows]
    widths = [
        max([len(column.heading), 4, *(len(line[i]) for line in cells)])
        for i, column in enumerate(columns)
    ]

    def line(values: Sequence[str]) -> str:
        return (
            "| "
            + " | ".join(
                f"{value:{column.align}{width}}"
                for value, column, width in zip(values, columns, widths, strict=True)
            )
            + " |"
        )

    rule = (
        "|"
        + "|".join(
            (":" + "-" * (width + 1)) if column.align == "<" else ("-" * (width + 1) + ":")
            for column, width in zip(columns, widths, strict=True)
        )
        + "|"
    )
    return "\n".join([line([c.heading for c in columns]), rule, *(line(r) for r in cells)])


def _default(value: object) -> object:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return str(value)


def _finite(value: Any) -> Any:
    """JSON has no infinity: ``inf`` (a marker never seen) is written as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def write_json(path: Path, payload: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_finite(payload), indent=2, default=_default) + "\n")
    return path


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..100); ``None`` for no values.

    >>> percentile([1.0, 2.0, 3.0, 4.0], 50), percentile([1.0, 2.0, 3.0, 4.0], 99)
    (2.0, 4.0)
    """
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def mb(value: int | None) -> float | None:
    return None if value is None else round(value / 2**20, 1)
