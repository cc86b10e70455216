"""Reference data of the simulated ICOMS biller: sites, service offers, codes and names.

Everything here is constant or a pure function of a :class:`random.Random`, so the seed
and the workload draw the same vocabulary and stay deterministic for a given seed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

SITES: tuple[str, ...] = ("001", "002", "003", "004", "005")
"""Site ids (``SITE_ID``, ``char(3)``): one per regional system of the operator."""

SITE_WEIGHTS: tuple[int, ...] = (34, 25, 19, 13, 9)
"""Relative size of each site in :data:`SITES`: regions are not equally big."""

BILL_CYCLES: tuple[int, ...] = tuple(range(1, 29))
"""Bill cycles are days of the month, 1 to 28 (no cycle on the 29th to 31st)."""

CREDIT_CLASSES: tuple[str, ...] = ("A", "B", "C", "D")
CREDIT_WEIGHTS: tuple[int, ...] = (50, 30, 15, 5)

PAY_METHODS: tuple[str, ...] = ("CA", "CK", "CC", "AC")
"""Cash, cheque, credit card, automatic clearing (direct debit)."""
PAY_METHOD_WEIGHTS: tuple[int, ...] = (8, 22, 42, 28)

PAYMENT_USERS: tuple[str, ...] = ("PAYPROC", "LOCKBOX", "WEBPAY", "IVRPAY")
CSR_USERS: tuple[str, ...] = ("CSR0114", "CSR0231", "CSR0388", "CSR0402", "CSR0517", "WEBSELF")
STATEMENT_USER = "STMTRUN"
COLLECTIONS_USER = "COLLECT"
MIGRATION_USER = "CONVERT"


@dataclass(frozen=True)
class ServiceOffer:
    """A product the biller sells, as a row of ``CUST_SERVICE`` refers to it.

    Attributes
    ----------
    code
        ``SERVICE_CODE``, exactly five characters.
    category
        ``video``, ``data`` or ``phone``.
    rate_cents
        List price per month and unit, in cents.
    max_quantity
        Largest ``QUANTITY`` a subscriber takes (outlets, DVRs); 1 for most offers.
    weight
        Relative popularity when a service is added.
    """

    code: str
    category: str
    rate_cents: int
    max_quantity: int
    weight: int


SERVICES: tuple[ServiceOffer, ...] = (
    ServiceOffer("VBAS1", "video", 2999, 1, 18),
    ServiceOffer("VPRM1", "video", 7999, 1, 9),
    ServiceOffer("VDVR1", "video", 999, 2, 7),
    ServiceOffer("VOUTL", "video", 499, 3, 6),
    ServiceOffer("DINT1", "data", 4999, 1, 22),
    ServiceOffer("DINT2", "data", 7999, 1, 14),
    ServiceOffer("DMODM", "data", 1200, 1, 10),
    ServiceOffer("TVOIP", "phone", 2499, 1, 14),
)
SERVICE_WEIGHTS: tuple[int, ...] = tuple(offer.weight for offer in SERVICES)
SERVICE_BY_CODE: dict[str, ServiceOffer] = {offer.code: offer for offer in SERVICES}

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
