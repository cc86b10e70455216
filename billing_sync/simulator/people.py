"""People and payment instruments for the simulated billers: names, SSNs, cards, memos.

Everything is a pure function of a :class:`random.Random`, so seeds and workloads stay
deterministic for a given seed. Card numbers are Luhn-valid (as real ones are) so that the
protection scan has something real to find if a mapping forgets to protect them.
"""

from __future__ import annotations

import random

_FIRST_NAMES: tuple[str, ...] = (
    "James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda",
    "David", "Elizabeth", "Maria", "Carlos", "Ana", "Wei", "Priya", "Ahmed",
)  # fmt: skip
_FIRST_NAMES_INTL: tuple[str, ...] = (
    "Zoë", "José", "Renée", "Björn", "Łukasz", "Søren", "François", "Chloé",
    "Nuño", "Tomáš", "Siân", "Håkon", "Andrés", "İlkay",
)  # fmt: skip
_LAST_NAMES: tuple[str, ...] = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Miller", "Davis", "Wilson",
    "Anderson", "Taylor", "Thomas", "Moore", "Martin", "Lee", "Walker", "Hall",
    "O'Brien", "D'Angelo",
)  # fmt: skip
_LAST_NAMES_INTL: tuple[str, ...] = (
    "Müller", "Peña", "García", "Nguyễn", "Kowalski", "Dubois", "Øvergård",
    "Çelik", "Schröder", "Ångström", "Wójcik", "Núñez",
)  # fmt: skip
_BUSINESS_SUFFIXES: tuple[str, ...] = (
    "Plumbing LLC", "Dental Group", "Auto Repair", "Café & Bakery", "Holdings Inc",
)  # fmt: skip

NAME_LENGTH = 40
"""Width of ``ACCT_NAME`` (``varchar(40)``)."""


def fake_name(rng: random.Random) -> str | None:
    """Draw an account name: mostly people, some businesses, some blank or missing.

    About 1.5% of names are the empty string and 1.5% are ``None`` (SQL NULL), so the
    pipeline has to keep the two apart; about one in five carries a non-ASCII letter.

    Parameters
    ----------
    rng
        The generator to draw from; the same state gives the same name.

    Returns
    -------
    str or None
        At most :data:`NAME_LENGTH` characters, or ``None``.
    """
    roll = rng.random()
    if roll < 0.015:
        return ""
    if roll < 0.03:
        return None
    last = rng.choice(_LAST_NAMES_INTL if rng.random() < 0.12 else _LAST_NAMES)
    first = rng.choice(_FIRST_NAMES_INTL if rng.random() < 0.1 else _FIRST_NAMES)
    if roll < 0.08:
        name = f"{last} {rng.choice(_BUSINESS_SUFFIXES)}"
    elif roll < 0.14:
        # Legacy screens captured upper-case "LAST FIRST".
        name = f"{last} {first}".upper()
    else:
        name = f"{first} {last}"
    return name[:NAME_LENGTH]


def luhn_digit(digits: str) -> str:
    """The check digit that makes ``digits + check`` pass the Luhn test."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 0:
            value *= 2
            value -= 9 if value > 9 else 0
        total += value
    return str((10 - total % 10) % 10)


def luhn_valid(number: str) -> bool:
    """True when the digits of ``number`` pass the Luhn test."""
    digits = [int(char) for char in number if char.isdigit()]
    total = 0
    for index, value in enumerate(reversed(digits)):
        if index % 2 == 1:
            value *= 2
            value -= 9 if value > 9 else 0
        total += value
    return total % 10 == 0


_CARD_PREFIXES: tuple[tuple[str, int], ...] = (
    ("4", 16),
    ("51", 16),
    ("55", 16),
    ("37", 15),
    ("6011", 16),
)


def fake_card(rng: random.Random) -> str:
    """A Luhn-valid card number (Visa, Mastercard, Amex or Discover shape)."""
    prefix, length = _CARD_PREFIXES[int(rng.random() * len(_CARD_PREFIXES))]
    body = prefix + "".join(str(int(rng.random() * 10)) for _ in range(length - len(prefix) - 1))
    return body + luhn_digit(body)


def fake_ssn(rng: random.Random) -> str:
    """Nine digits shaped like a US SSN (area 001-665, never 000 group or serial)."""
    area = 1 + int(rng.random() * 665)
    group = 1 + int(rng.random() * 99)
    serial = 1 + int(rng.random() * 9999)
    return f"{area:03d}{group:02d}{serial:04d}"


_MEMOS: tuple[str, ...] = (
    "Courtesy credit approved by supervisor",
    "Outage credit, node down 2 days",
    "Customer disputes PPV purchase, credited",
    "Late fee waived one time",
    "Returned check fee",
    "Billing error, duplicate charge reversed",
    "Promo credit per retention offer",
    "Equipment not returned within 30 days",
    "Tech no-show, credit for missed appointment",
    "",
)


def fake_memo(rng: random.Random, *, sensitive_share: float = 0.04) -> str:
    """Free text a CSR typed; now and then it holds a card number or an SSN, as real
    memos do (the mapping must redact them)."""
    text = _MEMOS[int(rng.random() * len(_MEMOS))]
    roll = rng.random()
    if roll < sensitive_share / 2:
        card = fake_card(rng)
        spaced = " ".join(card[i : i + 4] for i in range(0, len(card), 4))
        return f"{text}; cust paid by card {spaced if rng.random() < 0.5 else card}".strip("; ")
    if roll < sensitive_share:
        ssn = fake_ssn(rng)
        return f"{text}; verified SSN {ssn[:3]}-{ssn[3:5]}-{ssn[5:]}".strip("; ")
    return text
