"""Running the API under uvicorn, in one process or several (``--workers``).

With several workers, uvicorn's supervisor binds the socket once and starts each worker
as a fresh (spawned) process sharing it; the kernel hands each accepted connection to
one of them. What a worker needs is resolved once, in the supervisor, and handed to the
workers by pickling (:class:`ApiConfig`, through the multiprocessing pipe, never a file):
the keys, the catalogs and the cursor key, so a cursor issued by one worker is accepted
by every other (the key is also a shared file, ``<state_dir>/api-cursor.key``).
Each worker has its own connection pool: ``workers x pool_size`` sessions at most.
"""

from __future__ import annotations

import logging
import sys
from functools import partial

from fastapi import FastAPI

from billing_sync.api.config import ApiConfig

ACCESS_LOGGER = "billing_sync.api.access"
WORKER_HEALTHCHECK_SECONDS = 300


def _access_log_to_stdout() -> None:
    access = logging.getLogger(ACCESS_LOGGER)
    if any(getattr(h, "billing_sync_access", False) for h in access.handlers):
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.billing_sync_access = True  # type: ignore[attr-defined]
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    access.propagate = False


def worker_app(config: ApiConfig) -> FastAPI:
    """The app of one worker process (uvicorn calls it there: a factory)."""
    # why: the app's stack loads in the worker
    from billing_sync.api.app import create_app

    _access_log_to_stdout()
    return create_app(config)


def serve(config: ApiConfig, *, host: str, port: int, workers: int = 1) -> None:
    # why: the server's stack loads only in the process that serves (not for `api --help`)
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    server_config = uvicorn.Config(
        partial(worker_app, config),
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=False,  # ours is JSON with the key id; uvicorn's shows full paths
        server_header=False,
        log_level="warning",
        # A worker answers the supervisor's health check only once it has imported the
        # app's stack: seconds on a quiet machine, far more on a loaded one, where
        # uvicorn's default (5 s) killed and restarted the workers endlessly.
        timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS,
    )
    if workers > 1:
        Multiprocess(server_config, sockets=[server_config.bind_socket()]).run()
    else:
        uvicorn.Server(server_config).run()
