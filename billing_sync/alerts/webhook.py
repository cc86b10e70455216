"""POST a JSON body to the alert webhook (standard library only)."""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from billing_sync.secrets import mask_error

log = logging.getLogger(__name__)


def where(url: str) -> str:
    """The webhook's scheme and host, for logs: its path and query often hold a token."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}/…"


def post_json(url: str, body: dict[str, Any], *, timeout: float = 5.0) -> bool:
    """True when the webhook answered 2xx; a failure is logged (without the URL's secrets)."""
    request = urllib.request.Request(
        url,
        data=json.dumps(body, default=str).encode(),
        headers={"Content-Type": "application/json", "User-Agent": "billing-sync-alerts"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return 200 <= int(response.status) < 300
    except (urllib.error.URLError, TimeoutError, OSError) as error:
        log.warning("alert webhook %s failed: %s", where(url), mask_error(error))
        return False
