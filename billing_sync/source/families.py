"""Source type families: what the catalog check and the capture read a reflected SQL type
as, whatever the engine (each engine's reflection is normalized to PostgreSQL's spelling,
:mod:`billing_sync.source.drafts`), and whether a zone's wall clock repeats an hour.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

# Source type families, from PostgreSQL's format_type() names (lower case), first match
# wins ("interval" before "int", "timestamp with time zone" before "timestamp"). "enum" is
# what the reflection query reports for a PostgreSQL enum type (whatever its name), and
# engines' reflections normalize to these names (billing_sync.source.drafts).
_FAMILIES: list[tuple[str, tuple[str, ...]]] = [
    ("interval", ("interval",)),
    ("int", ("smallint", "integer", "bigint", "int")),
    ("float", ("real", "double precision", "float")),
    ("binary", ("bytea", "blob", "raw")),
    ("date", ("date",)),
    ("timestamptz", ("timestamp with time zone", "timestamptz")),
    ("timestamp", ("timestamp",)),
    ("boolean", ("boolean",)),
    ("uuid", ("uuid",)),
    ("json", ("json", "jsonb")),
    ("enum", ("enum",)),
    ("text", ("character", "char", "varchar", "text", "clob", "nvarchar", "nchar")),
]
TEXT_FORM_FAMILIES = ("uuid", "json", "enum", "interval")
"""Families read as their text (``CAST(... AS text)`` in the select list, so the COPY
and the cursor paths agree: a driver would otherwise hand back a UUID object, a parsed
JSON document or a timedelta that loses months). Intervals print as ISO 8601, since the
capture session sets ``IntervalStyle=iso_8601``."""


def type_family(sql_type: str) -> str:
    """The family of a reflected SQL type.

    >>> type_family("numeric(7,0)"), type_family("numeric(12,2)"), type_family("character(3)")
    ('int', 'numeric', 'text')
    >>> type_family("timestamp(6) with time zone"), type_family("interval"), type_family("enum")
    ('timestamptz', 'interval', 'enum')
    """
    name = sql_type.lower()
    if name.startswith("timestamp") and name.endswith("with time zone"):
        return "timestamptz"  # "timestamp(6) with time zone": the precision sits inside
    if name.startswith(("numeric", "decimal", "number")):
        return "int" if name.endswith(",0)") else "numeric"
    for family, prefixes in _FAMILIES:
        if name.startswith(prefixes):
            return family
    return "other"


def observes_dst(zone: str) -> bool:
    """Whether ``zone``'s offset changes in the year (daylight saving).

    >>> observes_dst("UTC"), observes_dst("America/Chicago"), observes_dst("Asia/Kolkata")
    (False, True, False)
    """
    tz = ZoneInfo(zone)
    offsets = {datetime(2026, month, 1, tzinfo=tz).utcoffset() for month in (1, 4, 7, 10)}
    return len(offsets) > 1
