"""Converters: what billers really hold, to the normalized types, as Polars expressions.

Each converter reads its source column(s) by name and gives the target value and, when
it can fail, a flag of the rows whose value is bad (:class:`Conversion`). A bad value
becomes NULL; the caller turns the flags into quarantine lines naming the table, key,
column, converter and reason. Only EBCDIC and Latin-1 decoding leave Polars, through a
map over the distinct values of the batch, not over its rows.

========================  ===========================================================
``trim``                  padded CHAR: trailing blanks removed
``cyymmdd``               int CYYMMDD -> date (C: centuries after 1900); 0 -> NULL (no
                          date), 9999999 -> NULL (open-ended); anything else that is
                          not a real date is bad
``hhmmss``                int HHMMSS -> text ``HH:MM:SS``; hour > 23, minute or second
                          > 59, negative: bad
``cyymmdd_hhmmss``        ``[date, time]`` -> timestamp; a 0 or 9999999 date -> NULL
``{implied_decimal: N}``  int -> decimal with N places (12345 -> 123.45); too large
                          for the target type: bad
``{float_money: N}``      float -> exact decimal: the float's shortest decimal form,
                          rounded half-even to N places (0.1 + 0.2 -> 0.30); NaN,
                          infinity or too large: bad
``ebcdic``                bytes in code page 037 -> text
``latin1``                bytes in ISO-8859-1 -> text
``{lookup: {code: v}}``   a code (right-trimmed) -> its value; an unknown code is bad
(none)                    a cast to the target type; a value that does not cast is bad
========================  ===========================================================
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import polars as pl

from billing_sync.column_types import polars_type
from billing_sync.config import ColumnSpec, Converter

OPEN_ENDED_DATE = 9_999_999  # CYYMMDD "no end"
_FIRST_YEAR = 1900


# The Arrow type a converter reads, when the source column's type is not reflected.
@dataclass(frozen=True)
class Conversion:
    """A column's converted value, and the rows whose source value was bad."""

    value: pl.Expr
    bad: pl.Expr | None  # None: the conversion cannot fail
    converter: str  # ``cyymmdd``, ``implied_decimal(2)``, ``cast``
    reason: str  # why a flagged value is bad


def convert(column: ColumnSpec, timezone: str = "UTC") -> Conversion:
    """The column's value from its source column(s), by its converter (or a cast).

    A timestamp is the biller's wall time in ``timezone`` (the catalog's): it becomes a
    UTC instant (one time zone in the model, DESIGN §11)."""
    target = polars_type(column.type)
    if column.is_constant:
        return Conversion(pl.lit(column.constant).cast(target), None, "constant", "")
    names = column.source_names
    converter = column.converter
    if column.type == "timestamp":
        if converter is None:
            local = cast_to(pl.col(names[0]), pl.Datetime("us"))
        else:
            local = cyymmdd_hhmmss(pl.col(names[0]), pl.col(names[1]))
        return replace(local, value=local_to_utc(local.value, timezone))
    if converter is None:
        return cast_to(pl.col(names[0]), target)
    return _single(converter, pl.col(names[0]), target)


def local_to_utc(value: pl.Expr, timezone: str) -> pl.Expr:
    """Wall time in ``timezone`` -> the UTC instant, read as PostgreSQL's ``AT TIME ZONE``
    reads it (the documented upgrade converts old rows with it): a time of the hour
    repeated when daylight saving ends is standard time (the later instant), one of the
    hour skipped when it starts takes the offset before the change (02:30 -> 03:30)."""
    if timezone == "UTC":
        return value.dt.replace_time_zone("UTC")
    first = value.dt.replace_time_zone(timezone, ambiguous="latest", non_existent="null")
    later = (value + pl.duration(hours=1)).dt.replace_time_zone(
        timezone, ambiguous="latest", non_existent="null"
    )
    return pl.coalesce(first, later).dt.convert_time_zone("UTC")


def _single(converter: Converter, source: pl.Expr, target: pl.DataType) -> Conversion:
    name = converter.name
    if name == "trim":
        return Conversion(trim(source), None, name, "")
    if name == "cyymmdd":
        value, bad = cyymmdd(source)
        return Conversion(value, bad, name, "not a CYYMMDD date")
    if name == "hhmmss":
        value, bad = hhmmss(source)
        return Conversion(value, bad, name, "not an HHMMSS time")
    if name in ("implied_decimal", "float_money"):
        assert converter.places is not None and isinstance(target, pl.Decimal)
        if name == "implied_decimal":
            value, bad = implied_decimal(source, places=converter.places, target=target)
            reason = "does not fit the target decimal"
        else:
            value, bad = float_money(source, places=converter.places, target=target)
            reason = "not a finite amount that fits the target decimal"
        return Conversion(value, bad, converter.label, reason)
    if name in ("ebcdic", "latin1"):
        return Conversion(decode_bytes(source, "cp037" if name == "ebcdic" else "latin-1"),
                          None, name, "")  # fmt: skip
    assert name == "lookup" and converter.codes is not None
    value, bad = lookup(source, converter.codes)
    return Conversion(value, bad, name, "unknown code")


# -- the converters, each a pure expression ---------------------------------------------------


def cast_to(source: pl.Expr, target: pl.DataType) -> Conversion:
    """A plain column: cast to the target type; a value that does not cast is bad."""
    value = source.cast(target, strict=False)
    return Conversion(value, source.is_not_null() & value.is_null(), "cast", f"not a {target}")


def trim(source: pl.Expr) -> pl.Expr:
    """Padded CHAR: trailing blanks removed (an all-blank value becomes ``''``)."""
    return source.cast(pl.Utf8).str.strip_chars_end(" ")


def _days_in_month(year: pl.Expr, month: pl.Expr) -> pl.Expr:
    return pl.date(year, month.clip(1, 12), 1).dt.month_end().dt.day().cast(pl.Int64)


def _date_parts(source: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """(a date, valid) of a CYYMMDD value; the date is only meaningful where valid (its
    parts are clipped so that no row fails), and 0 and 9999999 are not valid."""
    d = source.cast(pl.Int64)
    year = (d // 10_000 + _FIRST_YEAR).clip(_FIRST_YEAR, 2899)
    month, day = d // 100 % 100, d % 100
    month_days = _days_in_month(year, month)
    valid = (
        (d > 0) & (d < OPEN_ENDED_DATE) & month.is_between(1, 12) & day.is_between(1, month_days)
    )
    return pl.date(year, month.clip(1, 12), day.clip(1, month_days)), valid


def _no_date(source: pl.Expr) -> pl.Expr:
    """0 (no date) and 9999999 (open-ended) stand for NULL, not for a bad value."""
    d = source.cast(pl.Int64)
    return (d == 0) | (d == OPEN_ENDED_DATE)


def cyymmdd(source: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """CYYMMDD -> date; (value, bad)."""
    date, valid = _date_parts(source)
    bad = source.is_not_null() & ~valid & ~_no_date(source)
    return pl.when(valid).then(date).otherwise(None), bad


def _time_parts(source: pl.Expr) -> tuple[pl.Expr, pl.Expr, pl.Expr, pl.Expr]:
    """(hour, minute, second, valid) of an HHMMSS value, parts clipped to real ranges."""
    t = source.cast(pl.Int64)
    hour, minute, second = t // 10_000, t // 100 % 100, t % 100
    valid = (t >= 0) & (hour <= 23) & (minute <= 59) & (second <= 59)
    return hour.clip(0, 23), minute.clip(0, 59), second.clip(0, 59), valid


def hhmmss(source: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """HHMMSS -> ``'HH:MM:SS'``; (value, bad)."""
    hour, minute, second, valid = _time_parts(source)

    def two(part: pl.Expr) -> pl.Expr:
        return part.cast(pl.Utf8).str.zfill(2)

    text = pl.concat_str([two(hour), two(minute), two(second)], separator=":")
    return pl.when(valid).then(text).otherwise(None), source.is_not_null() & ~valid


def cyymmdd_hhmmss(date: pl.Expr, time: pl.Expr) -> Conversion:
    """``[CYYMMDD, HHMMSS]`` -> timestamp. A 0 or 9999999 date is NULL whatever the time."""
    day, date_valid = _date_parts(date)
    hour, minute, second, time_valid = _time_parts(time)
    moment = day.cast(pl.Datetime("us")) + pl.duration(hours=hour, minutes=minute, seconds=second)
    value = pl.when(date_valid & time_valid).then(moment).otherwise(None)
    bad = (date.is_not_null() & ~_no_date(date) & ~date_valid) | (
        date_valid & (time.is_null() | ~time_valid)
    )
    return Conversion(value, bad, "cyymmdd_hhmmss", "not a CYYMMDD date and HHMMSS time")


def implied_decimal(source: pl.Expr, *, places: int, target: pl.Decimal) -> tuple[pl.Expr, pl.Expr]:
    """An integer holding ``places`` implied decimals -> decimal (exact: text, not floats)."""
    n = source.cast(pl.Int64)
    digits = n.abs().cast(pl.Utf8).str.zfill(places + 1)
    if places:
        whole = digits.str.slice(0, digits.str.len_chars() - places)
        text = whole + pl.lit(".") + digits.str.slice(-places)
    else:
        text = digits
    signed = pl.when(n < 0).then(pl.lit("-") + text).otherwise(text)
    value = signed.cast(target, strict=False)
    return value, source.is_not_null() & value.is_null()


def float_money(source: pl.Expr, *, places: int, target: pl.Decimal) -> tuple[pl.Expr, pl.Expr]:
    """A float carrying money -> exact decimal, rounded half-even to ``places``.

    The float's binary noise is cleared first (rounded to 6 places below the cents), so
    ``0.1 + 0.2`` is 0.30 and ``2.675`` (stored as 2.67499999...) rounds half-even as
    the 2.675 the biller showed: 2.68. Exact for amounts below about 10^9.
    """
    x = source.cast(pl.Float64)
    scaled = (x * 10**places).round(6).round(0, mode="half_to_even")
    finite = x.is_finite() & (scaled.abs() < 9.0e18)
    cents = pl.when(finite).then(scaled).otherwise(None).cast(pl.Int64, strict=False)
    value, _ = implied_decimal(cents, places=places, target=target)
    return value, source.is_not_null() & value.is_null()


def decode_bytes(source: pl.Expr, encoding: str) -> pl.Expr:
    """Bytes -> text in ``encoding``, decoded once per distinct value of the batch."""

    def decode(series: pl.Series) -> pl.Series:
        distinct = series.drop_nulls().unique()
        decoded = pl.Series("out", [value.decode(encoding) for value in distinct.to_list()],
                            pl.Utf8)  # fmt: skip
        table = pl.DataFrame([distinct.alias("in"), decoded])
        joined = (
            series.alias("in")
            .to_frame()
            .join(table, on="in", how="left", maintain_order="left", nulls_equal=False)
        )
        return joined.get_column("out")

    return source.map_batches(decode, return_dtype=pl.Utf8)


def lookup(source: pl.Expr, codes: dict[str, str]) -> tuple[pl.Expr, pl.Expr]:
    """A code (right-trimmed, as padded CHAR codes are) -> its value; unknown: bad."""
    code = trim(source)
    value = code.replace_strict(
        list(codes), list(codes.values()), default=None, return_dtype=pl.Utf8
    )
    return value, source.is_not_null() & ~code.is_in(list(codes))
