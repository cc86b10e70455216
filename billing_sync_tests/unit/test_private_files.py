"""The state folder is 0700 and the cache and other state files 0600, whatever the umask."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from billing_sync.entities import EntityColumns
from billing_sync.load.cache import Cache
from billing_sync.private_files import private_dir, private_file, touch_private


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def open_umask() -> Iterator[None]:
    old = os.umask(0o022)  # the usual default: files 0644, folders 0755
    try:
        yield
    finally:
        os.umask(old)


def test_the_cache_and_its_folder_are_the_service_users(tmp_path: Path) -> None:
    state = tmp_path / "state" / "nested"
    payment = EntityColumns("payment", (("amount", "decimal(12,2)"),))
    cache = Cache(state / "cache.duckdb", {"payment": payment})
    cache.setup()
    assert mode(state) == 0o700 and mode(state.parent) == 0o700
    assert mode(state / "cache.duckdb") == 0o600
    for path in state.iterdir():  # the gate file, a WAL: none readable by others
        assert mode(path) & 0o077 == 0, path


def test_what_an_earlier_version_left_open_is_narrowed(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    cache = state / "cache.duckdb"
    cache.write_text("x")
    cache.chmod(0o644)
    private_dir(state)
    private_file(cache)
    assert mode(state) == 0o700 and mode(cache) == 0o600


def test_the_pause_file_is_created_private(tmp_path: Path) -> None:
    assert mode(touch_private(tmp_path / "paused")) == 0o600


def test_the_embedded_servers_user_may_pass_through_and_nothing_more(tmp_path: Path) -> None:
    state = private_dir(tmp_path / "state", traverse=True)
    assert mode(state) == 0o711
    assert mode(private_dir(state)) == 0o700  # nothing of another user inside: narrowed
