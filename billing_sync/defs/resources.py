"""The resource that hands assets, sensors and checks a sync engine."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg

from billing_sync.config import Settings, load_settings
from billing_sync.sync import SyncEngine


class BillingSyncResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """Settings come from ``config_file`` (or ``$BILLING_SYNC_CONFIG``) and the
    ``BILLING_SYNC_*`` environment, read when a run or tick starts, never at import.
    Database URLs with secrets stay in the environment and out of the UI.
    """

    config_file: str | None = None

    def settings(self) -> Settings:
        return load_settings(path=Path(self.config_file) if self.config_file else None)

    @contextmanager
    def engine(self, *, run_id: str | None = None) -> Iterator[SyncEngine]:
        engine = SyncEngine.from_settings(self.settings(), run_id=run_id)
        try:
            yield engine
        finally:
            engine.close()
