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
    Free text with every Luhn-valid card number (any 13-19 digit window of a digit run,
    separators people type allowed between the digits) and every SSN-like run
    (``ddd-dd-dddd`` with any of those separators, or nine digits standing alone)
    replaced by ``[REDACTED]``: :func:`redact_text`, linear in the text's length.

HMAC and the card scan are not Polars expressions: they run once per distinct value of
the batch (and the scan only for values that hold a run of nine digits at all).
"""

from __future__ import annotations

import base64
import hashlib
import hmac as hmac_lib
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np  # with pandas, a dependency of great_expectations
import polars as pl

from billing_sync.config import ConfigError, Protection, SourceCatalog

HMAC_KEY_ENV = "BILLING_SYNC_HMAC_KEY"
REDACTED = "[REDACTED]"

#: What people type between the digits of a card number or an SSN (dots, dashes, spaces,
#: no-break spaces, Unicode dashes, tabs), in gaps of at most ``MAX_GAP`` characters:
#: ``4539.1488.0343.6467``, ``536 22 8741``, ``4539 - 1488 ...``.
SEPARATORS = frozenset(" .-\t\u00a0\u2010\u2011\u2012\u2013\u2014")
MAX_GAP = 3
CARD_DIGITS = (13, 19)
# Only ASCII digit groups: a plain ``[0-9]+`` cannot backtrack, whatever the input.
_GROUP = re.compile(r"[0-9]+")
# Values the batch scan skips: those without nine digits joined by separators (Rust regex
# in Polars: finite automaton, linear).
_SEPARATOR_CLASS = "".join(f"\\x{{{ord(c):x}}}" for c in sorted(SEPARATORS))
_DIGIT_RUN_PREFILTER = f"[0-9](?:[{_SEPARATOR_CLASS}]{{0,{MAX_GAP}}}[0-9]){{8}}"


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


def digit_runs(text: str) -> Iterator[list[tuple[int, int]]]:
    """The runs of digit groups in ``text``: groups (start, end) joined by gaps of at most
    ``MAX_GAP`` separator characters. One pass; each gap is looked at once."""
    run: list[tuple[int, int]] = []
    for match in _GROUP.finditer(text):
        start, end = match.span()
        if run:
            gap_start = run[-1][1]
            gap = start - gap_start
            if gap <= MAX_GAP and all(c in SEPARATORS for c in text[gap_start:start]):
                run.append((start, end))
                continue
            yield run
        run = [(start, end)]
    if run:
        yield run


def _luhn_windows(digits: np.ndarray) -> np.ndarray:
    """Which digits of a run lie in some 13-19 digit window that passes Luhn.

    Prefix sums make each window's Luhn sum two subtractions, so the run costs seven
    vectorized passes (one per length), whatever its length: linear, and no window is
    missed (a card inside a longer reference number is found at any offset).
    """
    n = digits.size
    doubled = np.where(digits > 4, digits * 2 - 9, digits * 2)
    even = (np.arange(n) % 2) == 0
    # A window's last digit is never doubled, the one before it is, and so on: which
    # positions double depends on the parity of the window's last position.
    ends_even = np.concatenate(([0], np.cumsum(np.where(even, digits, doubled))))
    ends_odd = np.concatenate(([0], np.cumsum(np.where(even, doubled, digits))))
    starts: list[np.ndarray] = []
    stops: list[np.ndarray] = []
    for length in range(CARD_DIGITS[0], min(CARD_DIGITS[1], n) + 1):
        first = np.arange(n - length + 1)
        last = first + length  # exclusive
        total = np.where(
            (last - 1) % 2 == 0,
            ends_even[last] - ends_even[first],
            ends_odd[last] - ends_odd[first],
        )
        valid = total % 10 == 0
        starts.append(first[valid])
        stops.append(last[valid])
    if not starts:
        return np.zeros(n, dtype=bool)
    depth = np.bincount(np.concatenate(starts), minlength=n + 1) - np.bincount(
        np.concatenate(stops), minlength=n + 1
    )
    return np.cumsum(depth)[:n] > 0


def _card_spans(text: str, run: list[tuple[int, int]]) -> Iterator[tuple[int, int]]:
    if sum(end - start for start, end in run) < CARD_DIGITS[0]:
        return
    positions = [p for start, end in run for p in range(start, end)]
    raw = "".join(text[start:end] for start, end in run).encode("ascii")
    covered = _luhn_windows(np.frombuffer(raw, dtype=np.uint8).astype(np.int64) - 48)
    edges = np.flatnonzero(np.diff(np.concatenate(([0], covered.view(np.int8), [0]))))
    for first, last in zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True):
        yield positions[first], positions[last - 1] + 1


def _ssn_spans(run: list[tuple[int, int]]) -> Iterator[tuple[int, int]]:
    """SSNs in a run: three groups of 3, 2 and 4 digits (``536-22-8741``, ``536 22 8741``,
    ``536.22-8741``), or a group of exactly nine digits standing alone (``536228741``; the
    rule the redactor always had: a bare nine-digit number in free text is taken as an SSN)."""
    sizes = [end - start for start, end in run]
    index = 0
    while index < len(run):
        if sizes[index : index + 3] == [3, 2, 4]:
            yield run[index][0], run[index + 2][1]
            index += 3
            continue
        if sizes[index] == 9:
            yield run[index]
        index += 1


def _replace(text: str, spans: Iterable[tuple[int, int]]) -> str:
    pieces: list[str] = []
    done = 0
    for start, end in spans:  # in order, not overlapping
        pieces.append(text[done:start])
        pieces.append(REDACTED)
        done = end
    if not pieces:
        return text
    pieces.append(text[done:])
    return "".join(pieces)


def redact_text(text: str) -> str:
    """``text`` with card numbers (any 13-19 digit window of a run that passes Luhn) and
    SSNs replaced by ``[REDACTED]``; linear in ``len(text)``.

    Digits count as one run across the separators people type (spaces, dots, dashes, no
    separator, mixed). Cards are replaced first, SSNs then in what is left: removing whole
    groups creates no new pattern, so the result holds none and redacting it again changes
    nothing.

    >>> redact_text("card 4539.1488.0343.6467 ssn 536 22 8741, phone 312-555-0100")
    'card [REDACTED] ssn [REDACTED], phone 312-555-0100'
    >>> redact_text("ref 12345411111111111111167890")  # a card inside a longer number
    'ref 12[REDACTED]'

    Every digit that lies in some Luhn-valid window is hidden, so a long run of digits
    usually goes whole (a tenth of all digit windows pass Luhn by chance): a card glued to
    a reference number leaks no part of itself, at the price of the reference number.
    """
    text = _replace(text, (s for run in digit_runs(text) for s in _card_spans(text, run)))
    return _replace(text, (s for run in digit_runs(text) for s in _ssn_spans(run)))


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
        if policy == "clear":
            return source
        text = source.cast(pl.Utf8)
        if policy == "last4":
            return text.str.replace_all(r"[^0-9]", "").str.slice(-4)
        if policy == "redact":
            return _per_distinct(text, _redact_all, only=_DIGIT_RUN_PREFILTER)
        if self.hmac_key is None:
            raise ConfigError(f"an hmac column needs the key in {HMAC_KEY_ENV}")
        key = self.hmac_key
        return _per_distinct(text, lambda values: hmac_tokens(key, values))
