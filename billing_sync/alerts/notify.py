"""One evaluation: fire new conditions, resolve cleared ones, remember what was sent."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from billing_sync.alerts import payload
from billing_sync.alerts.conditions import Condition
from billing_sync.alerts.state import AlertState
from billing_sync.alerts.webhook import post_json
from billing_sync.config import AlertSettings

log = logging.getLogger(__name__)

Poster = Callable[[str, dict[str, Any]], bool]


@dataclass
class Notification:
    """What one evaluation sent, and the state to keep for the next."""

    state: AlertState
    sent: list[dict[str, Any]] = field(default_factory=list)
    failed: int = 0
    #: Messages recorded in the log only, because no webhook is configured.
    unsent: list[dict[str, Any]] = field(default_factory=list)

    def summary(self, active: int) -> str:
        """One line for the sensor's tick: what was sent, and what was not and why."""
        text = f"{active} conditions active, {len(self.sent)} messages sent"
        if self.unsent:
            text += f", {len(self.unsent)} not sent: no webhook configured (logged only)"
        if self.failed:
            text += f", {self.failed} failed (retried next tick)"
        return text


def notify(
    state: AlertState,
    active: Iterable[Condition],
    *,
    kinds: Iterable[str],
    settings: AlertSettings,
    now: float | None = None,
    post: Poster | None = None,
) -> Notification:
    """Fire each active condition not firing yet and resolve each firing one of ``kinds``
    that is gone. A POST that fails leaves its condition as it was, so the next evaluation
    tries again; without a webhook, alerts are only logged."""
    at = time.time() if now is None else now
    url = settings.webhook_url

    result = Notification(state)
    # Without a webhook the log is the only record: it says so, and the state still moves
    # so that each condition is logged once while it lasts.
    unsent = "" if url is not None else " (not sent: no webhook configured)"

    def send(body: dict[str, Any]) -> bool:
        if url is None:
            result.unsent.append(body)
            return True
        delivered = post(url, body) if post is not None else (
            post_json(url, body, timeout=settings.timeout_seconds)
        )  # fmt: skip
        if delivered:
            result.sent.append(body)
        else:
            result.failed += 1
        return delivered

    fire, resolve = state.changes(active, kinds=kinds)
    for condition in fire:
        log.warning("alert%s: %s", unsent, condition.summary)
        if send(payload.firing(condition, at=at, fmt=settings.format)):
            state.fired(condition, at)
    for key, sent in resolve:
        log.info("alert resolved%s: %s", unsent, sent.get("summary", key))
        if send(payload.resolved(key, sent, at=at, fmt=settings.format)):
            state.resolved(key)
    return result
