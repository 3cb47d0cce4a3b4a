"""The data dir holds the database, users' documents and the signing key: the folders the server
makes in it are 0700 and the files it writes 0600, under an ordinary umask (022)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from omnichat.app import create_app
from omnichat.cli import migrate
from omnichat.rag.embedders.model_cache import OnnxModelCache
from omnichat.settings import Settings
from tests.conftest import lifespan_of, register_user

FAKE_EXPORTER = """#!/bin/sh
# Stands in for `python -m omnichat.rag.embedders.onnx_export ... --output FILE ...`.
while [ $# -gt 0 ]; do
  if [ "$1" = "--output" ]; then printf 'not really a model' > "$2"; fi
  shift
done
"""


@pytest.fixture
def ordinary_umask() -> Iterator[None]:
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def modes_under(root: Path) -> dict[str, int]:
    """Every folder and file under ``root`` (itself included), by path relative to it."""
    found = {".": stat.S_IMODE(root.stat().st_mode)}
    for folder, folders, files in os.walk(root):
        for name in folders + files:
            path = Path(folder, name)
            found[str(path.relative_to(root))] = stat.S_IMODE(path.lstat().st_mode)
    return found


def assert_private(root: Path, modes: dict[str, int]) -> None:
    wrong = {
        name: oct(mode)
        for name, mode in modes.items()
        if mode != (0o700 if (root / name).is_dir() else 0o600)
    }
    assert not wrong, f"not private: {wrong}"


@pytest.mark.usefixtures("ordinary_umask")
async def test_a_fresh_data_dir_is_private(tmp_path: Path) -> None:
    data_dir = tmp_path / "fresh" / "data"  # neither exists yet
    settings = Settings(data_dir=data_dir, access_log=False)  # SQLite, blobs and key in it
    assert settings.is_sqlite
    await migrate(settings)
    application = create_app(settings)
    async with lifespan_of(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            user = await register_user(client, "modes")
            r = await client.post(
                "/upload/document",
                files={"file": ("notes.txt", b"Fennel and saffron for the soup.\n", "text/plain")},
                headers=user.headers,
            )
            assert r.status_code == 200, r.text
            assert r.json()["status"] == "ready"
            # While the server runs, so that SQLite's -wal and -shm files are there too.
            modes = modes_under(data_dir)
    names = set(modes)
    assert {"omnichat.db", "omnichat.db-wal", "omnichat.db-shm", "blobs"} <= names
    assert any(name.startswith("blobs/") and (data_dir / name).is_file() for name in names)
    assert_private(data_dir, modes)
    assert stat.S_IMODE((tmp_path / "fresh").stat().st_mode) == 0o700  # made on the way


@pytest.mark.usefixtures("ordinary_umask")
def test_the_model_cache_is_private(tmp_path: Path) -> None:
    source = tmp_path / "source-model"
    source.mkdir()
    for name in ("model.safetensors", "config.json"):
        (source / name).write_bytes(b"{}")
    exporter = tmp_path / "fake-python"
    exporter.write_text(FAKE_EXPORTER)
    exporter.chmod(0o755)
    cache_root = tmp_path / "data" / "models"
    cache = OnnxModelCache(cache_root / "all-MiniLM-L6-v2", source, "fp32", python=str(exporter))
    assert cache.load_bytes() == b"not really a model"
    modes = modes_under(tmp_path / "data")
    assert {
        "models/all-MiniLM-L6-v2/onnx-fp32.onnx",
        "models/all-MiniLM-L6-v2/onnx-fp32.json",
    } <= set(modes)
    assert_private(tmp_path / "data", modes)
