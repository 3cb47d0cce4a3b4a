"""The blob store a deployment's settings name: ``file://`` (the default) or ``s3://``."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

from omnichat.blobs.base import BlobStore
from omnichat.settings import Settings


def build_blob_store(settings: Settings) -> BlobStore:
    url = settings.resolved_blob_url
    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ValueError(f"OMNICHAT_BLOB_URL {url!r}: a file:// URL cannot name a host")
        from omnichat.blobs.local import LocalBlobStore

        return LocalBlobStore(Path(url2pathname(parts.path)))
    if parts.scheme == "s3":
        if "@" in parts.netloc:
            # Never echoed: what precedes the @ may be a secret key.
            raise ValueError(
                "OMNICHAT_BLOB_URL: credentials do not belong in the URL (s3://bucket[/prefix]); "
                "S3 credentials come from the standard AWS chain (AWS_ACCESS_KEY_ID, ...)"
            )
        if not parts.netloc:
            raise ValueError(f"OMNICHAT_BLOB_URL {url!r}: expected s3://bucket[/prefix]")
        from omnichat.blobs.s3 import S3BlobStore

        return S3BlobStore(
            bucket=parts.netloc,
            prefix=parts.path.strip("/"),
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
        )
    raise ValueError(
        f"OMNICHAT_BLOB_URL {url!r} is not supported: use file:///path/to/folder "
        "or s3://bucket/prefix"
    )
