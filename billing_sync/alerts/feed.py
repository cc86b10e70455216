"""``feed_lag``: a change-event sink behind its SLA, or one that lost events to retention."""

from __future__ import annotations

from collections.abc import Iterable

from billing_sync.alerts.conditions import FEED_LAG, Condition
from billing_sync.feed.store import SinkLag


def feed_lags(
    lags: Iterable[SinkLag], *, sla_seconds: float, window_seconds: float
) -> list[Condition]:
    """A sink whose oldest unpublished event is older than ``sla_seconds`` (resolves once
    it caught up); apart, a sink that retention took events from within the window.

    >>> late = SinkLag("bus", "nats", 10, 250, 42.0, None)
    >>> [c.summary for c in feed_lags([late], sla_seconds=10, window_seconds=600)]
    ['feed sink bus (nats) is 42s behind the outbox (250 events wait); its SLA is 10s']
    """
    found = []
    for lag in lags:
        if lag.events and lag.seconds > sla_seconds:
            found.append(
                Condition(
                    FEED_LAG,
                    lag.sink,
                    "warning",
                    f"feed sink {lag.sink} ({lag.kind}) is {lag.seconds:.0f}s behind the outbox"
                    f" ({lag.events} events wait); its SLA is {sla_seconds:g}s",
                    {"sink": lag.sink, "events": lag.events, "lag_seconds": lag.seconds},
                )
            )
        ago = lag.expired_seconds_ago
        if lag.expired_events and ago is not None and ago <= window_seconds:
            found.append(
                Condition(
                    FEED_LAG,
                    lag.sink,
                    "critical",
                    f"feed sink {lag.sink} ({lag.kind}) never published {lag.expired_events}"
                    " events: retention removed them (feed.retention_hours)",
                    {"sink": lag.sink, "expired_events": lag.expired_events},
                    cause="expired",
                )
            )
    return found
