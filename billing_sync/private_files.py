"""The state folder and the files in it are the service user's alone.

The DuckDB cache holds every customer's name, balance and payments; the state folder also
holds the embedded server's data, the Dagster home and the pause file. Created 0700 (the
folder) and 0600 (files) whatever the umask; a folder or file left by an earlier version
with wider modes is narrowed when the sync opens it, if this user owns it (a folder the
operator chose for ``cache_path`` and owns by another account is left as it is).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

DIRECTORY_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """``path`` (and missing parents) created 0700; an existing one we own narrowed to 0700."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    path.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
    for created in missing:  # mkdir's mode applies to the leaf only, and minus the umask
        _narrow(created, DIRECTORY_MODE)
    _narrow(path, DIRECTORY_MODE)
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


def _narrow(path: Path, mode: int) -> None:
    try:
        info = path.stat()
    except FileNotFoundError:
        return
    if info.st_uid == os.getuid() and stat.S_IMODE(info.st_mode) & ~mode:
        path.chmod(stat.S_IMODE(info.st_mode) & mode)
