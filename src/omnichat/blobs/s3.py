"""Blobs in an S3 bucket (or any S3-compatible service: MinIO, R2, ...) through boto3.

boto3 is synchronous; its clients are thread-safe, so one client serves every call, each run in
a worker thread. Credentials come from the standard AWS chain (environment, config files,
instance roles)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from omnichat.blobs.base import BlobNotFound, BlobStoreUnavailable
from omnichat.blobs.keys import check_key
from omnichat.ops.urls import masked_url

_MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 30.0
PROBE_TIMEOUT_S = 2.0


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code"))


def _is_missing(exc: ClientError) -> bool:
    return _error_code(exc) in _MISSING_CODES


class S3BlobStore:
    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        *,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
        read_timeout_s: float = READ_TIMEOUT_S,
    ) -> None:
        """Every call is bounded: a connection within ``connect_timeout_s``, each read of an
        answer within ``read_timeout_s`` (botocore's defaults are 60 s each, so an endpoint
        that takes connections and never answers held an upload for minutes), 3 attempts."""
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        # A session of its own: creating clients from boto3's shared default one is not
        # thread-safe.
        session = boto3.session.Session()

        def client(attempts: int, read_timeout: float) -> Any:
            config = Config(
                retries={"max_attempts": attempts, "mode": "standard"},
                connect_timeout=connect_timeout_s,
                read_timeout=read_timeout,
                # S3-compatible servers behind a custom endpoint rarely do virtual-host buckets.
                s3={"addressing_style": "path"} if endpoint_url else {},
            )
            return session.client(
                "s3", endpoint_url=endpoint_url, region_name=region, config=config
            )

        self._client: Any = client(3, read_timeout_s)
        # Readiness asks once and briefly: its answer is "not now", not a retried upload.
        self._probe: Any = client(1, min(read_timeout_s, PROBE_TIMEOUT_S))

    @property
    def target(self) -> str:
        where = f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"
        return f"{where} at {masked_url(self._client.meta.endpoint_url)}"

    def _object_key(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    async def _call(
        self, method: Any, *args: Any, missing: str | None = None, **kwargs: Any
    ) -> Any:
        """``method(*args, **kwargs)`` in a worker thread. ``BlobNotFound`` for a missing
        ``missing`` key; ``BlobStoreUnavailable`` (503) when S3 cannot be reached or refuses."""
        try:
            return await asyncio.to_thread(method, *args, **kwargs)
        except ClientError as exc:
            if missing is not None and _is_missing(exc):
                raise BlobNotFound(missing) from exc
            raise self._unavailable(f"S3 answered {_error_code(exc)}") from exc
        except BotoCoreError as exc:
            raise self._unavailable(type(exc).__name__) from exc

    def _unavailable(self, why: str) -> BlobStoreUnavailable:
        return BlobStoreUnavailable(
            f"The document store (S3 bucket {self.bucket}) is unavailable ({why}); try again"
        )

    async def check(self) -> None:
        await self._call(self._probe.head_bucket, Bucket=self.bucket)

    async def put_file(self, key: str, source: Path) -> None:
        # A PUT (multipart or not) becomes visible whole, so readers never see part of it.
        await self._call(self._client.upload_file, str(source), self.bucket, self._object_key(key))

    async def _get(self, key: str) -> Any:
        return await self._call(
            self._client.get_object, Bucket=self.bucket, Key=self._object_key(key), missing=key
        )

    async def read(self, key: str) -> bytes:
        body = (await self._get(key))["Body"]
        try:
            data: bytes = await asyncio.to_thread(body.read)
        finally:
            body.close()
        return data

    async def stream(self, key: str, chunk_size: int = 64 * 1024) -> AsyncIterator[bytes]:
        body = (await self._get(key))["Body"]
        try:
            while chunk := await asyncio.to_thread(body.read, chunk_size):
                yield chunk
        finally:
            body.close()

    async def delete(self, key: str) -> None:
        # S3 answers a DELETE of a missing key with success.
        await self._call(self._client.delete_object, Bucket=self.bucket, Key=self._object_key(key))
