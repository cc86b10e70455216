"""The tree of a parsed filter (:mod:`billing_sync.capture.filter_expr`) and its two outputs.

:func:`render` writes SQL for the source: identifiers quoted, literals as bind parameters,
every node in parentheses. :func:`to_text` writes the filter back in its own grammar (what
a running backfill keeps in the warehouse and parses again when it resumes);
``parse_filter(to_text(tree)) == tree``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from billing_sync.sql import POSTGRES_STYLE, QueryStyle, quote_ident

LiteralValue = str | int | Decimal | bool | date | datetime


@dataclass(frozen=True)
class Column:
    name: str  # the catalog's spelling


@dataclass(frozen=True)
class Literal:
    kind: str  # string number boolean date timestamp
    value: LiteralValue


Operand = Column | Literal


@dataclass(frozen=True)
class Compare:
    op: str  # = <> < <= > >=
    left: Operand
    right: Operand


@dataclass(frozen=True)
class InList:
    operand: Operand
    items: tuple[Literal, ...]
    negated: bool = False


@dataclass(frozen=True)
class Between:
    operand: Operand
    low: Operand
    high: Operand
    negated: bool = False


@dataclass(frozen=True)
class IsNull:
    operand: Operand
    negated: bool = False


@dataclass(frozen=True)
class Like:
    operand: Operand
    pattern: Literal
    negated: bool = False


@dataclass(frozen=True)
class Not:
    inner: Expr


@dataclass(frozen=True)
class And:
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Expr, ...]


Expr = Compare | InList | Between | IsNull | Like | Not | And | Or


# Column families (see billing_sync.source.reflect.type_family) and the literal kinds
# each accepts; a family not listed (or an unreflected column) accepts any literal.
_ACCEPTS: dict[str, frozenset[str]] = {
    "text": frozenset({"string"}),
    "int": frozenset({"number"}),
    "numeric": frozenset({"number"}),
    "float": frozenset({"number"}),
    "date": frozenset({"date", "timestamp"}),
    "timestamp": frozenset({"date", "timestamp"}),
    "boolean": frozenset({"boolean"}),
    "binary": frozenset(),
}
_SPELLING = {
    "string": "a 'quoted string'",
    "number": "a number",
    "date": "DATE 'YYYY-MM-DD'",
    "timestamp": "TIMESTAMP 'YYYY-MM-DD HH:MM:SS'",
    "boolean": "TRUE or FALSE",
}


def mismatch(column: str, family: str | None, literal: Literal) -> str | None:
    """Why ``literal`` cannot be compared with ``column`` of type ``family``, if it cannot."""
    accepts = _ACCEPTS.get(family) if family else None
    if accepts is None or literal.kind in accepts:
        return None
    wanted = " or ".join(_SPELLING[kind] for kind in sorted(accepts))
    return (
        f"column {column} is {family}: compare it with "
        f"{wanted or 'nothing (only IS [NOT] NULL)'}, not {_SPELLING[literal.kind]}"
    )


def render(
    expr: Expr, *, prefix: str = "filter_", style: QueryStyle = POSTGRES_STYLE
) -> tuple[str, dict[str, Any]]:
    """The filter as SQL for the source and its bind parameters (``%(filter_0)s``, or
    ``:filter_0`` in the style of an engine that takes named binds).

    >>> render(Compare("=", Column("SITE_ID"), Literal("string", "001")))
    ('("SITE_ID" = %(filter_0)s)', {'filter_0': '001'})
    """
    params: dict[str, Any] = {}

    def operand(node: Operand) -> str:
        if isinstance(node, Column):
            return quote_ident(node.name)
        name = f"{prefix}{len(params)}"
        params[name] = node.value
        return style.param(name)

    return _walk(expr, operand), params


def to_text(expr: Expr) -> str:
    """The filter in its own grammar, fully parenthesized (parses back to ``expr``).

    >>> to_text(Compare("=", Column("SITE_ID"), Literal("string", "0'1")))
    '("SITE_ID" = \\'0\\'\\'1\\')'
    """

    def operand(node: Operand) -> str:
        return quote_ident(node.name) if isinstance(node, Column) else _literal_text(node)

    return _walk(expr, operand)


def _walk(node: Expr, operand: Callable[[Operand], str]) -> str:
    """Every node in parentheses, operands spelled by ``operand``, in reading order."""
    if isinstance(node, Compare):
        return f"({operand(node.left)} {node.op} {operand(node.right)})"
    if isinstance(node, InList):
        items = ", ".join(operand(item) for item in node.items)
        return f"({operand(node.operand)} {_not(node.negated)}IN ({items}))"
    if isinstance(node, Between):
        value, low, high = operand(node.operand), operand(node.low), operand(node.high)
        return f"({value} {_not(node.negated)}BETWEEN {low} AND {high})"
    if isinstance(node, IsNull):
        return f"({operand(node.operand)} IS {_not(node.negated)}NULL)"
    if isinstance(node, Like):
        return f"({operand(node.operand)} {_not(node.negated)}LIKE {operand(node.pattern)})"
    if isinstance(node, Not):
        return f"(NOT {_walk(node.inner, operand)})"
    joiner = " AND " if isinstance(node, And) else " OR "
    return "(" + joiner.join(_walk(item, operand) for item in node.items) + ")"


def _not(negated: bool) -> str:
    return "NOT " if negated else ""


def _literal_text(literal: Literal) -> str:
    value = literal.value
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, datetime):
        return f"TIMESTAMP '{value.isoformat(sep=' ')}'"
    if isinstance(value, date):
        return f"DATE '{value.isoformat()}'"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return str(value)
