"""Crash points for fault-injection tests: ``BILLING_SYNC_CRASH_AT=<point>`` makes the
process SIGKILL itself when it reaches that point, as a power cut would."""

from __future__ import annotations

import os
import signal

# Points a sync process reaches; a change-event relay reaches only RELAY_POINTS.
SYNC_POINTS = (
    "after_read",
    "after_warehouse_commit",
    "during_cache_apply",
    "after_cache_apply",
    "after_snapshot_chunk",
)
RELAY_POINTS = ("feed_after_publish",)  # the sink acknowledged, the offset is not stored yet
POINTS = SYNC_POINTS + RELAY_POINTS


def crash_point(point: str) -> None:
    if os.environ.get("BILLING_SYNC_CRASH_AT") == point:
        os.kill(os.getpid(), signal.SIGKILL)
