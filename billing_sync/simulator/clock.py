"""How the simulated billers stamp rows: AS/400 date and time numbers, Oracle DATEs.

Every write stamps its rows from the writing transaction's start (``now()``, not the
statement's clock), truncated to the whole second as AS/400 programs and Oracle's
``SYSDATE`` do. So a stamp is never earlier than the second its transaction started in:
the capture horizon (DESIGN §4) relies on it, flooring its horizon to the second
(:func:`billing_sync.capture.cursor.cursor_horizon`), since a transaction still open at
the horizon may yet write rows stamped with that second. ICOMS keeps the
stamp in the site's local time as two integers, ``CYYMMDD`` (C = centuries since 1900:
``1261125`` is 2026-11-25) and ``HHMMSS``; Amdocs keeps an Oracle-style ``DATE`` (a
timestamp of second precision) in UTC.
"""

from __future__ import annotations

from datetime import date, datetime

ICOMS_TIMEZONE = "America/Chicago"
"""The ICOMS system's one local time zone (all sites stamp in it)."""
AMDOCS_TIMEZONE = "UTC"


def stamp_sql(zone: str) -> str:
    """SQL: the transaction start in ``zone``, truncated to the second (naive timestamp)."""
    return f"date_trunc('second', now() AT TIME ZONE '{zone}')"


ICOMS_NOW = stamp_sql(ICOMS_TIMEZONE)
ICOMS_DATE_SQL = f"(to_char({ICOMS_NOW}, 'YYYYMMDD')::int - 19000000)"
"""SQL of the writing transaction's ``CYYMMDD`` in ICOMS local time."""
ICOMS_TIME_SQL = f"to_char({ICOMS_NOW}, 'HH24MISS')::int"
"""SQL of the writing transaction's ``HHMMSS`` in ICOMS local time."""
ICOMS_TODAY_SQL = f"(to_char(now() AT TIME ZONE '{ICOMS_TIMEZONE}', 'YYYYMMDD')::int - 19000000)"
"""SQL of today's ``CYYMMDD`` in ICOMS local time (business dates such as ``PAY_DATE``)."""
ICOMS_STAMP_SET = f'"CHG_DATE" = {ICOMS_DATE_SQL}, "CHG_TIME" = {ICOMS_TIME_SQL}'
"""``SET`` list fragment that stamps an ICOMS row changed now (add ``"CHG_USER"``)."""
ICOMS_STAMP_VALUES = f"{ICOMS_DATE_SQL}, {ICOMS_TIME_SQL}, {ICOMS_DATE_SQL}, {ICOMS_TIME_SQL}"
"""``VALUES`` fragment for ``CRT_DATE, CRT_TIME, CHG_DATE, CHG_TIME`` of a new row."""
ICOMS_CHANGED_AT_SQL = (
    """to_timestamp(("CHG_DATE" + 19000000)::text || lpad("CHG_TIME"::text, 6, '0'),"""
    """ 'YYYYMMDDHH24MISS')::timestamp"""
)
"""SQL: a row's ``CHG_DATE``/``CHG_TIME`` as a naive local timestamp (for checks)."""

AMDOCS_NOW = stamp_sql(AMDOCS_TIMEZONE)
"""SQL of the writing transaction's Oracle-style ``DATE`` (UTC, second precision)."""
AMDOCS_TODAY_SQL = f"(now() AT TIME ZONE '{AMDOCS_TIMEZONE}')::date"


def cyymmdd(day: date | None) -> int:
    """``date(2026, 11, 25) -> 1261125``; ``None -> 0`` (AS/400 "no date")."""
    if day is None:
        return 0
    return (day.year - 1900) * 10_000 + day.month * 100 + day.day


def hhmmss(moment: datetime) -> int:
    """``datetime(..., 14, 5, 9) -> 140509``."""
    return moment.hour * 10_000 + moment.minute * 100 + moment.second


def from_cyymmdd(value: int, time_value: int = 0) -> datetime:
    """Inverse of :func:`cyymmdd` and :func:`hhmmss` (for tests and checks)."""
    year, rest = divmod(value, 10_000)
    month, day = divmod(rest, 100)
    hour, rest = divmod(time_value, 10_000)
    minute, second = divmod(rest, 100)
    return datetime(1900 + year, month, day, hour, minute, second)
