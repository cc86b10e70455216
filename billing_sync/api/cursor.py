"""Keyset cursors a client cannot forge: the position, bound to its query, HMAC-signed.

A cursor is ``<base64url JSON>.<base64url HMAC-SHA256>``. The JSON holds the last row's
sort key and the query it belongs to (system, account, ``since``), so a cursor taken
from one account's activity is refused on another's. A changed byte fails the signature
check (compared in constant time) before the JSON is even parsed.

>>> codec = CursorCodec(b"k" * 32)
>>> token = codec.encode({"after": ["2026-11-01", 2, "icoms-7"]}, scope="icoms/001:7")
>>> codec.decode(token, scope="icoms/001:7")
{'after': ['2026-11-01', 2, 'icoms-7']}
>>> codec.decode(token, scope="icoms/001:8")
Traceback (most recent call last):
...
billing_sync.api.cursor.CursorError: the cursor belongs to another query
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from typing import Any

MAX_CURSOR_LENGTH = 1024


class CursorError(ValueError):
    """A cursor that was not issued by this API for this query."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class CursorCodec:
    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the cursor key must have at least 16 bytes")
        self._key = key

    def _sign(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()

    def encode(self, position: dict[str, Any], *, scope: str) -> str:
        payload = json.dumps({**position, "scope": scope}, separators=(",", ":")).encode()
        return f"{_b64(payload)}.{_b64(self._sign(payload))}"

    def decode(self, token: str, *, scope: str) -> dict[str, Any]:
        if len(token) > MAX_CURSOR_LENGTH or token.count(".") != 1:
            raise CursorError("the cursor is malformed")
        body, signature = token.split(".")
        try:
            payload, given = _unb64(body), _unb64(signature)
        except (binascii.Error, ValueError):
            raise CursorError("the cursor is malformed") from None
        if _b64(payload) != body or _b64(given) != signature:  # one spelling per cursor
            raise CursorError("the cursor was altered")
        if not hmac.compare_digest(self._sign(payload), given):
            raise CursorError("the cursor was altered or issued by another server")
        position: dict[str, Any] = json.loads(payload)
        if position.pop("scope", None) != scope:
            raise CursorError("the cursor belongs to another query")
        return position
