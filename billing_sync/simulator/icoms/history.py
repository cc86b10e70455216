"""One ICOMS account's history, drawn from a :class:`random.Random` (no database).

:class:`History` appends rows (tuples in the column order of
:data:`~billing_sync.simulator.icoms.schema.TABLES`) for one account at a time: its premise,
services, equipment, work orders, monthly statements with their ledger lines, payments
(a few reversed), adjustments, usage and collection steps. The ledger is the truth: the
account's ``AR_BALANCE`` is the sum of its ``TRAN_AMT``; each statement's ``AMOUNT_DUE``
is its ``PREV_BALANCE`` plus ``NEW_CHARGES``. Times are seconds since the history's
start, in ICOMS local time.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from billing_sync.simulator import people
from billing_sync.simulator.clock import cyymmdd
from billing_sync.simulator.icoms import reference as ref

Row = tuple[Any, ...]
DAY = 86_400
HISTORY_DAYS = 730
OPEN_ENDED = 9_999_999


@dataclass
class Service:
    offer: ref.ServiceOffer
    occurrence: int
    start: int
    rate_cents: int
    quantity: int
    stop: int | None = None


@dataclass
class Numbers:
    """Next free numbers per site (the biller's control records)."""

    counters: dict[tuple[str, str], int] = field(default_factory=dict)

    def next(self, site: str, kind: str) -> int:
        value = self.counters.get((site, kind), 0) + 1
        self.counters[(site, kind)] = value
        return value


class History:
    """Draws rows account by account; its state carries across chunks."""

    def __init__(self, rng: random.Random, as_of: datetime) -> None:
        self.rng = rng
        self.start = as_of - timedelta(days=HISTORY_DAYS)
        self.span = HISTORY_DAYS * DAY
        self.numbers = Numbers()
        self._midnight_offset = (
            self.start - datetime.combine(self.start, datetime.min.time())
        ).seconds
        self._first_ordinal = self.start.toordinal()
        self._dates: dict[int, int] = {}
        self._runs: dict[tuple[str, int, int], int] = {}
        self._commercial: dict[str, str] = {}

    # -- time --------------------------------------------------------------------------
    def stamp(self, second: int) -> tuple[int, int]:
        """``(CYYMMDD, HHMMSS)`` of a second since the start."""
        day, rest = divmod(second + self._midnight_offset, DAY)
        value = self._dates.get(day)
        if value is None:
            value = self._dates[day] = cyymmdd(date.fromordinal(self._first_ordinal + day))
        hour, rest = divmod(rest, 3600)
        return value, hour * 10_000 + (rest // 60) * 100 + rest % 60

    def day(self, second: int) -> int:
        return self.stamp(second)[0]

    def second_of(self, day: date) -> int:
        return (day.toordinal() - self._first_ordinal) * DAY - self._midnight_offset

    def date_of(self, second: int) -> date:
        return date.fromordinal(self._first_ordinal + (second + self._midnight_offset) // DAY)

    def between(self, low: int, high: int) -> int:
        return low + int(self.rng.random() * (high - low)) if high > low else low

    def audit(
        self, created: int, user: str, *, changed: int | None = None, deleted: bool = False
    ) -> Row:
        """``CRT_DATE, CRT_TIME, CHG_DATE, CHG_TIME, CHG_USER, REC_STATUS``."""
        if changed is None:
            # Most rows were touched again after their insert (a batch job, a CSR).
            changed = created if self.rng.random() < 0.4 else self.between(created, self.span)
        return (
            *self.stamp(created),
            *self.stamp(max(changed, created)),
            user,
            "D" if deleted else "A",
        )

    def one(self, items: tuple[Any, ...]) -> Any:
        return items[int(self.rng.random() * len(items))]

    # -- reference rows ------------------------------------------------------------------
    def reference(self, rows: dict[str, list[Row]]) -> None:
        """``SITE`` and ``SERVICE_CODE`` rows, loaded by the conversion before any account."""
        for site in ref.SITES_INFO:
            rows["SITE"].append((site.site_id, site.name, site.state, "America/Chicago",
                                 *self.audit(0, ref.MIGRATION_USER, changed=0)))  # fmt: skip
            for offer in ref.SERVICES:
                rate = offer.rate_cents + (0 if site.site_id != "005" else -100)
                changed = self.between(0, self.span) if self.rng.random() < 0.3 else 0
                rows["SERVICE_CODE"].append((
                    site.site_id, offer.code, offer.description.encode("cp037"), offer.category,
                    rate, self.day(0) - 30_000, *self.audit(0, ref.MIGRATION_USER, changed=changed),
                ))  # fmt: skip

    # -- one account ---------------------------------------------------------------------
    def account(self, opened: int, rows: dict[str, list[Row]]) -> None:
        rng = self.rng
        site: str = ref.pick_site(rng)
        account_no = f"{self.numbers.next(site, 'ACCOUNT'):08d}"
        kind: str = ref.pick_account_type(rng)
        roll = rng.random()
        status = "A" if roll < 0.88 else "S" if roll < 0.95 else "C"
        end = self.between(opened + 30 * DAY, self.span) if status == "C" else self.span
        premise = self._premise(site, opened, rows)
        services = self._services(opened, end, closed=status == "C")
        self._cust_services(site, account_no, services, rows)
        self._equipment(site, account_no, services, rows)
        self._work_orders(site, account_no, opened, end, services, rows, closed=status == "C")
        balance = self._billing(site, account_no, opened, end, services, rows)
        self._collections(site, account_no, status, balance, end, rows)
        parent = None
        if kind == "C":
            self._commercial[site] = account_no
        elif kind == "B" and rng.random() < 0.3:
            parent = self._commercial.get(site)
        residential = kind == "R"
        ssn = people.fake_ssn(rng) if residential and rng.random() < 0.92 else None
        dob = 0
        if residential and rng.random() < 0.9:
            dob = cyymmdd(
                self.date_of(opened) - timedelta(days=int(365.25 * (18 + rng.random() * 65)))
            )
        changed = (
            end if status == "C" else self.between(max(opened, self.span - 60 * DAY), self.span)
        )
        user = ref.COLLECTIONS_USER if status == "S" else self.one(ref.CSR_USERS)
        rows["ACCOUNT"].append((
            site, account_no, parent, premise, people.fake_name(rng), kind, ssn, dob, status,
            1 + int(rng.random() * 28), f"{balance / 100:.2f}", ref.pick_credit(rng),
            f"{int(rng.random() * 10_000):04d}" if rng.random() < 0.85 else None,
            self.day(opened),
            *self.audit(opened, user, changed=changed,
                        deleted=status == "C" and rng.random() < 0.2),
        ))  # fmt: skip

    def _premise(self, site: str, opened: int, rows: dict[str, list[Row]]) -> str:
        rng = self.rng
        info = ref.SITES_INFO[ref.SITES.index(site)]
        premise_id = ""
        # Homes passed outnumber subscribers: some premises have no account.
        for _ in range(2 if rng.random() < 0.15 else 1):
            premise_id = f"P{self.numbers.next(site, 'PREMISE'):07d}"
            street = self.one(("MAIN ST", "OAK AVE", "RUE ST-ANDRÉ", "PEÑA BLVD", "CAÑON DR",
                               "ELM ST", "LAKEVIEW DR", "MÜLLER LN"))  # fmt: skip
            address = f"{int(rng.random() * 9000) + 100} {street}"
            if rng.random() < 0.25:
                address += f" APT {int(rng.random() * 400) + 1}"
            rows["PREMISE"].append((
                site, premise_id, address.encode("latin-1"), self.one(info.cities), info.state,
                f"{75000 + int(rng.random() * 5000):05d}", ref.pick_dwelling(rng),
                f"N{int(rng.random() * 900) + 100}{self.one(('A', 'B', 'C'))}",
                *self.audit(opened, ref.MIGRATION_USER),
            ))  # fmt: skip
        return premise_id

    def _services(self, opened: int, end: int, *, closed: bool) -> list[Service]:
        rng = self.rng
        count = 1 + int(rng.random() * 4.6)
        services: list[Service] = []
        latest: dict[str, Service] = {}
        for index in range(count):
            offer: ref.ServiceOffer = ref.pick_service(rng)
            start = opened if index == 0 else self.between(opened, (opened + end) // 2)
            previous = latest.get(offer.code)
            if previous is not None:
                start = min(max(start, previous.start + DAY), end - 1)
                previous.stop = min(previous.stop or start, start)
            rate = offer.rate_cents if rng.random() < 0.8 else offer.rate_cents * 4 // 5
            service = Service(offer, previous.occurrence + 1 if previous else 1, start, rate,
                              1 + int(rng.random() * offer.max_quantity))  # fmt: skip
            if closed:
                service.stop = max(end, start)
            elif rng.random() < 0.08:
                service.stop = self.between(start, end)
            latest[offer.code] = service
            services.append(service)
        return services

    def _cust_services(
        self, site: str, account_no: str, services: list[Service], rows: dict[str, list[Row]]
    ) -> None:
        for service in services:
            stopped = service.stop is not None
            rows["CUST_SERVICE"].append((
                site, account_no, service.offer.code, service.occurrence, self.day(service.start),
                self.day(service.stop) if service.stop is not None else OPEN_ENDED,
                f"{service.rate_cents / 100:.2f}", service.quantity, "D" if stopped else "A",
                *self.audit(service.start, self.one(ref.CSR_USERS), changed=service.stop,
                            deleted=stopped and self.rng.random() < 0.1),
            ))  # fmt: skip

    def _equipment(
        self, site: str, account_no: str, services: list[Service], rows: dict[str, list[Row]]
    ) -> None:
        rng = self.rng
        for service in services:
            kind = service.offer.equipment
            for _ in range(service.quantity if kind else 0):
                removed = service.stop
                rows["EQUIPMENT"].append((
                    site, ref.serial_number(rng, kind), account_no, kind,
                    ref.mac_address(rng) if kind in ("MDM", "EMTA") else None,
                    self.one(ref.EQUIPMENT_MODELS[kind]), "R" if removed is not None else "I",
                    self.day(service.start), self.day(removed) if removed is not None else 0,
                    *self.audit(service.start, ref.DISPATCH_USER, changed=removed),
                ))  # fmt: skip
        if rng.random() < 0.3:  # stock in the site's warehouse
            kind = self.one(("STB", "MDM", "EMTA", "DVR"))
            received = self.between(0, self.span)
            rows["EQUIPMENT"].append((
                site, ref.serial_number(rng, kind), None, kind,
                ref.mac_address(rng) if kind in ("MDM", "EMTA") else None,
                self.one(ref.EQUIPMENT_MODELS[kind]), "W", 0, 0,
                *self.audit(received, ref.DISPATCH_USER, changed=received),
            ))  # fmt: skip

    def _work_orders(
        self, site: str, account_no: str, opened: int, end: int, services: list[Service],
        rows: dict[str, list[Row]], *, closed: bool,
    ) -> None:  # fmt: skip
        rng = self.rng
        orders: list[tuple[str, int, list[Service]]] = [
            ("IN", opened, [s for s in services if s.start == opened])
        ]
        orders += [("CH", s.start, [s]) for s in services if s.start != opened]
        if rng.random() < 0.2:
            orders.append(("TC", self.between(opened, end), []))
        if closed:
            orders.append(("DC", end, [s for s in services if s.stop == end]))
        for wo_type, created, lines in orders:
            number = self.numbers.next(site, "WO")
            scheduled = created + int(1 + rng.random() * 6) * DAY
            done = scheduled < self.span and rng.random() < 0.97
            status = "C" if done else ("X" if scheduled < self.span - 10 * DAY else "S")
            remark = self.one(("", "CALL AHEAD", "GATE CODE AT OFFICE", "DOG IN YARD",
                               "CUSTOMER REQUESTS AM SLOT", "CHECK SIGNAL AT TAP"))  # fmt: skip
            rows["WORK_ORDER"].append((
                site, number, account_no, wo_type, status, self.day(min(scheduled, self.span - 1)),
                self.day(scheduled) if done else 0, self.one(ref.TECHS) or None,
                remark.encode("cp037") if remark else None,
                *self.audit(created, ref.DISPATCH_USER, changed=min(scheduled, self.span - 1)),
            ))  # fmt: skip
            for line_no, service in enumerate(lines or [None], start=1):
                action = {"IN": "A", "CH": "A", "DC": "R", "TC": "S"}[wo_type]
                code = service.offer.code if service else None
                rows["WO_LINE"].append((
                    site, number, line_no, code, action, None,
                    4999 if wo_type == "IN" and line_no == 1 and rng.random() < 0.5 else 0,
                    *self.audit(created, ref.DISPATCH_USER, changed=created),
                ))  # fmt: skip

    def _statement_dates(self, cycle: int, opened: int, end: int) -> list[date]:
        last = self.date_of(min(end, self.span - 1))
        first = self.date_of(opened)
        year, month = last.year, last.month
        dates: list[date] = []
        wanted = 5 + int(self.rng.random() * 4)
        while len(dates) < wanted:
            day = date(year, month, cycle)
            if day <= first:
                break
            if day < last:
                dates.append(day)
            year, month = (year, month - 1) if month > 1 else (year - 1, 12)
        dates.reverse()
        return dates

    def _ledger(
        self, site: str, account_no: str, second: int, kind: str, cents: int,
        rows: dict[str, list[Row]], *, stmt_no: int = 0, code: str | None = None,
        text: str = "", user: str = ref.STATEMENT_USER,
    ) -> None:  # fmt: skip
        rows["LEDGER"].append((
            site, self.numbers.next(site, "TRAN"), account_no, stmt_no, kind, code,
            self.day(second), cents, text or None, *self.audit(second, user, changed=second),
        ))  # fmt: skip

    def _billing(
        self, site: str, account_no: str, opened: int, end: int, services: list[Service],
        rows: dict[str, list[Row]],
    ) -> int:  # fmt: skip
        """Statements, ledger, payments, adjustments and usage; returns the balance."""
        rng = self.rng
        cycle = 1 + int(rng.random() * 28)
        balance = 0
        dates = self._statement_dates(cycle, opened, end)
        video = any(s.offer.category == "C" for s in services)
        phone = any(s.offer.category == "T" for s in services)
        period_start = opened
        for stmt_no, day in enumerate(dates, start=1):
            run_key = (site, cycle, day.toordinal())
            if run_key not in self._runs:
                self._runs[run_key] = self.second_of(day) + self.between(3 * 3600, 5 * 3600)
            billed = self._runs[run_key]
            usage = self._usage(site, account_no, period_start, billed, video, phone, rows)
            previous, charges = balance, 0
            for service in services:
                if service.start <= billed and (service.stop is None or service.stop > billed):
                    amount = service.rate_cents * service.quantity
                    charges += amount
                    self._ledger(site, account_no, billed, "CHG", amount, rows, stmt_no=stmt_no,
                                 code=service.offer.code,
                                 text=service.offer.description)  # fmt: skip
            if usage:
                charges += usage
                self._ledger(site, account_no, billed, "USG", usage, rows, stmt_no=stmt_no,
                             text="PAY PER VIEW AND CALLS")  # fmt: skip
            tax = charges * 75 // 1000
            if tax:
                charges += tax
                self._ledger(site, account_no, billed, "TAX", tax, rows, stmt_no=stmt_no,
                             text="FRANCHISE AND SALES TAX")  # fmt: skip
            balance += charges
            due = self.day(billed + 21 * DAY)
            rows["STATEMENT"].append((
                site, account_no, stmt_no, self.day(billed), due, f"{previous / 100:.2f}",
                f"{charges / 100:.2f}", f"{balance / 100:.2f}",
                *self.audit(billed, ref.STATEMENT_USER),
            ))  # fmt: skip
            period_end = (
                self.second_of(dates[stmt_no]) if stmt_no < len(dates) else min(end, self.span)
            )
            balance += self._payments(site, account_no, billed, period_end, balance, rows)
            if rng.random() < 0.1:
                balance += self._adjustment(site, account_no, billed, period_end, rows)
            period_start = billed
        return balance

    def _payments(
        self, site: str, account_no: str, billed: int, period_end: int, balance: int,
        rows: dict[str, list[Row]],
    ) -> int:  # fmt: skip
        """Payments of one period; returns their effect on the balance (negative)."""
        rng = self.rng
        roll = rng.random()
        amounts: list[int] = []
        if balance > 0 and roll < 0.80:
            if rng.random() < 0.6 and balance > 200:
                part = balance * (30 + int(rng.random() * 40)) // 100
                amounts += [part, balance - part]
            else:
                amounts.append(balance)
        elif balance > 0 and roll < 0.92:
            amounts.append(balance * (40 + int(rng.random() * 50)) // 100)
        effect = 0
        for amount in amounts:
            paid = billed + int(2 + rng.random() * 23) * DAY + int(rng.random() * DAY // 2)
            if paid >= period_end:
                continue
            number = self.numbers.next(site, "PAYMENT")
            method: str = ref.pick_method(rng)
            card = people.fake_card(rng) if method == "CC" else None
            reversed_ = rng.random() < 0.02
            user = self.one(ref.PAYMENT_USERS)
            self._ledger(site, account_no, paid, "PAY", -amount, rows, text="PAYMENT - THANK YOU",
                         user=user)  # fmt: skip
            effect -= amount
            changed = None
            if reversed_:
                changed = self.between(paid, min(paid + 10 * DAY, self.span))
                self._ledger(site, account_no, changed, "PAY", amount, rows,
                             text="PAYMENT REVERSAL",
                             user=user)  # fmt: skip
                effect += amount
            rows["PAYMENT"].append((
                site, number, account_no, self.day(paid), f"{amount / 100:.2f}", method,
                "R" if reversed_ else "P", card,
                f"{1 + int(rng.random() * 12):02d}{27 + int(rng.random() * 5)}" if card else None,
                f"{int(rng.random() * 1000):03d}" if card and rng.random() < 0.7 else None,
                *self.audit(paid, user, changed=changed),
            ))  # fmt: skip
        return effect

    def _adjustment(
        self, site: str, account_no: str, billed: int, period_end: int, rows: dict[str, list[Row]]
    ) -> int:
        rng = self.rng
        code, sign, typical = self.one(ref.ADJ_REASONS)
        cents: int = sign * max(100, int(typical * (0.5 + rng.random())))
        when = self.between(billed, min(period_end, self.span - 1))
        user = self.one(ref.CSR_USERS)
        rows["ADJUSTMENT"].append((
            site, self.numbers.next(site, "ADJ"), account_no, self.day(when), cents, code,
            people.fake_memo(rng), *self.audit(when, user),
        ))  # fmt: skip
        self._ledger(
            site, account_no, when, "ADJ", cents, rows, text=f"ADJUSTMENT {code}", user=user
        )
        return cents

    def _usage(
        self, site: str, account_no: str, start: int, end: int, video: bool, phone: bool,
        rows: dict[str, list[Row]],
    ) -> int:  # fmt: skip
        """Usage events of one period; returns their charges."""
        rng = self.rng
        total = 0
        events = (int(rng.random() * 2.2) if video else 0) + (
            int(rng.random() * 2.5) if phone else 0
        )
        for _ in range(events):
            when = self.between(start, end)
            if video and (not phone or rng.random() < 0.5):
                kind = "V" if rng.random() < 0.7 else "P"
                duration = 5400 + int(rng.random() * 3600)
                text = self.one(ref.VOD_TITLES)
                cents = (
                    599 if kind == "V" else 5999 if "FIGHT" in text or "BOXING" in text else 1499
                )
            else:
                kind, duration = "C", 30 + int(rng.random() * 1800)
                text = ref.phone_number(rng)
                cents = duration // 60 * 5
            total += cents
            date_value, time_value = self.stamp(when)
            loaded = min(when + 3600, self.span - 1)  # the usage feed loads hourly
            rows["USAGE_EVENT"].append((
                site, self.numbers.next(site, "EVENT"), account_no, kind, date_value, time_value,
                duration, text, cents, *self.audit(loaded, ref.USAGE_USER, changed=loaded),
            ))  # fmt: skip
        return total

    def _collections(
        self, site: str, account_no: str, status: str, balance: int, end: int,
        rows: dict[str, list[Row]],
    ) -> None:  # fmt: skip
        rng = self.rng
        if status == "S":
            steps = list(ref.COLL_STEPS)
        elif status == "C" and balance > 0:
            steps = [*ref.COLL_STEPS, "DC"]
        elif balance > 0 and rng.random() < 0.1:
            steps = ["L1"] if rng.random() < 0.5 else ["L1", "CU"]
        else:
            return
        when = max(0, min(end, self.span) - 45 * DAY)
        for seq, step in enumerate(steps, start=1):
            when = min(when + int(5 + rng.random() * 8) * DAY, self.span - 1)
            rows["COLL_ACTIVITY"].append((
                site, account_no, seq, step, self.day(when), f"{max(balance, 0) / 100:.2f}",
                *self.audit(when, ref.COLLECTIONS_USER, changed=when),
            ))  # fmt: skip
