"""The resource that hands assets, sensors and checks a sync engine."""

import os
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg

from billing_sync.config import HMAC_KEY_ENV, Settings, load_settings
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
        """The settings as the CLI reads them: the key resolved by ``dg.EnvVar`` enters
        as the same environment variable, so :func:`load_settings` alone decides."""
        path = Path(self.config_file) if self.config_file else None
        env = dict(os.environ)
        if self.hmac_key:
            env[HMAC_KEY_ENV] = self.hmac_key
        return load_settings(path=path, env=env)

    @contextmanager
    def engine(
        self, *, run_id: str | None = None, entities: Collection[str] | None = None
    ) -> Iterator[SyncEngine]:
        """``entities``: one shard's (its tables only)."""
        engine = SyncEngine.from_settings(self.settings(), run_id=run_id, entities=entities)
        try:
            yield engine
        finally:
            engine.close()
