"""API keys (hashed at rest, scopes) and signed cursors of the account API (issue 17)."""

from __future__ import annotations

import argparse
import stat
from pathlib import Path

import pytest

from billing_sync.api.cli import cmd_key
from billing_sync.api.cursor import CursorCodec, CursorError
from billing_sync.api.keys import KeyFileError, KeyRing, entry_line, hash_key, new_key


def test_a_key_file_holds_hashes_only_and_verifies_keys_with_their_scopes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "keys"
    cmd_key(argparse.Namespace(key_id="agents", scopes="accounts:read", keys_file=path))
    key = capsys.readouterr().out.strip()
    assert key.startswith("bsk_agents_") and key not in path.read_text()
    assert hash_key(key) in path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    ring = KeyRing.load({}, path)
    found = ring.verify(key)
    assert found is not None and found.key_id == "agents"
    assert found.scopes == frozenset({"accounts:read"})
    assert ring.verify(key[:-1] + ("A" if key[-1] != "A" else "B")) is None
    assert ring.verify(key.replace("agents", "other")) is None
    assert ring.verify("") is None


def test_keys_from_the_environment_and_a_file_together_and_their_errors(tmp_path: Path) -> None:
    one, two = new_key("one"), new_key("two")
    path = tmp_path / "keys"
    path.write_text(entry_line("two", two, ["freshness:read"]) + "\n# a comment\n")
    env = {"BILLING_SYNC_API_KEYS": entry_line("one", one, ["accounts:read"])}
    ring = KeyRing.load(env, path)
    assert sorted(ring.keys) == ["one", "two"]
    with pytest.raises(KeyFileError, match="in both"):
        KeyRing.load({"BILLING_SYNC_API_KEYS": path.read_text().splitlines()[0]}, path)
    with pytest.raises(KeyFileError, match="entry 1") as error:
        KeyRing.parse("one sha256:abc accounts:read")
    assert "abc" not in str(error.value)
    with pytest.raises(KeyFileError, match="unknown scope"):
        KeyRing.parse(f"one sha256:{hash_key(one)} accounts:write")
    with pytest.raises(KeyFileError, match="cannot read"):
        KeyRing.load({}, tmp_path / "missing")
    with pytest.raises(KeyFileError, match="scopes"):
        entry_line("x", one, ["admin"])


def test_every_altered_byte_of_a_cursor_is_refused() -> None:
    codec = CursorCodec(b"0123456789abcdef0123456789abcdef")
    token = codec.encode({"after": ["2026-11-01", "payment", "001|7"]}, scope="a")
    assert codec.decode(token, scope="a") == {"after": ["2026-11-01", "payment", "001|7"]}
    for index, char in enumerate(token):
        for other in "ABab09-_":  # the last character's low bits too (base64 padding)
            if char in (".", other):
                continue
            with pytest.raises(CursorError):
                codec.decode(token[:index] + other + token[index + 1 :], scope="a")
    with pytest.raises(CursorError, match="another server"):
        CursorCodec(b"another key, same length, 32 b!!").decode(token, scope="a")
