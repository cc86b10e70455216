"""The settings the demo leaves in its state folder, which later commands read by default.

``billing-sync demo`` syncs two billers with a generated HMAC key; a later
``billing-sync status`` or ``sql`` in the same state folder must see the same systems
without being told. The demo writes ``<state>/settings.yaml`` (0600) with the systems,
the state folder, the key file's path (never the key), the catalog folder when the demo
wrote one and a source URL only when it carries no password; the CLI reads it when
neither ``--config`` nor ``$BILLING_SYNC_CONFIG`` names a settings file. The environment
and the command line still win over it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import yaml
from sqlalchemy.engine import make_url

from billing_sync.config import Settings
from billing_sync.private_files import private_dir, touch_private

STATE_SETTINGS_NAME = "settings.yaml"
DEFAULT_STATE_DIR = Path(".billing-sync")


def default_settings_file(
    state_dir: Path | None, env: Mapping[str, str] | None = None
) -> Path | None:
    """``<state>/settings.yaml`` when it exists and no settings file is named otherwise."""
    env = os.environ if env is None else env
    if env.get("BILLING_SYNC_CONFIG"):
        return None
    state = state_dir or Path(env.get("BILLING_SYNC_STATE_DIR") or DEFAULT_STATE_DIR)
    candidate = state / STATE_SETTINGS_NAME
    return candidate if candidate.is_file() else None


def write_state_settings(
    settings: Settings, *, hmac_key_file: Path | None, feed: dict[str, object] | None = None
) -> Path:
    """Write the demo's settings into its state folder; returns the file."""
    state = private_dir(settings.state_dir).resolve()
    content: dict[str, object] = {
        "state_dir": str(state),
        "systems": list(settings.systems),
    }
    if settings.cache_path is not None:
        content["cache_path"] = str(settings.cache_path.resolve())
    if settings.catalog_dir is not None:
        content["catalog_dir"] = str(settings.catalog_dir.resolve())
    # A source URL without a password (the demo's MariaDB biller as root on localhost)
    # is no secret; one with a password stays in the environment.
    plain = {system: url for system, url in settings.source_urls.items()
             if make_url(url).password is None}  # fmt: skip
    if plain:
        content["source_urls"] = plain
    if hmac_key_file is not None:
        content["hmac_key_file"] = str(hmac_key_file.resolve())
    if feed is not None:
        content["feed"] = feed
    path = touch_private(state / STATE_SETTINGS_NAME)
    path.write_text(
        "# Written by `billing-sync demo`; read by later commands in this state folder.\n"
        + yaml.safe_dump(content, sort_keys=False)
    )
    return path
