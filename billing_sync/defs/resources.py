"""The resource that hands assets, sensors and checks a sync engine."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg

from billing_sync.config import Settings, load_settings
from billing_sync.engine.sync import SyncEngine


class BillingSyncResource(dg.ConfigurableResource["BillingSyncResource"]):
    """Settings come from ``config_file`` (or ``$BILLING_SYNC_CONFIG``) and the
    ``BILLING_SYNC_*`` environment, read when a run or tick starts, never at import.
    Database URLs with secrets stay in the environment and out of the UI; the HMAC key
    of protected columns comes in as ``dg.EnvVar("BILLING_SYNC_HMAC_KEY")``, resolved
    when a run starts and never shown.
    """

    config_file: str | None = None
    hmac_key: str | None = None

    def settings(self) -> Settings:
        path = Path(self.config_file) if self.config_file else None
        if self.hmac_key:
            return load_settings(path=path, hmac_key=self.hmac_key)
        return load_settings(path=path)

    @contextmanager
    def engine(self, *, run_id: str | None = None) -> Iterator[SyncEngine]:
        engine = SyncEngine.from_settings(self.settings(), run_id=run_id)
        try:
            yield engine
        finally:
            engine.close()
