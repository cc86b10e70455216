"""API keys: issued once, stored only as hashes, compared in constant time, with scopes.

A key reads ``bsk_<key id>_<secret>``: the id (not secret) says which stored hash to
compare with and is what access logs show; the secret is 32 random bytes. Stored form,
one key per line (a file, or ``BILLING_SYNC_API_KEYS`` with ``;`` between entries)::

    <key id> sha256:<hex digest of the whole key> <scope>[,<scope>...]

SHA-256, not a password hash (scrypt, argon2): the secret has 256 bits of entropy, so
there is nothing to brute-force, and a slow hash would cost milliseconds per request.

>>> ring = KeyRing.parse("agents sha256:" + hash_key("bsk_agents_x") + " accounts:read")
>>> ring.verify("bsk_agents_x").scopes
frozenset({'accounts:read'})
>>> ring.verify("bsk_agents_y") is None
True
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

ACCOUNTS_READ = "accounts:read"
FRESHNESS_READ = "freshness:read"
SCOPES = (ACCOUNTS_READ, FRESHNESS_READ)
KEYS_ENV = "BILLING_SYNC_API_KEYS"
KEYS_FILE_ENV = "BILLING_SYNC_API_KEYS_FILE"

_KEY_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
_KEY = re.compile(r"^bsk_([a-z0-9][a-z0-9-]{0,31})_([A-Za-z0-9_-]{1,128})$")
_HEX = re.compile(r"^[0-9a-f]{64}$")
# Compared with when the key id is unknown, so that the time taken does not say which
# ids exist.
_DUMMY = hashlib.sha256(b"billing-sync: no such key").hexdigest()


class KeyFileError(ValueError):
    """A stored entry that cannot be read; the message names the line, never a hash."""


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    digest: str  # hex SHA-256 of the whole key
    scopes: frozenset[str]


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key(key_id: str) -> str:
    """A fresh key for ``key_id`` (shown once; only its hash is stored)."""
    if not _KEY_ID.match(key_id):
        raise KeyFileError(f"key id {key_id!r}: lower-case letters, digits and '-', 1-32")
    return f"bsk_{key_id}_{secrets.token_urlsafe(32)}"


def entry_line(key_id: str, key: str, scopes: list[str]) -> str:
    """The stored line of a key."""
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise KeyFileError(f"scopes {unknown or scopes}: known scopes are {', '.join(SCOPES)}")
    return f"{key_id} sha256:{hash_key(key)} {','.join(scopes)}"


@dataclass(frozen=True)
class KeyRing:
    keys: Mapping[str, ApiKey]

    @classmethod
    def parse(cls, text: str, *, where: str = "API keys") -> KeyRing:
        keys: dict[str, ApiKey] = {}
        entries = [entry.strip() for line in text.splitlines() for entry in line.split(";")]
        for number, entry in enumerate(entries, start=1):
            if not entry or entry.startswith("#"):
                continue
            parts = entry.split()
            if len(parts) != 3 or not parts[1].startswith("sha256:"):
                raise KeyFileError(
                    f"{where}, entry {number}: expected '<key id> sha256:<hex> <scopes>'"
                )
            key_id, digest, scopes = parts[0], parts[1].removeprefix("sha256:"), parts[2]
            if not _KEY_ID.match(key_id) or not _HEX.match(digest):
                raise KeyFileError(f"{where}, entry {number}: bad key id or digest")
            wanted = frozenset(scopes.split(","))
            if not wanted <= set(SCOPES):
                raise KeyFileError(
                    f"{where}, entry {number} ({key_id}): unknown scope in {sorted(wanted)}"
                )
            if key_id in keys:
                raise KeyFileError(f"{where}, entry {number}: key id {key_id} given twice")
            keys[key_id] = ApiKey(key_id, digest, wanted)
        return cls(keys)

    @classmethod
    def load(cls, env: Mapping[str, str], file: Path | None = None) -> KeyRing:
        """Keys from ``BILLING_SYNC_API_KEYS`` and the file (``file``, else
        ``BILLING_SYNC_API_KEYS_FILE``); both may be given."""
        keys: dict[str, ApiKey] = dict(cls.parse(env.get(KEYS_ENV, ""), where=KEYS_ENV).keys)
        path = file or (Path(env[KEYS_FILE_ENV]) if env.get(KEYS_FILE_ENV) else None)
        if path is not None:
            try:
                text = path.read_text()
            except OSError as error:
                raise KeyFileError(
                    f"cannot read the API keys file {path}: {error.strerror}"
                ) from None
            for key_id, key in cls.parse(text, where=str(path)).keys.items():
                if key_id in keys:
                    raise KeyFileError(f"key id {key_id} is in both {KEYS_ENV} and {path}")
                keys[key_id] = key
        return cls(keys)

    def verify(self, presented: str) -> ApiKey | None:
        """The key ``presented`` is, or None; constant time in the secret's content."""
        match = _KEY.match(presented)
        known = self.keys.get(match.group(1)) if match else None
        digest = hash_key(presented)
        expected = known.digest if known else _DUMMY
        if hmac.compare_digest(digest, expected) and known is not None:
            return known
        return None
