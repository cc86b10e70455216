"""One Amdocs billing account's history, drawn from a :class:`random.Random` (no database).

Per BAN: its customer (some customers hold two BANs; a business's second BAN hangs under
the first, ``PARENT_BAN``), 1 to 4 subscribers (phone lines), a price plan and a few
feature SOCs per subscriber, monthly bills with their charges (recurring per subscriber,
usage, tax), payments (2% backed out), adjustments and usage events. ``AR_BALANCE`` is
charges minus applied payments plus adjustments. Times are seconds since the start, UTC.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from billing_sync.simulator import people

Row = tuple[Any, ...]
DAY = 86_400
HISTORY_DAYS = 730

PRICE_PLANS: tuple[tuple[str, int], ...] = (
    ("PPUNL0001", 7000), ("PPUNL0002", 8500), ("PP5GB0001", 4500), ("PPBAS0001", 3000),
)  # fmt: skip
FEATURES: tuple[tuple[str, int], ...] = (
    ("VMAIL0001", 300), ("INTL00001", 1000), ("HOTSPOT01", 1500), ("INSUR0001", 1200),
    ("CALLID001", 0), ("ROAM00001", 500),
)  # fmt: skip
MODELS: tuple[str, ...] = ("iPhone 15", "iPhone 14", "Galaxy S24", "Pixel 8", "Moto G", "")
REASONS: tuple[tuple[str, int, int], ...] = (
    ("CRGOOD", -1, 1500), ("CRNETW", -1, 700), ("CRBILL", -1, 2500), ("LATEFE", 1, 500),
    ("CRPROM", -1, 1000),
)  # fmt: skip
METHODS: tuple[str, ...] = ("CA", "CH", "CC", "CC", "DD", "DD")
OPERATORS: tuple[int, ...] = (10231, 10877, 11402, 20015, 20116, 99001)
BATCH_OPERATOR = 1  # the bill and payment batch processes
AREAS: tuple[str, ...] = ("212", "415", "617", "206", "305")


@dataclass
class Subscriber:
    number: str
    activated: int
    cancelled: int | None
    socs: list[tuple[str, int, str]]  # (soc, rate cents, service type P/R)


class History:
    """Draws rows BAN by BAN; its state carries across chunks."""

    def __init__(self, rng: random.Random, as_of: datetime) -> None:
        self.rng = rng
        self.start = as_of - timedelta(days=HISTORY_DAYS)
        self.span = HISTORY_DAYS * DAY
        self.counters: dict[str, int] = {}
        self._last_customer: tuple[int, str, int] | None = None  # id, type, first BAN

    def next(self, kind: str) -> int:
        value = self.counters.get(kind, 0) + 1
        self.counters[kind] = value
        return value

    def ts(self, second: int) -> datetime:
        return self.start + timedelta(seconds=second)

    def day(self, second: int) -> date:
        return (self.start + timedelta(seconds=second)).date()

    def between(self, low: int, high: int) -> int:
        return low + int(self.rng.random() * (high - low)) if high > low else low

    def one(self, items: tuple[Any, ...]) -> Any:
        return items[int(self.rng.random() * len(items))]

    def audit(self, created: int, operator: int, *, changed: int | bool | None = True) -> Row:
        """``SYS_CREATION_DATE, SYS_UPDATE_DATE, OPERATOR_ID``; ``changed=True`` draws one."""
        if changed is True:
            changed = None if self.rng.random() < 0.4 else self.between(created, self.span)
        elif changed is False:
            changed = None
        return (
            self.ts(created),
            self.ts(max(changed, created)) if changed is not None else None,
            operator,
        )

    # -- one BAN ---------------------------------------------------------------------------
    def account(self, opened: int, rows: dict[str, list[Row]]) -> None:
        rng = self.rng
        ban = 20_000_000 + self.next("BAN")
        customer_id, customer_type, parent = self._customer(opened, ban, rows)
        roll = rng.random()
        status = "O" if roll < 0.88 else "S" if roll < 0.95 else "C"
        end = self.between(opened + 30 * DAY, self.span) if status == "C" else self.span
        subscribers = [
            self._subscriber(ban, opened, end, status, rows)
            for _ in range(1 + int(rng.random() ** 2 * 4))
        ]
        balance = self._billing(ban, opened, end, subscribers, rows)
        changed = end if status != "O" else True
        rows["BILLING_ACCOUNT"].append((
            ban, customer_id, parent, self._name(customer_type),
            "B" if customer_type == "B" else "I",
            status, self.day(end - 1) if status != "O" else self.day(opened),
            "S" if status == "S" else ("W" if status == "C" and balance > 0 else None),
            1 + int(rng.random() * 28), balance / 100, self.one(("A", "B", "C", "D", "A")),
            "".join(self.one(tuple("abcdefghjkmnpqrstuvwxyz23456789")) for _ in range(8)),
            self.day(opened), *self.audit(opened, self.one(OPERATORS), changed=changed),
        ))  # fmt: skip

    def _name(self, customer_type: str) -> str | None:
        name = people.fake_name(self.rng)
        return f"{name} Corp" if customer_type == "B" and name else name

    def _customer(
        self, opened: int, ban: int, rows: dict[str, list[Row]]
    ) -> tuple[int, str, int | None]:
        rng = self.rng
        last = self._last_customer
        if last is not None and rng.random() < 0.12:
            customer_id, customer_type, first_ban = last
            return customer_id, customer_type, first_ban if customer_type == "B" else None
        customer_id = 5_000_000 + self.next("CUSTOMER")
        customer_type = "B" if rng.random() < 0.1 else "I"
        name = people.fake_name(rng) or ""
        first, _, last_name = name.partition(" ")
        ssn = people.fake_ssn(rng) if customer_type == "I" and rng.random() < 0.95 else None
        birth = None
        if customer_type == "I" and rng.random() < 0.9:
            birth = self.day(opened) - timedelta(days=int(365.25 * (18 + rng.random() * 62)))
        rows["CUSTOMER"].append((
            customer_id, customer_type, first or None, last_name or first or None,
            f"{ssn[:3]}-{ssn[3:5]}-{ssn[5:]}" if ssn else None, birth, self.day(opened),
            *self.audit(opened, self.one(OPERATORS)),
        ))  # fmt: skip
        self._last_customer = (customer_id, customer_type, ban)
        return customer_id, customer_type, None

    def _subscriber(
        self, ban: int, opened: int, end: int, status: str, rows: dict[str, list[Row]]
    ) -> Subscriber:
        rng = self.rng
        serial = self.next("SUBSCRIBER")
        number = f"{AREAS[serial % len(AREAS)]}{2_000_000 + serial:07d}"
        activated = opened if rng.random() < 0.7 else self.between(opened, (opened + end) // 2)
        cancelled = (
            end
            if status == "C"
            else (self.between(activated, end) if rng.random() < 0.06 else None)
        )
        plan = self.one(PRICE_PLANS)
        socs = [(plan[0], plan[1], "P")]
        for feature in rng.sample(FEATURES, int(rng.random() * 3.5)):
            socs.append((feature[0], feature[1], "R"))
        ended: int | bool = cancelled if cancelled is not None else True
        sub_status = "C" if cancelled is not None else ("S" if status == "S" else "A")
        rows["SUBSCRIBER"].append((
            number, ban, sub_status, self.one(MODELS) or None, self.day(activated),
            self.day(cancelled) if cancelled is not None else None,
            *self.audit(activated, self.one(OPERATORS), changed=ended),
        ))  # fmt: skip
        for soc, rate, service_type in socs:
            rows["SERVICE_AGREEMENT"].append((
                number, soc, self.next("SOC_SEQ"), ban, service_type, self.day(activated),
                self.day(cancelled) if cancelled is not None else None, rate / 100,
                "C" if cancelled is not None else "A",
                *self.audit(activated, self.one(OPERATORS), changed=ended),
            ))  # fmt: skip
        return Subscriber(number, activated, cancelled, socs)

    def _billing(
        self,
        ban: int,
        opened: int,
        end: int,
        subscribers: list[Subscriber],
        rows: dict[str, list[Row]],
    ) -> int:
        rng = self.rng
        cycle_day = 1 + int(rng.random() * 28)
        last = self.day(min(end, self.span) - 1)
        dates: list[date] = []
        year, month = last.year, last.month
        while len(dates) < 5 + int(rng.random() * 4):
            bill_day = date(year, month, cycle_day)
            if bill_day <= self.day(opened):
                break
            if bill_day < last:
                dates.append(bill_day)
            year, month = (year, month - 1) if month > 1 else (year - 1, 12)
        dates.reverse()
        balance, period_start = 0, opened
        for seq, bill_day in enumerate(dates, start=1):
            billed = (
                int((datetime.combine(bill_day, datetime.min.time()) - self.start).total_seconds())
                + 7200
            )
            charges = 0
            for sub in subscribers:
                if sub.activated > billed or (
                    sub.cancelled is not None and sub.cancelled <= billed
                ):
                    continue
                recurring = sum(rate for _, rate, _ in sub.socs)
                charges += recurring
                self._charge(
                    ban,
                    sub.number,
                    seq,
                    "R",
                    sub.socs[0][0],
                    billed,
                    recurring,
                    "MONTHLY SERVICE",
                    rows,
                )
                usage = self._usage(ban, sub.number, period_start, billed, rows)
                if usage:
                    charges += usage
                    self._charge(
                        ban, sub.number, seq, "U", None, billed, usage, "USAGE CHARGES", rows
                    )
            tax = charges * 11 // 100
            if tax:
                charges += tax
                self._charge(ban, None, seq, "T", None, billed, tax, "TAXES AND SURCHARGES", rows)
            previous = balance
            balance += charges
            rows["BILL"].append((
                ban, seq, cycle_day, bill_day, bill_day + timedelta(days=20),
                f"{previous / 100:.2f}", f"{charges / 100:.2f}", f"{balance / 100:.2f}",
                *self.audit(billed, BATCH_OPERATOR, changed=False),
            ))  # fmt: skip
            period_end = billed + 28 * DAY if seq < len(dates) else min(end, self.span)
            balance += self._payments(ban, billed, min(period_end, self.span), balance, rows)
            if rng.random() < 0.1:
                balance += self._adjustment(ban, billed, min(period_end, self.span), rows)
            period_start = billed
        return balance

    def _charge(
        self, ban: int, subscriber: str | None, seq: int, kind: str, code: str | None, when: int,
        cents: int, text: str, rows: dict[str, list[Row]],
    ) -> None:  # fmt: skip
        rows["CHARGE"].append((
            self.next("CHARGE"), ban, subscriber, seq, kind, code, self.day(when), cents / 100,
            text,
            *self.audit(when, BATCH_OPERATOR, changed=False),
        ))  # fmt: skip

    def _usage(
        self, ban: int, subscriber: str, start: int, end: int, rows: dict[str, list[Row]]
    ) -> int:
        rng = self.rng
        total = 0
        for _ in range(int(rng.random() * 3)):
            when = self.between(start, end)
            kind = self.one(("V", "V", "S", "D"))
            units = {
                "V": 60 + int(rng.random() * 1200),
                "S": 1,
                "D": 1024 * int(1 + rng.random() * 500),
            }[kind]
            cents = {"V": units // 60 * 10, "S": 25, "D": 0}[kind] if rng.random() < 0.4 else 0
            total += cents
            other = f"{self.one(AREAS)}555{int(rng.random() * 10_000):04d}" if kind != "D" else None
            loaded = min(when + 1800, self.span - 1)
            rows["USAGE"].append((
                self.next("EVENT"), ban, subscriber, kind, self.ts(when), units, other, cents / 100,
                *self.audit(loaded, BATCH_OPERATOR, changed=False),
            ))  # fmt: skip
        return total

    def _payments(
        self, ban: int, billed: int, period_end: int, balance: int, rows: dict[str, list[Row]]
    ) -> int:
        rng = self.rng
        if balance <= 0 or rng.random() > 0.9:
            return 0
        amount = balance if rng.random() < 0.8 else balance * (40 + int(rng.random() * 50)) // 100
        paid = billed + int(3 + rng.random() * 20) * DAY + int(rng.random() * DAY // 2)
        if paid >= period_end:
            return 0
        method = self.one(METHODS)
        backed_out = rng.random() < 0.02
        changed = self.between(paid, min(paid + 10 * DAY, self.span)) if backed_out else False
        rows["PAYMENT"].append((
            self.next("PAYMENT"), ban, self.day(paid), amount / 100, method,
            "B" if backed_out else "A",
            people.fake_card(rng) if method == "CC" else None,
            *self.audit(paid, BATCH_OPERATOR, changed=changed),
        ))  # fmt: skip
        return 0 if backed_out else -amount

    def _adjustment(
        self, ban: int, billed: int, period_end: int, rows: dict[str, list[Row]]
    ) -> int:
        rng = self.rng
        code, sign, typical = self.one(REASONS)
        cents: int = sign * max(100, int(typical * (0.5 + rng.random())))
        when = self.between(billed, period_end - 1)
        rows["ADJUSTMENT"].append((
            self.next("ADJUSTMENT"), ban, self.day(when), cents / 100, code, people.fake_memo(rng),
            *self.audit(when, self.one(OPERATORS)),
        ))  # fmt: skip
        return cents
