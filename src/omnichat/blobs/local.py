"""Blobs as files under one folder (the data dir's ``blobs`` by default)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

from omnichat.blobs.base import BlobNotFound, BlobStoreUnavailable
from omnichat.blobs.keys import check_key
from omnichat.private_files import make_private_dirs

_COPY_CHUNK = 1024 * 1024
# A put whose folder a concurrent delete removed (it had just been emptied) makes it again.
PUT_ATTEMPTS = 20


def _fsync_dir(path: Path) -> None:
    # Makes the rename itself durable; some platforms cannot open a folder, which is fine.
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# The folder cannot take the blob: full, read-only, permissions lost, a failing disk or mount.
_STORE_FAILURES = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO, errno.ENOTCONN}
)


class LocalBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def target(self) -> str:
        return str(self.root)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def _check(self) -> None:
        make_private_dirs(self.root)
        fd, probe = tempfile.mkstemp(dir=self.root, prefix=".check-")
        os.close(fd)
        os.unlink(probe)

    async def check(self) -> None:
        await asyncio.to_thread(self._check)

    def _put(self, target: Path, source: Path) -> None:
        for attempt in range(PUT_ATTEMPTS):
            try:
                make_private_dirs(target.parent)
                # Same folder as the target, so os.replace is a rename within one file system.
                # The leading dot keeps temp names out of the key space.
                fd, temp_name = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
                break
            # A delete removed an emptied folder meanwhile (as it was made, or before mkstemp).
            except (FileNotFoundError, FileExistsError):
                if attempt == PUT_ATTEMPTS - 1:
                    raise
        try:
            with os.fdopen(fd, "wb") as out, source.open("rb") as src:
                shutil.copyfileobj(src, out, _COPY_CHUNK)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp_name, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp_name)
            raise
        _fsync_dir(target.parent)

    async def put_file(self, key: str, source: Path) -> None:
        try:
            await asyncio.to_thread(self._put, self._path(key), source)
        except OSError as exc:
            if exc.errno not in _STORE_FAILURES:
                raise  # e.g. the source file is gone: not the store's doing
            why = exc.strerror or type(exc).__name__
            raise BlobStoreUnavailable(
                f"The document store cannot be written ({why}); try again"
            ) from exc

    async def read(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise BlobNotFound(key) from exc

    async def stream(self, key: str, chunk_size: int = 64 * 1024) -> AsyncIterator[bytes]:
        path = self._path(key)
        try:
            handle: BinaryIO = await asyncio.to_thread(path.open, "rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise BlobNotFound(key) from exc
        try:
            while chunk := await asyncio.to_thread(handle.read, chunk_size):
                yield chunk
        finally:
            await asyncio.to_thread(handle.close)

    def _delete(self, path: Path) -> None:
        """The file, then every folder it leaves empty up to the root: a deleted user's or
        document's folder does not linger."""
        path.unlink(missing_ok=True)
        folder = path.parent
        while folder != self.root and self.root in folder.parents:
            try:
                folder.rmdir()
            except OSError:  # not empty (another blob, or one being written), or gone
                return
            folder = folder.parent

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._delete, self._path(key))
