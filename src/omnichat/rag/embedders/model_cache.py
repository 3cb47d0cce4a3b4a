"""The exported ONNX model, cached in the data dir and checked by SHA-256 every time it loads.

``<data dir>/models/all-MiniLM-L6-v2/onnx-<precision>.onnx`` beside a manifest
(``onnx-<precision>.json``) that records its SHA-256 and size and what it was made from: the
export format, the source model's files (size and modification time) and the ONNX Runtime
version. Loading reads the file once, hashes those bytes and hands the same bytes to ONNX Runtime,
so what runs is what was verified. A missing, truncated or corrupt file, or a manifest that does
not match, makes the model be exported again (never used).

The export runs in a child process (``onnx_export``: torch, never imported here) under an
exclusive ``flock`` on ``onnx-<precision>.lock``, so of several processes starting at once one
exports and the others wait and then load its result. It writes to a temporary file in the same
folder, fsyncs it and renames it into place, then does the same for the manifest: a reader sees
an old model, a new one, or none, and a crash half-way leaves a mismatch that the next load
repairs.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from omnichat.private_files import make_private_dirs, open_private

logger = logging.getLogger("omnichat.rag.embedders")

# Bump when the exported graph changes (inputs, fusions, quantization), so caches are rebuilt.
EXPORT_FORMAT = 2
SOURCE_FILES = ("model.safetensors", "config.json")
EXPORT_TIMEOUT_S = 1800.0


class ModelExportError(RuntimeError):
    """The export child failed; the message carries the end of its output."""


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _fsync_dir(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _write_atomically(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        with open_private(temporary) as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


class OnnxModelCache:
    """One precision of one source model in one folder. ``load_bytes`` is safe to call from
    several threads and processes at once."""

    def __init__(
        self,
        folder: Path,
        source: Path,
        precision: str,
        *,
        export_timeout_s: float = EXPORT_TIMEOUT_S,
        python: str | None = None,
    ) -> None:
        self.folder = folder
        self.source = source
        self.precision = precision
        self.export_timeout_s = export_timeout_s
        self.python = python or sys.executable
        self.path = folder / f"onnx-{precision}.onnx"
        self.manifest_path = folder / f"onnx-{precision}.json"
        self.lock_path = folder / f"onnx-{precision}.lock"
        self.exports = 0  # exports this object ran (tests read it)

    def expected(self) -> dict[str, Any]:
        """What the manifest must say, apart from the file's own checksum and size."""
        import onnxruntime

        source: dict[str, list[int]] = {}
        for name in SOURCE_FILES:
            stat = (self.source / name).stat()
            source[name] = [stat.st_size, stat.st_mtime_ns]
        return {
            "format": EXPORT_FORMAT,
            "precision": self.precision,
            "source_dir": str(self.source),
            "source_files": source,
            "onnxruntime": onnxruntime.__version__,
        }

    def read_verified(self) -> bytes | None:
        """The cached model's bytes if the manifest matches and they hash to its checksum."""
        try:
            manifest = json.loads(self.manifest_path.read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(manifest, dict):
            return None
        expected = self.expected()
        if any(manifest.get(key) != value for key, value in expected.items()):
            return None
        try:
            data = self.path.read_bytes()
        except OSError:
            return None
        if len(data) != manifest.get("size") or _sha256(data) != manifest.get("sha256"):
            logger.warning(
                "cached ONNX model failed its checksum; exporting it again",
                extra={"path": str(self.path)},
            )
            return None
        return data

    def load_bytes(self) -> bytes:
        """The verified model, exported first if the cache lacks a valid one."""
        data = self.read_verified()
        if data is not None:
            return data
        make_private_dirs(self.folder)
        with self._locked():
            data = self.read_verified()  # another process may have built it meanwhile
            if data is None:
                self._build()
                data = self.read_verified()
            if data is None:
                raise ModelExportError(f"the exported model at {self.path} does not verify")
            return data

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with open_private(self.lock_path, append=True) as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def _build(self) -> None:
        # Under the lock no one else writes here: temporary files are a dead exporter's.
        for stale in self.folder.glob(f".onnx-{self.precision}.*"):
            stale.unlink(missing_ok=True)
        output = self.folder / f".onnx-{self.precision}.{os.getpid()}.export.onnx"
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        command = [
            self.python,
            "-m",
            "omnichat.rag.embedders.onnx_export",
            "--source",
            str(self.source),
            "--output",
            str(output),
            "--precision",
            self.precision,
        ]
        logger.info(
            "exporting the local embedding model to ONNX (once)",
            extra={"path": str(self.path), "precision": self.precision},
        )
        started = time.monotonic()
        try:
            result = subprocess.run(  # noqa: S603 - our own module, arguments we built
                command,
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=self.export_timeout_s,
                check=False,
            )
            if result.returncode != 0:
                tail = (result.stderr or result.stdout)[-2000:]
                raise ModelExportError(f"ONNX export failed ({result.returncode}): {tail}")
            data = output.read_bytes()
        except subprocess.TimeoutExpired as exc:
            raise ModelExportError(f"ONNX export took over {self.export_timeout_s:.0f} s") from exc
        finally:
            output.unlink(missing_ok=True)
        self.exports += 1
        manifest = {
            **self.expected(),
            "sha256": _sha256(data),
            "size": len(data),
            "export_seconds": round(time.monotonic() - started, 1),
        }
        # The model first, then the manifest that vouches for it.
        _write_atomically(self.path, data)
        _write_atomically(self.manifest_path, json.dumps(manifest, indent=2).encode())
        _fsync_dir(self.folder)
        logger.info(
            "exported the local embedding model to ONNX",
            extra={"path": str(self.path), "seconds": manifest["export_seconds"]},
        )
