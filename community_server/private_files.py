"""Files holding secrets or member data, created private from their first byte.

A file is never written with the default umask and chmod-ed afterwards (someone could open
it in between): it is created with O_EXCL under a temporary name, given its exact mode (and
owner) while still empty, filled, synced and renamed over the target, so readers see either
the old or the new content. The mode is set with fchmod, so the process umask cannot widen
or narrow it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

PRIVATE = 0o600
GROUP_READABLE = 0o640


def write_private(
    path: Path, data: bytes, mode: int = PRIVATE, owner: tuple[int, int] | None = None
) -> None:
    """Replace `path` atomically with `data`, readable only as `mode` allows (and `owner`)."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, PRIVATE)
    try:
        os.fchmod(fd, mode)
        if owner is not None:
            os.fchown(fd, *owner)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        temporary.unlink(missing_ok=True)
        raise
    os.close(fd)
    try:
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _sync_directory(path)


def create_private(path: Path, mode: int = PRIVATE) -> bool:
    """Create `path` empty with `mode` unless it exists; whether it was created.

    For files another library fills (SQLite): SQLite gives its -wal and -shm files the
    database file's mode, so they are private too.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, PRIVATE)
    except FileExistsError:
        return False
    try:
        os.fchmod(fd, mode)
    finally:
        os.close(fd)
    return True


def _sync_directory(path: Path) -> None:
    # The rename is durable only once the directory entry is on disk.
    with contextlib.suppress(OSError):
        fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
