"""Property tests of the redactor: no Luhn-valid card window and no SSN pattern survives,
text without them survives unchanged, redacting twice changes nothing, and the scan is
linear (counted, not timed)."""

from __future__ import annotations

import random
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing_sync.transform import protect
from billing_sync.transform.protect import MAX_GAP, REDACTED, SEPARATORS, luhn_valid, redact_text

# An independent reading of "a run": digits joined by short gaps of separators. Quadratic
# on purpose (all windows by brute force): it is the oracle, run on small texts only.
_SEP = "[" + re.escape("".join(sorted(SEPARATORS))) + "]"
_RUN = re.compile(rf"[0-9](?:{_SEP}{{0,{MAX_GAP}}}[0-9])*")


def _sensitive(text: str) -> list[str]:
    """Every Luhn-valid 13-19 digit window and every SSN pattern in ``text``."""
    found = []
    for run in _RUN.finditer(text):
        digits = re.sub("[^0-9]", "", run.group())
        for start in range(len(digits)):
            for length in range(13, 20):
                window = digits[start : start + length]
                if len(window) == length and luhn_valid(window):
                    found.append(window)
        groups = [len(g) for g in re.findall("[0-9]+", run.group())]
        for i in range(len(groups)):
            if groups[i : i + 3] == [3, 2, 4] or groups[i] == 9:
                found.append(run.group())
    return found


def _with_check_digit(body: str) -> str:
    return next(body + d for d in "0123456789" if luhn_valid(body + d))


@st.composite
def cards(draw: st.DrawFn) -> str:
    length = draw(st.integers(13, 19))
    body = draw(st.text("0123456789", min_size=length - 1, max_size=length - 1))
    digits = _with_check_digit(body)
    out = digits[0]
    for digit in digits[1:]:
        gap = draw(st.sampled_from(["", "", "", " ", "-", ".", " - ", "\u00a0", "  "]))
        out += gap + digit
    return out


@st.composite
def ssns(draw: st.DrawFn) -> str:
    digits = draw(st.text("0123456789", min_size=9, max_size=9))
    if draw(st.booleans()):
        return digits
    one, two = draw(st.sampled_from(["-", " ", ".", "- "])), draw(st.sampled_from("- ."))
    return f"{digits[:3]}{one}{digits[3:5]}{two}{digits[5:]}"


# Filler: words, punctuation, short numbers and separators, so that sensitive items sit
# next to digits as well as words.
filler = st.text(
    st.sampled_from(list("abcXYZ é,;:/()[]#\n") + list("0123456789") + sorted(SEPARATORS)),
    max_size=30,
)


@st.composite
def memos(draw: st.DrawFn) -> str:
    parts = [draw(filler)]
    for _ in range(draw(st.integers(0, 4))):
        parts.append(draw(st.one_of(cards(), ssns())))
        parts.append(draw(filler))
    return "".join(parts)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(memos())
def test_no_card_window_or_ssn_survives_and_twice_is_once(text: str) -> None:
    redacted = redact_text(text)
    assert _sensitive(redacted) == [], (text, redacted)
    assert redact_text(redacted) == redacted


@settings(max_examples=400)
@given(memos())
def test_embedded_cards_are_gone_whatever_surrounds_them(text: str) -> None:
    redacted = redact_text(text)
    for run in _RUN.finditer(redacted):
        digits = re.sub("[^0-9]", "", run.group())
        assert not any(
            luhn_valid(digits[i : i + n]) for n in range(13, 20) for i in range(len(digits) - n + 1)
        )


@settings(max_examples=400)
@given(st.one_of(filler, st.text(max_size=60)))
def test_text_without_cards_or_ssns_survives_unchanged(text: str) -> None:
    if not _sensitive(text):
        assert redact_text(text) == text
    else:
        assert REDACTED in redact_text(text)


def test_a_card_inside_a_longer_run_is_found_at_every_offset() -> None:
    card = "4539148803436467"
    for offset in range(0, 7):
        run = "9" * offset + card + "8" * (22 - len(card) - offset)
        assert card not in redact_text(f"ref {run} end").replace(" ", "")
        assert _sensitive(redact_text(f"ref {run} end")) == []


def test_the_scan_is_linear_in_the_text() -> None:
    """Counted: a million characters of digits and spaces (the shape that took 69 s at
    100,000 characters) is one pass over the digit groups and a bounded number of
    vectorized Luhn passes per run; no timing asserted."""
    rng = random.Random(12)
    text = "".join(rng.choice("0123456789 ") for _ in range(1_000_000))
    calls: list[int] = []
    original = protect._luhn_windows

    def counting(digits):  # type: ignore[no-untyped-def]
        calls.append(digits.size)
        return original(digits)

    protect._luhn_windows = counting
    try:
        redacted = redact_text(text)
    finally:
        protect._luhn_windows = original
    digits = sum(c.isdigit() for c in text)
    assert sum(calls) <= digits  # each digit is in at most one run's Luhn pass
    assert _sensitive(redacted[:5000]) == []
