"""The local embedder on ONNX Runtime: torch's vectors, an export made once and checked every
time it loads, and a serving process that never imports torch."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from omnichat.rag.embedders.factory import build_embedder
from omnichat.rag.embedders.local import LOCAL_EMBEDDER_NAME, LocalMiniLMEmbedder
from omnichat.rag.embedders.local_onnx import OnnxMiniLMEmbedder
from omnichat.settings import Settings

TEXTS = [
    "Mitochondria are the powerhouse of the cell.",
    "Die Prüfung der Straßenbahn fand im Oktober statt.",
    "short",
    # Past the model's 256 word pieces: cut where sentence-transformers cuts.
    " ".join(f"token{n} of a long passage about protein folding" for n in range(200)),
    "",
]
# The lowest cosine to torch's vector each precision is allowed on these texts (SciFact's
# figures are in BENCHMARKS.md).
FLOOR = {"fp32": 0.9999, "int8": 0.98}


@pytest.fixture(scope="module")
async def torch_vectors() -> AsyncIterator[np.ndarray]:
    embedder = LocalMiniLMEmbedder()
    try:
        yield np.array(await embedder.embed_documents(TEXTS))
    finally:
        await embedder.aclose()


def _cache_dir() -> Path:
    return Settings().resolved_model_cache_dir


@pytest.mark.parametrize("precision", ["fp32", "int8"])
async def test_vectors_are_torchs(precision: str, torch_vectors: np.ndarray) -> None:
    embedder = OnnxMiniLMEmbedder(_cache_dir() / "all-MiniLM-L6-v2", precision=precision)
    try:
        documents = np.array(await embedder.embed_documents(TEXTS))
        query = np.array(await embedder.embed_query(TEXTS[0]))
    finally:
        await embedder.aclose()
    assert documents.shape == (len(TEXTS), 384)
    assert np.allclose(np.linalg.norm(documents, axis=1), 1.0, atol=1e-5)
    cosines = (documents * torch_vectors).sum(axis=1)
    assert cosines.min() >= FLOOR[precision], cosines
    # A query is embedded as the same text among documents is (padding changes nothing).
    assert float(query @ documents[0]) > 0.99999


async def test_local_is_onnx_and_local_torch_is_torch() -> None:
    onnx = build_embedder(Settings(embedder="local"))
    torch_embedder = build_embedder(Settings(embedder="local-torch"))
    try:
        assert isinstance(onnx, OnnxMiniLMEmbedder)
        assert isinstance(torch_embedder, LocalMiniLMEmbedder)
        assert torch_embedder.name == LOCAL_EMBEDDER_NAME
    finally:
        await onnx.aclose()
        await torch_embedder.aclose()


EMBED_IN_A_CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from omnichat.rag.embedders.factory import build_embedder
    from omnichat.settings import Settings

    async def main():
        embedder = build_embedder(Settings(embedder="local"))
        await embedder.warm_up()
        vectors = await embedder.embed_documents(["one", "two"])
        await embedder.embed_query("three")
        await embedder.aclose()
        print(len(vectors), len(vectors[0]), embedder.cache.exports)
        print("torch" in sys.modules, "sentence_transformers" in sys.modules)

    asyncio.run(main())
    """
)


def _embed_in_a_child(cache_dir: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "OMNICHAT_MODEL_CACHE_DIR": str(cache_dir)}
    return subprocess.Popen(
        [sys.executable, "-c", EMBED_IN_A_CHILD],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(child: subprocess.Popen[str]) -> list[str]:
    out, err = child.communicate(timeout=600)
    assert child.returncode == 0, err[-3000:]
    return out.split()


def test_two_processes_export_once_and_never_import_torch(tmp_path: Path) -> None:
    children = [_embed_in_a_child(tmp_path) for _ in range(2)]
    results = [_finish(child) for child in children]
    # Both embedded; one exported (in a child process of its own), the other waited and loaded.
    assert sorted(result[2] for result in results) == ["0", "1"]
    for result in results:
        assert result[:2] == ["2", "384"]
        assert result[3:] == ["False", "False"]  # torch never entered the serving process
    # A third start finds the cached export and loads it without exporting.
    assert _finish(_embed_in_a_child(tmp_path))[2] == "0"


async def test_a_damaged_export_is_never_used(tmp_path: Path) -> None:
    first = OnnxMiniLMEmbedder(tmp_path)
    expected = await first.embed_query("checksum")
    await first.aclose()
    model = first.cache.path
    assert first.cache.exports == 1
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped bit, same size
    model.write_bytes(bytes(data))

    second = OnnxMiniLMEmbedder(tmp_path)
    try:
        assert second.cache.read_verified() is None
        assert await second.embed_query("checksum") == pytest.approx(expected, abs=1e-6)
        assert second.cache.exports == 1  # it exported again rather than load the damage
    finally:
        await second.aclose()
    assert second.cache.read_verified() is not None
