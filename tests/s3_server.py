"""A real S3 API (moto's server) on loopback, for the S3 blob store and anything built on it.

Use the fixtures from a test module with `pytest_plugins = ["tests.s3_server"]`. `s3_endpoint` is
the endpoint URL; the bucket `s3_bucket` names exists; dummy AWS credentials are in the
environment for the whole session (so boto3's standard credential chain finds them).
"""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from moto.server import ThreadedMotoServer

S3_TEST_BUCKET = "omnichat-test"
S3_TEST_REGION = "us-east-1"

_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": S3_TEST_REGION,
    # Never pick up a developer's real profile, or ask an instance metadata service.
    "AWS_CONFIG_FILE": "/nonexistent/omnichat-test-aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/omnichat-test-aws-credentials",
    "AWS_EC2_METADATA_DISABLED": "true",
}


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in _ENVIRONMENT.items():
            patch.setenv(name, value)
        for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
            patch.delenv(name, raising=False)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        try:
            host, port = server.get_host_and_port()
            url = f"http://{host}:{port}"
            client = boto3.session.Session().client(
                "s3", endpoint_url=url, region_name=S3_TEST_REGION
            )
            client.create_bucket(Bucket=S3_TEST_BUCKET)
            yield url
        finally:
            server.stop()


@pytest.fixture(scope="session")
def s3_bucket(s3_endpoint: str) -> str:
    """The bucket made in the fake S3 (shared by the session: give each test its own prefix)."""
    return S3_TEST_BUCKET
