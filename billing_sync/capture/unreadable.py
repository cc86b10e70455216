"""Rows whose change cursor the tail cannot read (issue 12, item 6).

The tail only reads rows whose cursor lies between the watermark and the horizon. A row
whose stamp is NULL (where the catalog assumes NOT NULL, with no creation fallback or a
NULL one too), ``'infinity'``, or, for ICOMS, not a real date and time (``CHG_DATE``
1260230 is February 30th, ``CHG_TIME`` 246000 has hour 24) sits outside every window,
forever or until the clock passes it, and nothing else would ever say so.

This probe finds them: a bounded query per table counting the rows whose cursor is
NULL, invalid, or beyond a ceiling (``source_now`` plus a day: ``'infinity'`` and far
future stamps), with up to :data:`SAMPLE_ROWS` of their keys and raw stamps. For a
timestamp cursor the predicate is a NULL test and two range conditions on the cursor
expression, which its index serves; a composite cursor's validity is arithmetic on the
raw columns and costs a scan, so the probe runs with ``verify`` (the parity schedule),
not with every micro-batch.

What happens to the rows found is the catalog's ``unreadable_cursor`` rule:
``quarantine`` (the default) writes one quarantine entry per row, naming the table,
key, cursor column and raw stamp, counted and reported; ``report`` only counts and
reports them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from billing_sync.capture.cursor import cursor_sql_columns, encode_cyymmdd_hhmmss
from billing_sync.config import TableMapping
from billing_sync.source.schema import is_composite
from billing_sync.sql import POSTGRES_STYLE, BoundQuery, QueryStyle, qualified, quote_ident

SAMPLE_ROWS = 1_000  # rows (keys and raw stamps) the probe fetches per table
CEILING = timedelta(days=1)  # a stamp further ahead of the source clock is unreadable
FLOOR = datetime(1, 1, 1)  # '-infinity' and BC stamps lie below it
EXPECTATION = "expect_cursor_readable"
REASON = (
    "the change stamp is NULL, not a real date and time, or beyond the source clock"
    " ('infinity'): the tail can never read this row"
)


@dataclass(frozen=True)
class UnreadableCursors:
    """What the probe found in one table: how many rows, and a sample of them."""

    system: str
    table: str
    count: int
    keys: list[tuple[Any, ...]] = field(default_factory=list)
    stamps: list[str] = field(default_factory=list)  # the raw stamp(s) as text
    quarantined: int = 0

    @property
    def name(self) -> str:
        return f"{self.system}.{self.table}"

    def summary(self, sample: int = 5) -> str:
        shown = ", ".join(
            f"{'|'.join(str(k) for k in key)} ({stamp})"
            for key, stamp in zip(self.keys[:sample], self.stamps, strict=False)
        )
        return (
            f"{self.name}: {self.count} rows with an unreadable change stamp"
            f"{' (' + str(self.quarantined) + ' quarantined)' if self.quarantined else ''}"
            f"{': ' + shown if shown else ''}"
        )


def unreadable_predicate(
    mapping: TableMapping, style: QueryStyle = POSTGRES_STYLE
) -> tuple[str, dict[str, Any]]:
    """SQL: the rows of ``mapping`` whose cursor the tail cannot read, bound later with
    ``ceiling`` (``%(ceiling...)s``) computed from the source's clock."""
    columns = cursor_sql_columns(mapping)
    if not is_composite(mapping):
        (stamp,) = columns
        return (
            f"({stamp} IS NULL OR {stamp} > {style.param('ceiling')}"
            f" OR {stamp} < {style.param('floor')})",
            {"floor": FLOOR},
        )
    d, t = columns
    # mod(), not %: the text goes through psycopg, where % starts a placeholder.
    month, day = f"mod({style.div(d, 100)}, 100)", f"mod({d}, 100)"
    year = f"({style.div(d, 10000)} + 1900)"
    leap = f"(mod({year}, 4) = 0 AND (mod({year}, 100) <> 0 OR mod({year}, 400) = 0))"
    month_days = (
        f"CASE WHEN {month} IN (4, 6, 9, 11) THEN 30 WHEN {month} = 2 THEN"
        f" CASE WHEN {leap} THEN 29 ELSE 28 END ELSE 31 END"
    )
    invalid = [
        f"{d} IS NULL",
        f"{t} IS NULL",
        f"{d} <= 0",
        f"{month} NOT BETWEEN 1 AND 12",
        f"{day} < 1",
        f"{day} > {month_days}",
        f"{t} < 0",
        f"{style.div(t, 10000)} > 23",
        f"mod({style.div(t, 100)}, 100) > 59",
        f"mod({t}, 100) > 59",
        style.compare([d, t], ">", ["ceiling_d", "ceiling_t"]),
    ]
    return "(" + " OR ".join(invalid) + ")", {}


def _ceiling_params(mapping: TableMapping, source_now: datetime) -> dict[str, Any]:
    ceiling = source_now.replace(tzinfo=None) + CEILING
    if is_composite(mapping):
        d, t = encode_cyymmdd_hhmmss(ceiling)
        return {"ceiling_d": d, "ceiling_t": t}
    return {"ceiling": ceiling}


def build_unreadable_count(
    mapping: TableMapping,
    *,
    schema: str,
    source_now: datetime,
    style: QueryStyle = POSTGRES_STYLE,
) -> BoundQuery:
    """How many rows of the table have an unreadable cursor."""
    predicate, params = unreadable_predicate(mapping, style)
    return BoundQuery(
        text=f"SELECT count(*) FROM {qualified(schema, mapping.table)} WHERE {predicate}",
        params={**params, **_ceiling_params(mapping, source_now)},
    )


def build_unreadable_rows(
    mapping: TableMapping,
    *,
    schema: str,
    source_now: datetime,
    style: QueryStyle = POSTGRES_STYLE,
) -> BoundQuery:
    """Up to :data:`SAMPLE_ROWS` of them: key columns, then the raw stamp as text."""
    predicate, params = unreadable_predicate(mapping, style)
    key = [quote_ident(name) for name in mapping.key]
    stamp = " || ' ' || ".join(
        f"COALESCE(CAST({column} AS {style.text_type}), 'NULL')"
        for column in _raw_cursor_columns(mapping)
    )
    return BoundQuery(
        text=(
            f"SELECT {', '.join(key)}, {stamp} AS {quote_ident('_stamp')}"
            f" FROM {qualified(schema, mapping.table)} WHERE {predicate}"
            f" ORDER BY {', '.join(key)}{style.limit(SAMPLE_ROWS, params)}"
        ),
        params={**params, **_ceiling_params(mapping, source_now)},
    )


def _raw_cursor_columns(mapping: TableMapping) -> list[str]:
    names = list(mapping.cursor_columns)
    if not is_composite(mapping) and mapping.cursor_fallback:
        names.append(mapping.cursor_fallback)
    return [quote_ident(name) for name in names]
