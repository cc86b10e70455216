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

    def send(body: dict[str, Any]) -> bool:
        if url is None:
            return True
        if post is not None:
            return post(url, body)
        return post_json(url, body, timeout=settings.timeout_seconds)

    fire, resolve = state.changes(active, kinds=kinds)
    result = Notification(state)
    for condition in fire:
        body = payload.firing(condition, at=at, fmt=settings.format)
        log.warning("alert: %s", condition.summary)
        if send(body):
            state.fired(condition, at)
            result.sent.append(body)
        else:
            result.failed += 1
    for key, sent in resolve:
        body = payload.resolved(key, sent, at=at, fmt=settings.format)
        log.info("alert resolved: %s", sent.get("summary", key))
        if send(body):
            state.resolved(key)
            result.sent.append(body)
        else:
            result.failed += 1
    return result
