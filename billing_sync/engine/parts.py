"""The parts of a :class:`~billing_sync.engine.sync.SyncEngine` that status, snapshot
loads and late rows use, as a protocol: the engine imports those modules, so they
cannot import it. Reconcile's part (:class:`~billing_sync.reconcile.engine_port.EnginePort`)
is the base: the engine satisfies both, and each member is named once."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from billing_sync.capture.lookback import Lookback
from billing_sync.load.snapshot_io import SnapshotIO
from billing_sync.reconcile.engine_port import EnginePort
from billing_sync.source.horizon import Horizon


class EngineParts(EnginePort, Protocol):
    lookback: Lookback
    snapshot_io: SnapshotIO
    _complete_below: dict[tuple[Any, ...], datetime]

    def horizon(self, system: str) -> Horizon: ...
