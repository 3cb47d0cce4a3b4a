"""Both blob stores through the same cases: local files, and S3 against a real moto server."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import boto3
import pytest

from omnichat.blobs.base import BlobNotFound, BlobStore
from omnichat.blobs.factory import build_blob_store
from omnichat.blobs.local import LocalBlobStore
from omnichat.blobs.s3 import S3BlobStore
from omnichat.settings import Settings

pytest_plugins = ["tests.s3_server"]

BAD_KEYS = [
    "",
    "../etc/passwd",
    "a/../b",
    "a/..",
    "/absolute",
    ".hidden",
    "a//b",
    "a/",
    "with space",
    "dot.ted",
    "back\\slash",
    "new\nline",
    "x" * 202,
]


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "local":
        return LocalBlobStore(tmp_path / "blobs")
    endpoint = request.getfixturevalue("s3_endpoint")
    bucket = request.getfixturevalue("s3_bucket")
    # A prefix per test: the bucket is shared by the session.
    return S3BlobStore(bucket, f"t-{uuid.uuid4().hex}", endpoint_url=endpoint)


def write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / f"source-{uuid.uuid4().hex}"
    path.write_bytes(data)
    return path


async def collect(stream: AsyncIterator[bytes]) -> list[bytes]:
    return [chunk async for chunk in stream]


async def test_put_read_and_stream(store: BlobStore, tmp_path: Path) -> None:
    data = os.urandom(200_000)
    await store.put_file("user1/doc-1", write(tmp_path, data))
    assert await store.read("user1/doc-1") == data
    chunks = await collect(store.stream("user1/doc-1", chunk_size=64 * 1024))
    assert b"".join(chunks) == data
    assert len(chunks) >= 4
    assert all(len(chunk) <= 64 * 1024 for chunk in chunks)


async def test_empty_blob(store: BlobStore, tmp_path: Path) -> None:
    await store.put_file("empty", write(tmp_path, b""))
    assert await store.read("empty") == b""
    assert await collect(store.stream("empty")) == []


async def test_delete(store: BlobStore, tmp_path: Path) -> None:
    await store.put_file("gone_soon", write(tmp_path, b"bye"))
    await store.delete("gone_soon")
    with pytest.raises(BlobNotFound):
        await store.read("gone_soon")
    await store.delete("gone_soon")  # a missing key is not an error
    await store.delete("never-there")


async def test_missing_key(store: BlobStore) -> None:
    with pytest.raises(BlobNotFound):
        await store.read("no/such/key")
    stream = store.stream("no/such/key")
    with pytest.raises(BlobNotFound):
        await anext(aiter(stream))


@pytest.mark.parametrize("key", BAD_KEYS)
async def test_bad_keys_are_refused(store: BlobStore, tmp_path: Path, key: str) -> None:
    source = write(tmp_path, b"x")
    with pytest.raises(ValueError, match="invalid blob key"):
        await store.put_file(key, source)
    with pytest.raises(ValueError, match="invalid blob key"):
        await store.read(key)
    with pytest.raises(ValueError, match="invalid blob key"):
        await anext(aiter(store.stream(key)))
    with pytest.raises(ValueError, match="invalid blob key"):
        await store.delete(key)


async def test_overwrite_is_atomic(store: BlobStore, tmp_path: Path) -> None:
    """Readers racing a series of overwrites see one whole version or another, never a mix."""
    versions = [bytes([i]) * 300_000 for i in range(4)]
    sources = [write(tmp_path, v) for v in versions]
    await store.put_file("doc", sources[0])
    done = asyncio.Event()
    seen: list[bytes] = []

    async def reader() -> None:
        while not done.is_set():
            seen.append(await store.read("doc"))

    async def writer() -> None:
        for source in sources[1:] * 3:
            await store.put_file("doc", source)
        done.set()

    await asyncio.gather(reader(), reader(), writer())
    assert seen
    assert all(blob in versions for blob in seen)
    assert await store.read("doc") == versions[-1]


async def test_local_put_leaves_no_temp_files(tmp_path: Path) -> None:
    root = tmp_path / "blobs"
    store = LocalBlobStore(root)
    await store.put_file("a/b/c", write(tmp_path, b"one"))
    await store.put_file("a/b/c", write(tmp_path, b"two"))
    # A failed put (the source vanished) keeps the old blob and cleans up after itself.
    with pytest.raises(FileNotFoundError):
        await store.put_file("a/b/c", tmp_path / "missing")
    assert await store.read("a/b/c") == b"two"
    assert sorted(p.name for p in root.rglob("*")) == ["a", "b", "c"]


async def test_local_delete_leaves_no_empty_folders(tmp_path: Path) -> None:
    root = tmp_path / "blobs"
    store = LocalBlobStore(root)
    for key in ("documents/u1/d1", "documents/u1/d2", "documents/u2/d3"):
        await store.put_file(key, write(tmp_path, key.encode()))
    await store.delete("documents/u1/d1")
    assert await store.read("documents/u1/d2") == b"documents/u1/d2"
    await store.delete("documents/u1/d2")
    assert not (root / "documents" / "u1").exists()  # the user's last blob took its folder
    assert await store.read("documents/u2/d3") == b"documents/u2/d3"
    await store.delete("documents/u2/d3")
    assert root.is_dir()
    assert list(root.iterdir()) == []  # never the root itself
    # A put after the folder went makes it again.
    await store.put_file("documents/u1/d4", write(tmp_path, b"again"))
    assert await store.read("documents/u1/d4") == b"again"


async def test_local_puts_and_deletes_in_one_folder_at_once(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    source = write(tmp_path, b"x")

    async def churn(n: int) -> None:
        for round_ in range(30):
            key = f"documents/u/{n}-{round_}"
            await store.put_file(key, source)
            assert await store.read(key) == b"x"
            await store.delete(key)

    await asyncio.gather(*(churn(n) for n in range(4)))
    assert not (tmp_path / "blobs" / "documents").exists()


def test_factory(tmp_path: Path, s3_endpoint: str) -> None:
    default = build_blob_store(Settings(data_dir=tmp_path))
    assert isinstance(default, LocalBlobStore)
    assert default.root == (tmp_path / "blobs").resolve()
    explicit = build_blob_store(Settings(blob_url=(tmp_path / "x y").as_uri()))
    assert isinstance(explicit, LocalBlobStore)
    assert explicit.root == tmp_path / "x y"
    s3 = build_blob_store(
        Settings(blob_url="s3://bucket-name/some/prefix/", s3_endpoint_url=s3_endpoint)
    )
    assert isinstance(s3, S3BlobStore)
    assert (s3.bucket, s3.prefix) == ("bucket-name", "some/prefix")
    for url in ("gs://bucket/x", "/plain/path", "s3:///no-bucket", "file://remote-host/x"):
        with pytest.raises(ValueError, match="OMNICHAT_BLOB_URL"):
            build_blob_store(Settings(blob_url=url))


async def test_s3_objects_live_under_the_prefix(
    s3_endpoint: str, s3_bucket: str, tmp_path: Path
) -> None:
    prefix = f"p-{uuid.uuid4().hex}"
    store = S3BlobStore(s3_bucket, prefix + "/", endpoint_url=s3_endpoint)
    await store.put_file("u/k", write(tmp_path, b"data"))
    client = boto3.session.Session().client("s3", endpoint_url=s3_endpoint)
    listed = client.list_objects_v2(Bucket=s3_bucket, Prefix=prefix)
    assert [o["Key"] for o in listed["Contents"]] == [f"{prefix}/u/k"]
