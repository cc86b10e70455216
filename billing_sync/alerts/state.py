"""Deduplication: which conditions fire and which resolve, given what was sent (pure)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from billing_sync.alerts.conditions import Condition


@dataclass
class AlertState:
    """Conditions alerted on and not yet resolved: key -> what was said when it fired.

    Kept between evaluations (a sensor's cursor) as JSON.
    """

    firing: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({"firing": self.firing}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None) -> AlertState:
        if not text:
            return cls()
        try:
            raw = json.loads(text)
        except ValueError:
            return cls()
        firing = raw.get("firing") if isinstance(raw, dict) else None
        return cls(dict(firing) if isinstance(firing, dict) else {})

    def changes(
        self, active: Iterable[Condition], *, kinds: Iterable[str]
    ) -> tuple[list[Condition], list[tuple[str, dict[str, Any]]]]:
        """Conditions to fire (active, not firing yet) and keys to resolve (firing, of a
        kind evaluated now, no longer active). Nothing is changed here."""
        now = {condition.key: condition for condition in active}
        evaluated = set(kinds)
        fire = [condition for key, condition in now.items() if key not in self.firing]
        resolve = [
            (key, sent)
            for key, sent in self.firing.items()
            if key not in now and sent.get("kind") in evaluated
        ]
        return fire, resolve

    def fired(self, condition: Condition, at: float) -> None:
        self.firing[condition.key] = {
            "kind": condition.kind,
            "subject": condition.subject,
            "summary": condition.summary,
            "severity": condition.severity,
            "since": at,
        }

    def resolved(self, key: str) -> None:
        self.firing.pop(key, None)
