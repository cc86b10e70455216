"""The SQL vocabulary every layer shares: quoted identifiers, qualified names, queries
with their bind parameters, and how a database spells what differs between dialects.

Names come only from the catalog and are quoted as identifiers; every value is a bind
parameter, so nothing read from a row ever becomes SQL text (DESIGN §5).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


def quote_ident(name: str) -> str:
    """Quote ``name`` as an SQL identifier.

    >>> quote_ident('ACCOUNT')
    '"ACCOUNT"'
    >>> quote_ident('we"ird')
    '"we""ird"'
    """
    return '"' + name.replace('"', '""') + '"'


def qualified(schema: str, table: str) -> str:
    return f"{quote_ident(schema)}.{quote_ident(table)}"


@dataclass(frozen=True)
class BoundQuery:
    text: str
    params: dict[str, Any]


@dataclass(frozen=True)
class QueryStyle:
    """How a database spells the parts of a change query that differ.

    ``row_values``: whether ``(a, b) > (x, y)`` compares row values (PostgreSQL does;
    Oracle and DB2 do not, so the comparison is expanded into nested ``OR``s).
    """

    row_values: bool = True
    named_params: bool = False  # ``:name`` (Oracle, DB2) instead of ``%(name)s``
    fetch_first: bool = False  # ``FETCH FIRST n ROWS ONLY`` instead of ``LIMIT n``

    def param(self, name: str) -> str:
        return f":{name}" if self.named_params else f"%({name})s"

    def limit(self, name: str) -> str:
        placeholder = self.param(name)
        return (
            f" FETCH FIRST {placeholder} ROWS ONLY" if self.fetch_first else f" LIMIT {placeholder}"
        )

    def greater_than(self, columns: list[str], params: list[str]) -> str:
        """``columns > params`` as a row value comparison, or its expansion."""
        return self.compare(columns, ">", params)

    def compare(self, columns: list[str], operator: str, params: list[str]) -> str:
        """``columns <operator> params`` (``>``, ``>=`` or ``<``) in tuple order.

        One column is a plain comparison. Without row values the comparison is expanded
        into nested ``OR``s, led by a range predicate on the leading (indexed) column.
        """
        placeholders = [self.param(name) for name in params]
        if len(columns) == 1:
            return f"{columns[0]} {operator} {placeholders[0]}"
        if self.row_values:
            return f"({', '.join(columns)}) {operator} ({', '.join(placeholders)})"
        strict = operator.rstrip("=")
        expanded = f"{columns[-1]} {operator} {placeholders[-1]}"
        for column, placeholder in zip(columns[-2::-1], placeholders[-2::-1], strict=True):
            tie = f"{column} = {placeholder} AND ({expanded})"
            expanded = f"{column} {strict} {placeholder} OR ({tie})"
        return f"{columns[0]} {strict}= {placeholders[0]} AND ({expanded})"


POSTGRES_STYLE = QueryStyle()
