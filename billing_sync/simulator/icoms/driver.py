"""The ICOMS side of the change workload: what it knows of the source and how it fills in
each operation's parameters (:mod:`.operations` holds the SQL)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import psycopg
from psycopg import sql

from billing_sync.simulator import people
from billing_sync.simulator.icoms import reference as ref
from billing_sync.simulator.icoms.bad_rows import BAD_KINDS, bad_row_params, bad_row_statements
from billing_sync.simulator.icoms.operations import SPECS, operation_statements
from billing_sync.simulator.mix import OperationSpec

RECENT_PAYMENTS = 1_000
"""Reversals pick among the last this many payments of a site (returned cheques)."""


@dataclass
class _State:
    accounts: dict[str, int] = field(default_factory=dict)
    statement_runs: dict[str, tuple[int, str]] = field(default_factory=dict)


class IcomsDriver:
    """Parameters of ICOMS operations, drawn from ``rng`` and the known account numbers.

    Parameters
    ----------
    schema
        Schema of the biller's tables.
    rng
        The workload's generator.
    statement_batch
        Most accounts in one bill-run transaction.
    """

    system = "icoms"
    specs: tuple[OperationSpec, ...] = SPECS
    bad_kinds: tuple[str, ...] = BAD_KINDS

    def __init__(self, *, schema: str, rng: random.Random, statement_batch: int) -> None:
        self.schema = schema
        self.rng = rng
        self.statement_batch = statement_batch
        self.state = _State()

    def statements(self) -> dict[str, str]:
        return operation_statements(self.schema)

    def bad_statements(self) -> dict[str, str]:
        return bad_row_statements(self.schema)

    def load_state(self, conn: psycopg.Connection[Any]) -> None:
        """Read the highest account number of each site."""
        rows = conn.execute(
            sql.SQL('SELECT "SITE_ID", max(rtrim("ACCOUNT_NO")) FROM {} GROUP BY 1').format(
                sql.Identifier(self.schema, "ACCOUNT")
            )
        ).fetchall()
        found = {site.strip(): int(top) for site, top in rows if top and top.isdigit()}
        self.state.accounts = {site: found.get(site, 0) for site in ref.SITES}

    # -- drawing ----------------------------------------------------------------------
    def any_account(self) -> tuple[str, str] | None:
        """A site (by size) and an account number in use there."""
        sizes = self.state.accounts
        total = sum(sizes.values())
        if total == 0:
            return None
        point = self.rng.random() * total
        for site, size in sizes.items():
            if point < size:
                return site, f"{1 + int(self.rng.random() * size):08d}"
            point -= size
        return None

    def plan(self, name: str) -> dict[str, Any] | None:
        """Parameters of one run of operation ``name``, or None when it cannot run yet."""
        rng = self.rng
        if name == "open_account":
            return self._open_account()
        if name == "issue_statements":
            return self._statements()
        if name in ("reverse_payment", "purge_usage", "rate_change", "complete_work_order"):
            site = ref.pick_site(rng)
            params: dict[str, Any] = {"site": site, "user": rng.choice(ref.CSR_USERS)}
            if name == "reverse_payment":
                params.update(
                    back=int(rng.random() * RECENT_PAYMENTS), user=rng.choice(ref.PAYMENT_USERS)
                )
            elif name == "purge_usage":
                params.update(fraction=rng.random() / 2, user=ref.USAGE_USER)
            elif name == "rate_change":
                params.update(
                    # Mostly increases, sometimes a promotion; clamped to $1.00-$999.99 in
                    # SQL, so hours of changes never push a rate past what billers charge.
                    code=ref.pick_service(rng).code,
                    factor=Decimal(rng.randint(95, 106)) / 100,
                )
            else:
                params.update(tech=rng.choice(ref.TECHS[:-1]), user=ref.DISPATCH_USER)
            return params
        picked = self.any_account()
        if picked is None:
            return None
        site, account = picked
        params = {"site": site, "account": account, "user": rng.choice(ref.CSR_USERS)}
        if name == "post_payment":
            method = ref.pick_method(rng)
            card = people.fake_card(rng) if method == "CC" else None
            params.update(
                share=Decimal(1) if rng.random() < 0.7 else Decimal(rng.randint(20, 90)) / 100,
                amount=Decimal(rng.randint(2000, 12000)) / 100,
                method=method,
                card=card,
                expiry=f"{rng.randint(1, 12):02d}{rng.randint(27, 31)}" if card else None,
                cvv=f"{rng.randint(0, 999):03d}" if card else None,
                user=rng.choice(ref.PAYMENT_USERS),
            )
        elif name == "post_adjustment":
            reason, sign, typical = rng.choice(ref.ADJ_REASONS)
            params.update(cents=sign * max(100, int(typical * (0.5 + rng.random()))), reason=reason,
                          memo=people.fake_memo(rng))  # fmt: skip
        elif name == "usage_burst":
            params.update(self._usage(rng.randint(3, 12)), user=ref.USAGE_USER)
        elif name == "add_service":
            offer = ref.pick_service(rng)
            rate = offer.rate_cents if rng.random() < 0.8 else offer.rate_cents * 4 // 5
            params.update(code=offer.code, rate=Decimal(rate) / 100,
                          quantity=rng.randint(1, offer.max_quantity))  # fmt: skip
        elif name == "change_service":
            reprice = rng.random() < 0.6
            params.update(
                pick=rng.random(),
                factor=Decimal(rng.randint(9000, 11500)) / 10000 if reprice else Decimal(1),
                delta=0 if reprice else rng.choice((-1, 1)),
                multi_unit=list(ref.MULTI_UNIT),
            )
        elif name == "disconnect_service":
            params.update(pick=rng.random(), rec_status="D" if rng.random() < 0.1 else "A")
        elif name == "trouble_call":
            params.update(remarks=rng.choice(("NO SIGNAL", "SLOW INTERNET", "NO DIAL TONE"))
                          .encode("cp037"), user=ref.DISPATCH_USER)  # fmt: skip
        elif name == "swap_equipment":
            params.update(serial=ref.serial_number(rng, "STB"), mac=ref.mac_address(rng),
                          user=ref.DISPATCH_USER)  # fmt: skip
        elif name in ("collections_step", "restore_account"):
            params["user"] = ref.COLLECTIONS_USER
        elif name == "update_account_profile":
            params.update(name=people.fake_name(rng), credit=ref.pick_credit(rng),
                          pin=f"{rng.randint(0, 9999):04d}" if rng.random() < 0.3
                          else None)  # fmt: skip
        elif name == "update_premise":
            params["node"] = f"N{rng.randint(100, 999)}{rng.choice('ABCD')}"
        return params

    def _usage(self, count: int) -> dict[str, list[Any]]:
        rng = self.rng
        kinds, agos, durations, texts, cents = [], [], [], [], []
        for _ in range(count):
            kind = rng.choice("VVPC")
            kinds.append(kind)
            agos.append(rng.randint(60, 3 * 3600))
            if kind == "C":
                durations.append(rng.randint(30, 1800))
                texts.append(ref.phone_number(rng))
                cents.append(durations[-1] // 60 * 5)
            else:
                durations.append(rng.randint(5400, 9000))
                texts.append(rng.choice(ref.VOD_TITLES))
                cents.append(599 if kind == "V" else 1499)
        return {
            "kinds": kinds,
            "agos": agos,
            "durations": durations,
            "texts": texts,
            "cents": cents,
        }

    def _open_account(self) -> dict[str, Any]:
        rng = self.rng
        site_info = rng.choices(ref.SITES_INFO, weights=ref.SITE_WEIGHTS)[0]
        codes: list[str] = []
        occurrences: list[int] = []
        rates: list[Decimal] = []
        quantities: list[int] = []
        serials: list[str | None] = []
        kinds: list[str | None] = []
        macs: list[str | None] = []
        models: list[str | None] = []
        charges: list[int] = []
        for index in range(rng.randint(1, 4)):
            offer = ref.pick_service(rng)
            occurrences.append(1 + codes.count(offer.code))
            codes.append(offer.code)
            rates.append(Decimal(offer.rate_cents) / 100)
            quantities.append(rng.randint(1, offer.max_quantity))
            kind = offer.equipment or None
            kinds.append(kind)
            serials.append(ref.serial_number(rng, kind) if kind else None)
            macs.append(ref.mac_address(rng) if kind in ("MDM", "EMTA") else None)
            models.append(rng.choice(ref.EQUIPMENT_MODELS[kind]) if kind else None)
            charges.append(4999 if index == 0 and rng.random() < 0.5 else 0)
        kind_of_account = ref.pick_account_type(rng)
        residential = kind_of_account == "R"
        ssn = people.fake_ssn(rng) if residential and rng.random() < 0.9 else None
        return {
            "site": site_info.site_id, "name": people.fake_name(rng), "kind": kind_of_account,
            "ssn": ssn, "dob": (rng.randint(45, 106) * 10_000 + rng.randint(1, 12) * 100
                                + rng.randint(1, 28)) if residential else 0,
            "cycle": rng.randint(1, 28), "credit": ref.pick_credit(rng),
            "pin": f"{rng.randint(0, 9999):04d}", "address": f"{rng.randint(100, 9999)} "
            f"{rng.choice(('NEW ST', 'CAÑON DR', 'RUE ST-ANDRÉ', 'PINE CT'))}".encode("latin-1"),
            "city": rng.choice(site_info.cities), "state": site_info.state,
            "zip": f"{rng.randint(75000, 79999)}", "dwelling": ref.pick_dwelling(rng),
            "node": f"N{rng.randint(100, 999)}A", "codes": codes, "occurrences": occurrences,
            "rates": rates, "quantities": quantities, "serials": serials, "kinds": kinds,
            "macs": macs, "models": models, "charges": charges,
            "tech": rng.choice(ref.TECHS[:-1]), "remarks": "NEW CONNECT".encode("cp037"),
            "user": rng.choice(ref.CSR_USERS),
        }  # fmt: skip

    def _statements(self) -> dict[str, Any] | None:
        rng = self.rng
        sizes = {site: size for site, size in self.state.accounts.items() if size}
        if not sizes:
            return None
        site = rng.choices(list(sizes), weights=list(sizes.values()))[0]
        cycle, after = self.state.statement_runs.get(site, (rng.randint(1, 28), ""))
        return {"site": site, "cycle": cycle, "after": after, "batch": self.statement_batch,
                "user": ref.STATEMENT_USER}  # fmt: skip

    def after(self, name: str, params: dict[str, Any], row: Sequence[Any]) -> None:
        """Learn from what an operation returned (new account numbers, bill-run progress)."""
        if name == "open_account" and row[1] and row[-1]:
            site = params["site"]
            self.state.accounts[site] = max(self.state.accounts.get(site, 0), int(row[-1]))
        elif name == "issue_statements":
            issued, last = row[0], row[-1]
            site, cycle = params["site"], params["cycle"]
            if last is None or issued < params["batch"]:
                self.state.statement_runs[site] = (cycle % 28 + 1, "")  # next cycle
            else:
                self.state.statement_runs[site] = (cycle, last)

    def bad_row(self, kind: str) -> tuple[dict[str, Any], str] | None:
        """Parameters of one bad row of ``kind`` and the table it writes."""
        picked = self.any_account()
        if picked is None:
            return None
        site, account = picked
        return bad_row_params(kind, self.rng, site=site, account=account,
                              next_account=self.state.accounts.get(site, 0)
                              + self.rng.randint(1, 3))  # fmt: skip
