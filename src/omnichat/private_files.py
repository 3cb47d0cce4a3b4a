"""Folders and files only the server's own user may read: the data dir holds the database, users'
documents and the signing key. Folders the server makes are 0700 and files it writes 0600,
whatever the process's umask (which stays as it is: it is the whole process's, libraries' and
child processes' too).

Folders and files that already exist keep their modes: an operator's choice for them stands.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import BinaryIO

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def make_private_dirs(folder: Path) -> None:
    """``mkdir -p`` where every folder made is 0700 (``Path.mkdir(parents=True)`` makes the
    parents with the umask's default mode). Raises ``FileNotFoundError`` when a parent is removed
    meanwhile, like ``Path.mkdir``."""
    missing: list[Path] = []
    current = folder
    while not current.is_dir():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for path in reversed(missing):
        try:
            path.mkdir(mode=PRIVATE_DIR_MODE)
        except FileExistsError:
            if not path.is_dir():
                raise


def create_private_file(path: Path) -> None:
    """Creates ``path`` empty and 0600 unless it exists (e.g. a database file before SQLite opens
    it: SQLite gives its -wal and -shm files the database file's mode)."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE))


def open_private(path: Path, *, append: bool = False) -> BinaryIO:
    """``path`` opened for writing (truncated, or for appending), created 0600."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
    return os.fdopen(os.open(path, flags, PRIVATE_FILE_MODE), "ab" if append else "wb")


def write_private_bytes(path: Path, data: bytes) -> None:
    with open_private(path) as file:
        file.write(data)
