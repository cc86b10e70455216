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
    named_params: bool = False  # ``:name`` (run through SQLAlchemy's text()) or ``%(name)s``
    fetch_first: bool = False  # ``FETCH FIRST n ROWS ONLY`` instead of ``LIMIT n``
    text_type: str = "text"  # what CAST(... AS <text_type>) names a character type
    # How an integer quotient is written: "/" (PostgreSQL: integer / integer truncates),
    # "trunc" (Oracle, Db2: NUMBER and DECIMAL division keeps the fraction), "div" (MySQL).
    integer_division: str = "/"

    def div(self, dividend: str, divisor: int) -> str:
        """The integer quotient ``dividend / divisor``, truncated toward zero.

        >>> QueryStyle().div('"D"', 100), QueryStyle(integer_division="trunc").div('"D"', 100)
        ('"D" / 100', 'TRUNC("D" / 100, 0)')
        """
        if self.integer_division == "trunc":
            # TRUNC(n, 0): the second argument is optional on Oracle and Db2 LUW, not on
            # IBM i before 7.2 SF99702 level 11.
            return f"TRUNC({dividend} / {int(divisor)}, 0)"
        if self.integer_division == "div":
            return f"{dividend} DIV {int(divisor)}"
        return f"{dividend} / {int(divisor)}"

    def param(self, name: str) -> str:
        return f":{name}" if self.named_params else f"%({name})s"

    def limit(self, rows: int, params: dict[str, Any], name: str = "limit") -> str:
        """The row limit clause. ``LIMIT`` binds ``rows`` as ``name`` in ``params``;
        ``FETCH FIRST`` writes it as an integer literal (a constant of the query's shape,
        not data: Db2 LUW before 11.1 takes only an integer there).

        >>> params = {}
        >>> QueryStyle().limit(500, params), params
        (' LIMIT %(limit)s', {'limit': 500})
        >>> QueryStyle(named_params=True, fetch_first=True).limit(500, params)
        ' FETCH FIRST 500 ROWS ONLY'
        """
        if self.fetch_first:
            return f" FETCH FIRST {int(rows)} ROWS ONLY"
        params[name] = rows
        return f" LIMIT {self.param(name)}"

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
