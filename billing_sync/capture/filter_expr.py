"""Operator filters (``backfill --where``) in a restricted grammar, rendered by the product.

A filter is untrusted text: it comes from the CLI, from a Dagster job's run config (the
webserver has no login) and from the warehouse, where a running backfill keeps it. It
used to be pasted into the source query, so a filter could call any function the
capture role may call (``set_config``, ``lo_from_bytea``, ``pg_sleep``,
``pg_terminate_backend``) or close the parentheses around it (``1=1) OR (1=1``). Now it
is parsed into the small tree below, and only that tree reaches SQL: every column is
one of the table's mapped columns, quoted as an identifier; every literal is a bind
parameter; every node is parenthesized by :func:`render`. Nothing else is expressible:
no function call, subquery, cast, operator beyond comparison, ``;`` or comment.

Grammar (keywords in any case)::

    filter     := or
    or         := and ("OR" and)*
    and        := not ("AND" not)*
    not        := "NOT" not | "(" or ")" | predicate
    predicate  := operand cmp operand
                | operand ["NOT"] "IN" "(" literal ("," literal)* ")"
                | operand ["NOT"] "BETWEEN" operand "AND" operand
                | operand "IS" ["NOT"] "NULL"
                | operand ["NOT"] "LIKE" string
    operand    := column | literal
    cmp        := "=" | "<>" | "!=" | "<" | "<=" | ">" | ">="
    literal    := number | string | "TRUE" | "FALSE" | "DATE" string | "TIMESTAMP" string
    column     := a bare name (matched to the catalog's names ignoring case, as table names
                  are on the command line) | a "quoted" name (matched exactly)

Strings are single-quoted, ``''`` inside for a quote. Numbers are exact (``Decimal``).
``NULL`` is only written in ``IS [NOT] NULL`` (``= NULL`` is never true). ``TIMESTAMP``
literals have no zone: they are the biller's local time, like its audit columns.

Columns are those the mapping reads, minus those marked ``drop`` and those it protects
(hashed or redacted): a filter on a card number would let its counts reveal the number.
A literal must suit its column's reflected type (numbers for numeric columns, strings for
text, ``DATE``/``TIMESTAMP`` for dates), so a mistake is an error naming the column
rather than a database error mid-backfill.

Positions in errors are 1-based character offsets in the filter text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from billing_sync.capture.filter_ast import (
    And,
    Between,
    Column,
    Compare,
    Expr,
    InList,
    IsNull,
    Like,
    Literal,
    Not,
    Operand,
    Or,
    mismatch,
)
from billing_sync.config import ConfigError

MAX_FILTER_LENGTH = 4000
MAX_DEPTH = 40
MAX_IN_ITEMS = 1000

KEYWORDS = frozenset(
    [
        "AND",
        "OR",
        "NOT",
        "IN",
        "BETWEEN",
        "IS",
        "NULL",
        "LIKE",
        "TRUE",
        "FALSE",
        "DATE",
        "TIMESTAMP",
    ]
)

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<comment>--|/\*)
  | (?P<cast>::)
  | (?P<number>-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<string>'(?:[^']|'')*')
  | (?P<quoted>"(?:[^"]|"")+")
  | (?P<name>[A-Za-z_][A-Za-z0-9_$#]*)
  | (?P<op><=|>=|<>|!=|=|<|>)
  | (?P<punct>[(),])
  | (?P<semicolon>;)
    """,
    re.VERBOSE,
)


class BadFilter(ConfigError):
    """A filter outside the grammar, naming the table, what is wrong and where."""


@dataclass(frozen=True)
class Token:
    kind: str  # number string quoted name keyword op punct end bad
    text: str
    pos: int  # 0-based offset in the filter text


_REFUSED = {
    "comment": "comments are not allowed",
    "cast": "casts (::) are not allowed",
    "semicolon": "';' is not allowed (one expression)",
}


def tokenize(text: str) -> list[Token]:
    """The filter's tokens. The last is ``end``, or ``bad`` (its text says why) at the
    first character outside the grammar: the parser reports it only if no earlier token
    is wrong, so errors come in reading order."""
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            why = "unterminated quote" if text[pos] in "'\"" else f"unexpected {text[pos]!r}"
            tokens.append(Token("bad", why, pos))
            return tokens
        kind = match.lastgroup
        assert kind is not None
        if kind in _REFUSED:
            tokens.append(Token("bad", _REFUSED[kind], pos))
            return tokens
        if kind == "name" and match.group().upper() in KEYWORDS:
            kind = "keyword"
        if kind != "space":
            tokens.append(Token(kind, match.group(), pos))
        pos = match.end()
    tokens.append(Token("end", "", len(text)))
    return tokens


class _Parser:
    def __init__(self, text: str, label: str, columns: Mapping[str, str | None]) -> None:
        self.label = label
        if len(text) > MAX_FILTER_LENGTH:
            raise BadFilter(f"filter for {label}: longer than {MAX_FILTER_LENGTH} characters")
        self.tokens = tokenize(text)
        self.at = 0
        self.depth = 0
        self.columns = columns
        self.folded: dict[str, list[str]] = {}
        for name in columns:
            self.folded.setdefault(name.upper(), []).append(name)

    # -- helpers -----------------------------------------------------------------------------

    @property
    def token(self) -> Token:
        token = self.tokens[self.at]
        if token.kind == "bad":
            raise BadFilter(f"filter for {self.label}: {token.text} at position {token.pos + 1}")
        return token

    def fail(self, what: str, token: Token | None = None) -> BadFilter:
        token = token or self.token
        return BadFilter(f"filter for {self.label}: {what} at position {token.pos + 1}")

    def keyword(self, *words: str) -> bool:
        token = self.token
        return token.kind == "keyword" and token.text.upper() in words

    def take_keyword(self, word: str) -> None:
        if not self.keyword(word):
            raise self.fail(f"expected {word}, found {self.describe(self.token)}")
        self.at += 1

    def punct(self, char: str) -> bool:
        return self.token.kind == "punct" and self.token.text == char

    def take_punct(self, char: str) -> None:
        if not self.punct(char):
            raise self.fail(f"expected '{char}', found {self.describe(self.token)}")
        self.at += 1

    @staticmethod
    def describe(token: Token) -> str:
        return "the end of the filter" if token.kind == "end" else repr(token.text)

    # -- grammar -----------------------------------------------------------------------------

    def parse(self) -> Expr:
        if self.token.kind == "end":
            raise self.fail("the filter is empty")
        expr = self.or_()
        if self.token.kind != "end":
            if self.punct(")"):
                raise self.fail("unbalanced ')'")
            raise self.fail(f"expected AND, OR or the end, found {self.describe(self.token)}")
        return expr

    def or_(self) -> Expr:
        items = [self.and_()]
        while self.keyword("OR"):
            self.at += 1
            items.append(self.and_())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def and_(self) -> Expr:
        items = [self.not_()]
        while self.keyword("AND"):
            self.at += 1
            items.append(self.not_())
        return items[0] if len(items) == 1 else And(tuple(items))

    def not_(self) -> Expr:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.fail(f"nested deeper than {MAX_DEPTH} levels")
        try:
            if self.keyword("NOT"):
                self.at += 1
                return Not(self.not_())
            if self.punct("("):
                self.at += 1
                inner = self.or_()
                self.take_punct(")")
                return inner
            return self.predicate()
        finally:
            self.depth -= 1

    def predicate(self) -> Expr:
        start = self.token
        expr = self.comparison()
        operands = [value for value in vars(expr).values() if isinstance(value, Column)]
        if not operands:
            raise self.fail("a comparison must name a column", start)
        return expr

    def comparison(self) -> Expr:
        start = self.token
        left = self.operand()
        token = self.token
        if token.kind == "op":
            self.at += 1
            right = self.operand()
            self.check_pair(left, right, token)
            return Compare("<>" if token.text == "!=" else token.text, left, right)
        if self.keyword("IS"):
            self.at += 1
            negated = self.keyword("NOT")
            self.at += negated
            self.take_keyword("NULL")
            return IsNull(left, negated)
        negated = self.keyword("NOT")
        self.at += negated
        if self.keyword("IN"):
            self.at += 1
            return InList(left, self.in_list(left), negated)
        if self.keyword("BETWEEN"):
            self.at += 1
            low = self.operand()
            self.check_pair(left, low, token)
            self.take_keyword("AND")
            high = self.operand()
            self.check_pair(left, high, token)
            return Between(left, low, high, negated)
        if self.keyword("LIKE"):
            self.at += 1
            pattern_token = self.token
            pattern = self.operand()
            if not (isinstance(pattern, Literal) and pattern.kind == "string"):
                raise self.fail("LIKE takes a 'quoted pattern'", pattern_token)
            self.check_pair(left, pattern, token)
            return Like(left, pattern, negated)
        if negated:
            raise self.fail(f"expected IN, BETWEEN or LIKE after NOT, found "
                            f"{self.describe(self.token)}")  # fmt: skip
        raise self.fail(
            f"expected a comparison after {start.text!r}, found {self.describe(self.token)}"
        )

    def in_list(self, left: Operand) -> tuple[Literal, ...]:
        self.take_punct("(")
        items: list[Literal] = []
        while True:
            token = self.token
            item = self.operand()
            if not isinstance(item, Literal):
                raise self.fail("IN takes a list of literals", token)
            self.check_pair(left, item, token)
            items.append(item)
            if len(items) > MAX_IN_ITEMS:
                raise self.fail(f"more than {MAX_IN_ITEMS} items in IN (...)", token)
            if not self.punct(","):
                break
            self.at += 1
        self.take_punct(")")
        return tuple(items)

    def operand(self) -> Operand:
        token = self.token
        self.at += 1
        if token.kind == "number":
            return Literal("number", _number(token.text))
        if token.kind == "string":
            return Literal("string", self.string(token))
        if token.kind in ("name", "quoted"):
            if self.punct("("):
                raise self.fail(f"function calls are not allowed ({token.text}(...))", token)
            return Column(self.column(token))
        if token.kind == "keyword":
            word = token.text.upper()
            if word in ("TRUE", "FALSE"):
                return Literal("boolean", word == "TRUE")
            if word in ("DATE", "TIMESTAMP"):
                return self.dated(word)
            if word == "NULL":
                raise self.fail("NULL is never equal to anything: write IS NULL", token)
            if word == "NOT" or word in ("AND", "OR"):
                raise self.fail(f"expected a column or a literal, found {token.text!r}", token)
        if token.kind == "punct" and token.text == "(":
            raise self.fail("subqueries and arithmetic are not allowed; expected a column or "
                            "a literal", token)  # fmt: skip
        raise self.fail(f"expected a column or a literal, found {self.describe(token)}", token)

    def string(self, token: Token) -> str:
        value = token.text[1:-1].replace("''", "'")
        if "\x00" in value:
            raise self.fail("a string cannot hold a NUL character", token)
        return value

    def dated(self, word: str) -> Literal:
        token = self.token
        if token.kind != "string":
            raise self.fail(f"{word} takes a 'quoted' value", token)
        self.at += 1
        text = self.string(token)
        try:
            if word == "DATE":
                return Literal("date", date.fromisoformat(text))
            value = datetime.fromisoformat(text)
        except ValueError:
            raise self.fail(f"{text!r} is not a valid {word}", token) from None
        if value.tzinfo is not None:
            raise self.fail("a TIMESTAMP has no zone here (the biller's local time)", token)
        return Literal("timestamp", value)

    def column(self, token: Token) -> str:
        if token.kind == "quoted":
            name = token.text[1:-1].replace('""', '"')
            if name in self.columns:
                return name
        else:
            found = self.folded.get(token.text.upper(), [])
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                raise self.fail(f"column {token.text!r} is ambiguous ({', '.join(found)}): "
                                "quote it", token)  # fmt: skip
            name = token.text
        known = ", ".join(sorted(self.columns)) or "none"
        raise self.fail(f"unknown column {name!r} (filterable: {known})", token)

    def check_pair(self, left: Operand, right: Operand, token: Token) -> None:
        """A literal compared with a column must suit the column's type."""
        for column, literal in ((left, right), (right, left)):
            if isinstance(column, Column) and isinstance(literal, Literal):
                why = mismatch(column.name, self.columns.get(column.name), literal)
                if why:
                    raise self.fail(why, token)


def _number(text: str) -> int | Decimal:
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    return Decimal(text)


def parse_filter(text: str, *, label: str, columns: Mapping[str, str | None]) -> Expr:
    """Parse an operator's filter for the table ``label`` (e.g. ``icoms.PAYMENT``).

    ``columns``: the filterable column names, each with its type family (``None`` when
    not reflected: any literal). Raises :class:`BadFilter`.
    """
    return _Parser(text, label, columns).parse()
