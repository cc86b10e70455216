"""Sensitive columns: the policies of DESIGN §5, applied after a column's converter.

``drop``
    Never selected at all (``drop:`` of a table or catalog; a mapping naming such a
    column fails at start, see :mod:`billing_sync.config`).
``hmac``
    HMAC-SHA256 keyed with ``BILLING_SYNC_HMAC_KEY``, written as lowercase base32
    without padding (52 characters): a stable surrogate to join on, not reversible
    without the key. The key is read once with the settings and handed to the engine;
    a catalog with an ``hmac`` column and no key is a start-up :class:`ConfigError`.
``last4``
    Only the value's last four digits.
``redact``
    Free text with every Luhn-valid card number (13-19 digits, spaces or dashes between
    them allowed) and every SSN-like run (``ddd-dd-dddd`` or nine digits standing alone)
    replaced by ``[REDACTED]``.

HMAC and the card scan are not Polars expressions: they run once per distinct value of
the batch (and the scan only for values that hold a run of nine digits at all).
"""

from __future__ import annotations

import base64
import hashlib
import hmac as hmac_lib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np  # with pandas, a dependency of great_expectations
import polars as pl

from billing_sync.config import ConfigError, Protection, SourceCatalog

HMAC_KEY_ENV = "BILLING_SYNC_HMAC_KEY"
REDACTED = "[REDACTED]"

# A possible card or SSN: nine digits, single spaces or dashes allowed between them.
_DIGIT_RUN_PREFILTER = r"[0-9](?:[ -]?[0-9]){8}"
_DIGIT_GROUPS = re.compile(r"\d(?:[ -]?\d)*")
_SSN = re.compile(r"(?<!\d)(?:\d{3}-\d{2}-\d{4}|\d{9})(?!\d)")


def luhn_valid(digits: str) -> bool:
    """The Luhn check of a string of digits.

    >>> luhn_valid("4111111111111111"), luhn_valid("4111111111111112")
    (True, False)
    """
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def redact_text(text: str) -> str:
    """``text`` with card numbers (Luhn-valid, 13-19 digits) and SSNs replaced.

    A card number starts and ends where a digit group does (groups are separated by one
    space or dash), so a year written after a card is kept and a long reference number
    is not searched for a Luhn-valid part.

    >>> redact_text("card 4111 1111 1111 1111 exp 2027, ssn 123-45-6789, phone 3125550100")
    'card [REDACTED] exp 2027, ssn [REDACTED], phone 3125550100'
    """
    pieces: list[str] = []
    done = 0
    for run in _DIGIT_GROUPS.finditer(text):
        positions = [run.start() + i for i, c in enumerate(run.group()) if c.isdigit()]
        digits = "".join(text[p] for p in positions)
        edges = [0] + [
            i for i in range(1, len(digits)) if positions[i] != positions[i - 1] + 1
        ] + [len(digits)]  # fmt: skip
        start_at = 0
        for start in edges[:-1]:
            if start < start_at:
                continue
            end = next(
                (e for e in reversed(edges)
                 if 13 <= e - start <= 19 and luhn_valid(digits[start:e])),
                None,
            )  # fmt: skip
            if end is None:
                continue
            pieces.append(text[done : positions[start]] + REDACTED)
            done = positions[end - 1] + 1
            start_at = end
    pieces.append(text[done:])
    return _SSN.sub(REDACTED, "".join(pieces))


# Base32 over letters only (a-z, then A-F for the standard alphabet's 2-7): a token never
# holds a digit, so no scan for card numbers or national ids can mistake one for them.
_LETTERS_ONLY = str.maketrans("234567", "ABCDEF")


def hmac_token(key: bytes, value: str) -> str:
    """HMAC-SHA256 of ``value`` in base32 over letters only, no padding (52 characters)."""
    digest = hmac_lib.digest(key, value.encode("utf-8"), hashlib.sha256)
    return base64.b32encode(digest).decode("ascii").rstrip("=").lower().translate(_LETTERS_ONLY)


_BASE32 = np.frombuffer(b"abcdefghijklmnopqrstuvwxyzABCDEF", dtype=np.uint8)


def hmac_tokens(key: bytes, values: list[str]) -> pl.Series:
    """:func:`hmac_token` of many values; the base32 step in numpy (Python's
    ``b32encode`` costs more than the HMAC itself)."""
    if not values:
        return pl.Series("out", [], pl.Utf8)
    digests = b"".join(hmac_lib.digest(key, v.encode("utf-8"), hashlib.sha256) for v in values)
    bits = np.unpackbits(np.frombuffer(digests, dtype=np.uint8).reshape(-1, 32), axis=1)
    groups = np.pad(bits, ((0, 0), (0, 4))).reshape(-1, 52, 5)  # 256 bits + 4 zero bits
    index = groups[:, :, 0] << 4  # each 5-bit group as a number 0-31
    for bit in range(1, 5):
        index |= groups[:, :, bit] << (4 - bit)
    chars = np.ascontiguousarray(_BASE32[index])
    return pl.Series("out", chars.view("S52").ravel()).cast(pl.Utf8)


def _per_distinct(
    source: pl.Expr, function: Callable[[list[str]], pl.Series], *, only: str | None = None
) -> pl.Expr:
    """``function`` applied once to the distinct values of the batch (those matching the
    regex ``only``, when given; the others are kept as they are)."""

    def apply(series: pl.Series) -> pl.Series:
        distinct = series.drop_nulls().unique()
        if only is not None:
            distinct = distinct.filter(distinct.str.contains(only))
        mapped = function(distinct.to_list()).alias("out").cast(pl.Utf8)
        table = pl.DataFrame([distinct.alias("in"), mapped])
        # A join, not Series.replace: replace is slow with a large mapping (~100k values).
        joined = (
            series.alias("in")
            .to_frame()
            .join(table, on="in", how="left", maintain_order="left", nulls_equal=False)
        )
        out = joined.get_column("out")
        return out if only is None else out.fill_null(series)

    return source.map_batches(apply, return_dtype=pl.Utf8)


def _redact_all(values: list[str]) -> pl.Series:
    return pl.Series("out", [redact_text(value) for value in values], pl.Utf8)


@dataclass(frozen=True)
class Protector:
    """Applies protection policies; holds the HMAC key (never logged, never in repr)."""

    hmac_key: bytes | None = None

    def __repr__(self) -> str:
        return f"Protector(hmac_key={'<set>' if self.hmac_key else None})"

    @classmethod
    def for_catalogs(cls, catalogs: Iterable[SourceCatalog], *, hmac_key: str | None) -> Protector:
        """The protector for ``catalogs``; a :class:`ConfigError` naming the variable when
        one of them has an ``hmac`` column and no key is set."""
        needing = [catalog.system for catalog in catalogs if catalog.uses_hmac]
        if needing and not hmac_key:
            raise ConfigError(
                f"the catalog(s) {', '.join(needing)} protect columns with hmac: set the key"
                f" in the environment variable {HMAC_KEY_ENV}"
            )
        return cls(hmac_key.encode("utf-8") if hmac_key else None)

    def apply(self, policy: Protection, source: pl.Expr) -> pl.Expr:
        """``source`` (text) protected by ``policy``; NULL stays NULL."""
        text = source.cast(pl.Utf8)
        if policy == "last4":
            return text.str.replace_all(r"[^0-9]", "").str.slice(-4)
        if policy == "redact":
            return _per_distinct(text, _redact_all, only=_DIGIT_RUN_PREFILTER)
        if self.hmac_key is None:
            raise ConfigError(f"an hmac column needs the key in {HMAC_KEY_ENV}")
        key = self.hmac_key
        return _per_distinct(text, lambda values: hmac_tokens(key, values))
