"""The demo's settings file: later commands in the state folder find its systems and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from billing_sync.config import ConfigError, load_settings
from billing_sync.state_settings import default_settings_file, write_state_settings


def test_the_demo_settings_are_found_and_give_systems_and_key(tmp_path: Path) -> None:
    state = tmp_path / "state"
    key = state / "demo-hmac.key"
    state.mkdir()
    key.write_text("k" * 43 + "\n")
    demo = load_settings(env={}, state_dir=state, systems=["icoms", "amdocs"])
    written = write_state_settings(demo, hmac_key_file=key)
    assert written.stat().st_mode & 0o777 == 0o600
    assert "k" * 43 not in written.read_text()  # the path, never the key
    found = default_settings_file(state, env={})
    assert found == written
    later = load_settings(path=found, env={})
    assert later.systems == ["icoms", "amdocs"]
    assert later.hmac_key is not None and later.hmac_key.get_secret_value() == "k" * 43
    assert later.state_dir == state.resolve()
    # The environment still wins; a named settings file replaces the state's.
    assert load_settings(path=found, env={"BILLING_SYNC_SYSTEMS": "icoms"}).systems == ["icoms"]
    assert default_settings_file(state, env={"BILLING_SYNC_CONFIG": "x.yaml"}) is None
    assert default_settings_file(tmp_path / "elsewhere", env={}) is None


def test_an_unreadable_key_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.key"):
        load_settings(env={}, hmac_key_file=tmp_path / "missing.key")
