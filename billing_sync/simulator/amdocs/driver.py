"""The Amdocs side of the change workload: what it knows of the source and how it fills in
each operation's parameters (:mod:`.operations` holds the SQL)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from billing_sync.simulator import people
from billing_sync.simulator.amdocs import history as hist
from billing_sync.simulator.amdocs.operations import SPECS, operation_statements
from billing_sync.simulator.mix import OperationSpec

FIRST_BAN = 20_000_001
RECENT_PAYMENTS = 2_000


@dataclass
class _State:
    top_ban: int = FIRST_BAN - 1
    subscribers: int = 0
    bill_run: tuple[int, int] = (1, 0)
    passwords: list[str] = field(default_factory=list)


class AmdocsDriver:
    """Parameters of Amdocs operations, drawn from ``rng`` and the known BANs."""

    system = "amdocs"
    specs: tuple[OperationSpec, ...] = SPECS
    bad_kinds: tuple[str, ...] = ()

    def __init__(self, *, schema: str, rng: random.Random, statement_batch: int) -> None:
        self.schema = schema
        self.rng = rng
        self.statement_batch = statement_batch
        self.state = _State()

    def statements(self) -> dict[str, str]:
        return operation_statements(self.schema)

    def bad_statements(self) -> dict[str, str]:
        return {}

    def bad_row(self, kind: str) -> tuple[dict[str, Any], str] | None:
        return None

    def load_state(self, conn: psycopg.Connection[Any]) -> None:
        """Read the highest BAN and subscriber serial in use."""
        row = conn.execute(
            sql.SQL('SELECT max("BAN") FROM {}').format(
                sql.Identifier(self.schema, "BILLING_ACCOUNT")
            )
        ).fetchone()
        self.state.top_ban = int(row[0]) if row and row[0] is not None else FIRST_BAN - 1
        row = conn.execute(
            sql.SQL('SELECT max(substr("SUBSCRIBER_NO", 4)::int) FROM {}').format(
                sql.Identifier(self.schema, "SUBSCRIBER")
            )
        ).fetchone()
        self.state.subscribers = int(row[0]) - 2_000_000 if row and row[0] is not None else 0

    def any_ban(self) -> int | None:
        top = self.state.top_ban
        if top < FIRST_BAN:
            return None
        return FIRST_BAN + int(self.rng.random() * (top - FIRST_BAN + 1))

    def _number(self) -> str:
        self.state.subscribers += 1
        serial = self.state.subscribers
        return f"{hist.AREAS[serial % len(hist.AREAS)]}{2_000_000 + serial:07d}"

    def _socs(self, *, plan: bool) -> dict[str, list[Any]]:
        rng = self.rng
        chosen = [(*rng.choice(hist.PRICE_PLANS), "P")] if plan else []
        for soc, rate in rng.sample(hist.FEATURES, rng.randint(0 if plan else 1, 2)):
            chosen.append((soc, rate, "R"))
        return {"socs": [c[0] for c in chosen], "kinds": [c[2] for c in chosen],
                "rates": [c[1] / 100 for c in chosen]}  # fmt: skip

    def plan(self, name: str) -> dict[str, Any] | None:
        """Parameters of one run of operation ``name``, or None when it cannot run yet."""
        rng = self.rng
        operator = rng.choice(hist.OPERATORS)
        if name == "open_account":
            kind = "B" if rng.random() < 0.1 else "I"
            full = people.fake_name(rng) or ""
            first, _, last = full.partition(" ")
            ssn = people.fake_ssn(rng) if kind == "I" else None
            return {
                "type": kind, "first": first or None, "last": last or first or None,
                "ssn": f"{ssn[:3]}-{ssn[3:5]}-{ssn[5:]}" if ssn else None,
                "birth": f"{rng.randint(1945, 2006)}-{rng.randint(1, 12):02d}-"
                f"{rng.randint(1, 28):02d}"
                if kind == "I" else None,
                "name": full or None, "cycle": rng.randint(1, 28), "credit": rng.choice("ABCD"),
                "password": self._password(), "number": self._number(),
                "model": rng.choice(hist.MODELS) or None, "operator": operator,
                **self._socs(plan=True),
            }  # fmt: skip
        if name == "bill_run":
            cycle, after = self.state.bill_run
            return {"cycle": cycle, "after": after, "batch": self.statement_batch,
                    "operator": hist.BATCH_OPERATOR}  # fmt: skip
        if name == "backout_payment":
            return {"back": int(rng.random() * RECENT_PAYMENTS), "operator": hist.BATCH_OPERATOR}
        if name == "delete_usage":
            return {"fraction": rng.random() / 2, "operator": hist.BATCH_OPERATOR}
        ban = self.any_ban()
        if ban is None:
            return None
        params: dict[str, Any] = {"ban": ban, "operator": operator}
        if name == "post_payment":
            method = rng.choice(hist.METHODS)
            params.update(share=1.0 if rng.random() < 0.75 else rng.randint(20, 90) / 100,
                          amount=rng.randint(2000, 15000) / 100, method=method,
                          card=people.fake_card(rng) if method == "CC" else None,
                          operator=hist.BATCH_OPERATOR)  # fmt: skip
        elif name == "post_adjustment":
            reason, sign, typical = rng.choice(hist.REASONS)
            params.update(amount=sign * max(100, int(typical * (0.5 + rng.random()))) / 100,
                          reason=reason, memo=people.fake_memo(rng))  # fmt: skip
        elif name == "usage_burst":
            count = rng.randint(3, 12)
            kinds = [rng.choice("VVSD") for _ in range(count)]
            params.update(
                kinds=kinds,
                agos=[rng.randint(30, 3600) for _ in kinds],
                units=[{"V": rng.randint(10, 1800), "S": 1}.get(k, rng.randint(1024, 500_000))
                       for k in kinds],
                others=[None if k == "D" else self._phone() for k in kinds],
                charges=[rng.choice((0.0, 0.0, 0.1, 0.25, 1.5)) for _ in kinds],
                operator=hist.BATCH_OPERATOR,
            )  # fmt: skip
        elif name == "add_soc":
            params.update(self._socs(plan=False))
        elif name == "add_subscriber":
            params.update(number=self._number(), model=rng.choice(hist.MODELS) or None,
                          **self._socs(plan=True))  # fmt: skip
        elif name == "update_customer":
            params["last"] = (people.fake_name(rng) or "").partition(" ")[2] or None
        elif name == "change_password":
            params["password"] = self._password()
        return params

    def _phone(self) -> str:
        return f"{self.rng.choice(hist.AREAS)}555{self.rng.randint(0, 9999):04d}"

    def _password(self) -> str:
        return "".join(self.rng.choice("abcdefghjkmnpqrstuvwxyz23456789") for _ in range(8))

    def after(self, name: str, params: dict[str, Any], row: Sequence[Any]) -> None:
        """Learn from what an operation returned (new BANs, bill-run progress)."""
        if name == "open_account" and row[-1] is not None:
            self.state.top_ban = max(self.state.top_ban, int(row[-1]))
        elif name == "bill_run":
            issued, last = row[0], row[-1]
            cycle = params["cycle"]
            if last is None or issued < params["batch"]:
                self.state.bill_run = (cycle % 28 + 1, 0)
            else:
                self.state.bill_run = (cycle, int(last))
