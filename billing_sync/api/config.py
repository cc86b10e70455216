"""What the API needs, resolved once when it starts (never at import): the warehouse URL,
the billers' catalogs, the keys, the cursor key, the HMAC key for searches by national id.

- Keys: :mod:`billing_sync.api.keys` (``BILLING_SYNC_API_KEYS``, ``--keys-file``).
- Cursor key: ``BILLING_SYNC_API_CURSOR_KEY``, else ``<state_dir>/api-cursor.key``
  (created 0600 with 32 random bytes), so cursors survive a restart and every process of
  one deployment shares it.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from billing_sync.api.freshness import TableFeed, feeds_of
from billing_sync.api.keys import KeyRing
from billing_sync.config import Settings, load_catalogs
from billing_sync.entities import EntityColumns, entities_of
from billing_sync.private_files import private_dir, touch_private

CURSOR_KEY_ENV = "BILLING_SYNC_API_CURSOR_KEY"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
MAX_PAGE = 500
DEFAULT_PAGE = 50


@dataclass(frozen=True)
class ApiConfig:
    warehouse_url: str
    systems: tuple[str, ...]
    entities: Mapping[str, EntityColumns]
    feeds: Mapping[tuple[str, str], TableFeed]
    keys: KeyRing
    cursor_key: bytes = field(repr=False)
    hmac_key: bytes | None = field(default=None, repr=False)
    pool_size: int = 10


def cursor_key(settings: Settings, env: Mapping[str, str]) -> bytes:
    given = env.get(CURSOR_KEY_ENV)
    if given:
        return given.encode()
    path = settings.state_dir / "api-cursor.key"
    if not path.exists():
        private_dir(settings.state_dir)
        touch_private(path)
        path.write_text(secrets.token_urlsafe(32))
    return path.read_text().strip().encode()


def api_config(
    settings: Settings,
    warehouse_url: str,
    *,
    keys_file: Path | None = None,
    env: Mapping[str, str] | None = None,
    pool_size: int = 10,
) -> ApiConfig:
    env = os.environ if env is None else env
    catalogs = load_catalogs(settings)
    return ApiConfig(
        warehouse_url=warehouse_url,
        systems=tuple(catalog.system for catalog in catalogs),
        entities=entities_of(catalogs),
        feeds=feeds_of(catalogs, settings),
        keys=KeyRing.load(env, keys_file),
        cursor_key=cursor_key(settings, env),
        hmac_key=settings.hmac_key.get_secret_value().encode() if settings.hmac_key else None,
        pool_size=pool_size,
    )
