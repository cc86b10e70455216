"""Reference data of the simulated ICOMS biller: sites, service codes, codes and users."""

from __future__ import annotations

import random
from bisect import bisect
from dataclasses import dataclass
from itertools import accumulate
from typing import Any


@dataclass(frozen=True)
class Site:
    site_id: str
    name: str
    state: str
    cities: tuple[str, ...]
    weight: int


SITES_INFO: tuple[Site, ...] = (
    Site("001", "Dallas Metro", "TX", ("Dallas", "Plano", "Irving"), 34),
    Site("002", "Houston South", "TX", ("Houston", "Pasadena", "Sugar Land"), 25),
    Site("003", "Chicago North", "IL", ("Evanston", "Skokie", "Chicago"), 19),
    Site("004", "Twin Cities", "MN", ("Saint Paul", "Minneapolis", "Edina"), 13),
    Site("005", "New Orleans", "LA", ("Metairie", "Kenner", "New Orleans"), 9),
)
SITES: tuple[str, ...] = tuple(site.site_id for site in SITES_INFO)
SITE_WEIGHTS: tuple[int, ...] = tuple(site.weight for site in SITES_INFO)


@dataclass(frozen=True)
class ServiceOffer:
    """A ``SERVICE_CODE`` row: what ``CUST_SERVICE`` rows refer to.

    Attributes
    ----------
    code
        ``SERVICE_CODE``, five characters.
    category
        ``C`` video (cable), ``D`` data, ``T`` telephony.
    description
        ``SVC_DESC`` text (stored EBCDIC).
    rate_cents
        List price per month and unit.
    max_quantity
        Largest ``QUANTITY`` a subscriber takes (outlets, DVRs).
    weight
        Relative popularity.
    equipment
        ``EQUIP_TYPE`` installed per unit, or ``""``.
    """

    code: str
    category: str
    description: str
    rate_cents: int
    max_quantity: int
    weight: int
    equipment: str = ""


SERVICES: tuple[ServiceOffer, ...] = (
    ServiceOffer("VBAS1", "C", "BASIC CABLE", 2999, 1, 18, "STB"),
    ServiceOffer("VPRM1", "C", "PREMIUM TIER", 7999, 1, 9),
    ServiceOffer("VDVR1", "C", "DVR SERVICE", 999, 2, 7, "DVR"),
    ServiceOffer("VOUTL", "C", "ADDITIONAL OUTLET", 499, 3, 6, "STB"),
    ServiceOffer("VHBO1", "C", "HBO", 1599, 1, 4),
    ServiceOffer("DINT1", "D", "INTERNET 300", 4999, 1, 22, "MDM"),
    ServiceOffer("DINT2", "D", "INTERNET GIG", 7999, 1, 14, "MDM"),
    ServiceOffer("DMODM", "D", "MODEM LEASE", 1200, 1, 10),
    ServiceOffer("DSTIP", "D", "STATIC IP", 1000, 1, 2),
    ServiceOffer("TVOIP", "T", "DIGITAL PHONE", 2499, 1, 14, "EMTA"),
    ServiceOffer("TLDIS", "T", "LONG DISTANCE PLAN", 999, 1, 5),
    ServiceOffer("TVMAI", "T", "VOICE MAIL", 399, 1, 3),
)
SERVICE_WEIGHTS: tuple[int, ...] = tuple(offer.weight for offer in SERVICES)
SERVICE_BY_CODE: dict[str, ServiceOffer] = {offer.code: offer for offer in SERVICES}
MULTI_UNIT: tuple[str, ...] = tuple(offer.code for offer in SERVICES if offer.max_quantity > 1)

EQUIPMENT_MODELS: dict[str, tuple[str, ...]] = {
    "STB": ("DCX3400", "DCT700", "XG1V4"),
    "DVR": ("DCX3510", "XG1V3"),
    "MDM": ("SB6183", "TG3482", "CM8200"),
    "EMTA": ("TM1602", "TCM471"),
}
EQUIPMENT_PREFIX: dict[str, str] = {"STB": "SX", "DVR": "DV", "MDM": "MD", "EMTA": "EM"}

ACCOUNT_TYPES: tuple[str, ...] = ("R", "B", "C")
ACCOUNT_TYPE_WEIGHTS: tuple[int, ...] = (90, 8, 2)
CREDIT_CLASSES: tuple[str, ...] = ("A", "B", "C", "D")
CREDIT_WEIGHTS: tuple[int, ...] = (50, 30, 15, 5)
DWELLING_TYPES: tuple[str, ...] = ("S", "M", "C")
DWELLING_WEIGHTS: tuple[int, ...] = (70, 26, 4)

PAY_METHODS: tuple[str, ...] = ("CA", "CK", "CC", "AC")
"""Cash, cheque, credit card, automatic clearing (direct debit)."""
PAY_METHOD_WEIGHTS: tuple[int, ...] = (8, 22, 42, 28)

ADJ_REASONS: tuple[tuple[str, int, int], ...] = (
    # (REASON_CD, sign, typical cents): credits are negative, fees positive
    ("GOOD", -1, 1500),
    ("OUTG", -1, 800),
    ("PPVD", -1, 599),
    ("BERR", -1, 2500),
    ("PROM", -1, 1000),
    ("LATE", 1, 900),
    ("RETC", 1, 3000),
    ("NRET", 1, 15000),
)
WO_TYPES: tuple[str, ...] = ("IN", "DC", "TC", "CH", "RC")
TECHS: tuple[str, ...] = ("T0113", "T0245", "T0318", "T0420", "T0577", "T0691", "")
VOD_TITLES: tuple[str, ...] = (
    "THE LONG WEEKEND", "MIDNIGHT EXPRESS RUN", "OCEAN DEEP", "CHAMPIONSHIP BOXING",
    "FAMILY ROAD TRIP", "SPACE STATION NINE", "THE LAST ORCHARD", "UFC FIGHT NIGHT",
)  # fmt: skip
COLL_STEPS: tuple[str, ...] = ("L1", "L2", "CL", "SU")

PAYMENT_USERS: tuple[str, ...] = ("PAYPROC", "LOCKBOX", "WEBPAY", "IVRPAY")
CSR_USERS: tuple[str, ...] = ("CSR0114", "CSR0231", "CSR0388", "CSR0402", "CSR0517", "WEBSELF")
STATEMENT_USER = "STMTRUN"
COLLECTIONS_USER = "COLLECT"
MIGRATION_USER = "CONVERT"
USAGE_USER = "USGLOAD"
DISPATCH_USER = "DISPATCH"


class Picker:
    """Weighted choices from fixed lists, fast and deterministic for one generator."""

    def __init__(self, items: tuple[Any, ...], weights: tuple[int, ...]) -> None:
        self.items = items
        self.cumulative = tuple(accumulate(weights))

    def __call__(self, rng: random.Random) -> Any:

        return self.items[bisect(self.cumulative, rng.random() * self.cumulative[-1])]


pick_site = Picker(SITES, SITE_WEIGHTS)
pick_service = Picker(SERVICES, SERVICE_WEIGHTS)
pick_credit = Picker(CREDIT_CLASSES, CREDIT_WEIGHTS)
pick_method = Picker(PAY_METHODS, PAY_METHOD_WEIGHTS)
pick_account_type = Picker(ACCOUNT_TYPES, ACCOUNT_TYPE_WEIGHTS)
pick_dwelling = Picker(DWELLING_TYPES, DWELLING_WEIGHTS)


def serial_number(rng: random.Random, equip_type: str) -> str:
    """A serial like ``SX4F7A20C1B9``: letters break digit runs (no 9-digit number)."""
    hexdigits = "0123456789ABCDEF"
    body = "".join(hexdigits[int(rng.random() * 16)] for _ in range(10))
    return EQUIPMENT_PREFIX[equip_type] + body[:4] + "Z" + body[5:]


def mac_address(rng: random.Random) -> str:
    """``00:1A:2B:3C:4D:5E``-style, from a cable vendor prefix."""
    tail = [int(rng.random() * 256) for _ in range(3)]
    return "00:1D:CE:" + ":".join(f"{byte:02X}" for byte in tail)


def phone_number(rng: random.Random) -> str:
    """A 10-digit NANP number (area codes of the sites)."""
    area = ("214", "713", "312", "651", "504")[int(rng.random() * 5)]
    return f"{area}555{int(rng.random() * 10_000):04d}"
