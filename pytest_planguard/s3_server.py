"""A real S3 server on loopback for tests: moto's, started and stopped by the caller.

``start_s3_server()`` binds ``127.0.0.1`` on a free port (never ``0.0.0.0``), creates one
IAM user with an access key and then enforces authentication, so a wrong key is refused
as by a real store (``STORE_ACCESS_DENIED``).  The pytest fixture ``planguard_s3_server``
(session-scoped) wraps it; everything here is imported only when that fixture is used:
``moto[server]`` (and the ``boto3`` it brings) is a test dependency, not a runtime one.

The server is moto's ``ThreadedMotoServer`` inside the test process.  moto keeps its
authentication switch per process: a process that runs this server and also uses
``moto.mock_aws`` shares it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import urllib.request
from dataclasses import dataclass, field
from typing import Any

LOOPBACK = "127.0.0.1"
REGION = "us-east-1"
_ALLOW_ALL = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
)


@dataclass(frozen=True)
class S3Server:
    """A running server: where it listens and the credentials it accepts."""

    endpoint: str
    port: int
    access_key_id: str = field(repr=False)
    secret_access_key: str = field(repr=False)
    region: str = REGION
    server: Any = field(default=None, repr=False, compare=False)

    def storage_options(self, **extra: str) -> dict[str, str]:
        """deltalake / object_store options reaching this server with its credentials."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_REGION": self.region,
            "AWS_ALLOW_HTTP": "true",
            "conditional_put": "etag",
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            **extra,
        }

    def client(self) -> Any:
        """A boto3 S3 client for this server (set-up and inspection in tests)."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
        )

    def create_bucket(self, name: str) -> str:
        """Create bucket ``name`` (idempotent); returns ``s3://name``."""
        client = self.client()
        with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
            client.create_bucket(Bucket=name)
        return f"s3://{name}"

    def delete_prefix(self, bucket: str, prefix: str) -> int:
        """Delete every object under ``prefix`` in ``bucket``; returns how many."""
        client = self.client()
        keys = [
            {"Key": item["Key"]}
            for page in client.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=prefix
            )
            for item in page.get("Contents", [])
        ]
        for start in range(0, len(keys), 1000):
            client.delete_objects(Bucket=bucket, Delete={"Objects": keys[start : start + 1000]})
        return len(keys)

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        client = self.client()
        return sorted(
            item["Key"]
            for page in client.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=prefix
            )
            for item in page.get("Contents", [])
        )

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


def start_s3_server(*, port: int | None = None) -> S3Server:
    """Start moto's S3 server on ``127.0.0.1`` (a free port unless ``port``), with one
    user whose key it accepts, and authentication enforced.  Stop it with ``.stop()``."""
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request else
    chosen = port or free_port()
    server = ThreadedMotoServer(ip_address=LOOPBACK, port=chosen, verbose=False)
    server.start()
    endpoint = f"http://{LOOPBACK}:{chosen}"
    try:
        _post(f"{endpoint}/moto-api/reset-auth", b"inf")  # set up without authentication
        iam = boto3.client(
            "iam",
            endpoint_url=endpoint,
            region_name=REGION,
            aws_access_key_id="setup",
            aws_secret_access_key="setup",
        )
        iam.create_user(UserName="planguard")
        iam.put_user_policy(UserName="planguard", PolicyName="all", PolicyDocument=_ALLOW_ALL)
        key = iam.create_access_key(UserName="planguard")["AccessKey"]
        _post(f"{endpoint}/moto-api/reset-auth", b"0")  # from now on, keys are checked
    except BaseException:
        server.stop()
        raise
    return S3Server(
        endpoint=endpoint,
        port=chosen,
        access_key_id=key["AccessKeyId"],
        secret_access_key=key["SecretAccessKey"],
        server=server,
    )


def _post(url: str, body: bytes) -> None:
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/octet-stream"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()
