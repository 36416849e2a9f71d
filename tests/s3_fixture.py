"""An S3 server (moto) on loopback for the test session, and a fresh bucket per test.

`s3_server` starts moto's S3 server in a thread on a free 127.0.0.1 port once
per session (ready in well under a second) and yields its endpoint URL.
`s3_root` creates an empty bucket for one test, points the *standard* AWS
environment at the server (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
AWS_DEFAULT_REGION, AWS_ENDPOINT_URL; no shared config files, no instance
metadata) and returns `s3://<bucket>/artifacts`, exactly what a user puts in
LOCKGATE_ARTIFACT_ROOT. lockgate is given no endpoint or credentials in code:
if these tests pass, the environment alone is enough, also for child
processes, which inherit it.

`s3_client()` returns a boto3 client built from that same environment, for
tests that look at or damage objects behind the store's back.
`s3_auth` makes the server check credentials for one test (moto accepts
any by default) and yields a key pair it accepts.

Without moto (or flask, flask-cors, s3fs, boto3) the tests that use these
skip with the reason, except under `CI=true`, where that is a failure.
"""

from __future__ import annotations

import json
import os
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

#: The credentials every bucket in the session is reachable with.
ACCESS_KEY = "lockgate-test-key"
SECRET_KEY = "lockgate-test-secret"
REGION = "us-east-1"


def _unavailable(reason: str) -> NoReturn:
    message = f"S3 tests need moto's S3 server and s3fs: {reason}"
    if os.environ.get("CI") == "true":
        pytest.fail(message + " (CI=true: pip install -e '.[test,s3]')")
    pytest.skip(message + " (pip install 'moto[s3]' flask flask-cors s3fs boto3)")


def forget_s3_clients() -> None:
    """Drop fsspec's cached S3 filesystems, so the next one reads the environment afresh.

    fsspec keeps one filesystem object per set of arguments for the life of
    the process, with the credentials and endpoint it resolved when created;
    tests that change the environment must not get an earlier test's one.
    """
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """moto's S3 server on a free loopback port; yields its endpoint URL."""
    try:
        import boto3  # noqa: F401
        import flask  # noqa: F401
        import flask_cors  # noqa: F401
        import s3fs  # noqa: F401
        from moto.server import ThreadedMotoServer
    except ImportError as exc:
        _unavailable(f"{exc.name} is not installed")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def set_s3_env(
    monkeypatch: pytest.MonkeyPatch,
    endpoint: str,
    *,
    access_key: str = ACCESS_KEY,
    secret_key: str = SECRET_KEY,
) -> None:
    """Point the standard AWS environment at `endpoint`, and at nothing else."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    nowhere = str(Path(os.devnull))
    monkeypatch.setenv("AWS_CONFIG_FILE", nowhere)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", nowhere)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret_key)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    forget_s3_clients()


def boto3_client(service: str = "s3") -> Any:
    """A boto3 client configured only by the current AWS environment variables."""
    import boto3

    return boto3.client(service)


def s3_client() -> Any:
    """A boto3 S3 client, for looking at or damaging objects behind the store's back."""
    return boto3_client("s3")


def split_s3_url(url: str) -> tuple[str, str]:
    """`s3://bucket/prefix` -> (bucket, prefix)."""
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    return bucket, prefix.strip("/")


@pytest.fixture
def s3_root(s3_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """`s3://<new bucket>/artifacts`, with the AWS environment pointed at the server."""
    set_s3_env(monkeypatch, s3_server)
    bucket = f"lockgate-test-{uuid.uuid4().hex[:16]}"
    s3_client().create_bucket(Bucket=bucket)
    try:
        yield f"s3://{bucket}/artifacts"
    finally:
        forget_s3_clients()


def _set_auth(endpoint: str, free_requests: str) -> None:
    request = urllib.request.Request(
        f"{endpoint}/moto-api/reset-auth",
        data=free_requests.encode(),
        method="POST",
        headers={"Content-Type": "text/plain"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


@pytest.fixture
def s3_auth(s3_root: str, s3_server: str) -> Iterator[tuple[str, str]]:
    """For one test, the server checks credentials; yields a key pair it accepts.

    The pair belongs to an IAM user allowed `s3:*`, made before checking
    starts. Every other key, including the session's default, is refused.
    """
    iam = boto3_client("iam")
    user = f"lockgate-{uuid.uuid4().hex[:12]}"
    iam.create_user(UserName=user)
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
    }
    iam.put_user_policy(UserName=user, PolicyName="s3", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=user)["AccessKey"]
    _set_auth(s3_server, "0")
    try:
        yield key["AccessKeyId"], key["SecretAccessKey"]
    finally:
        _set_auth(s3_server, "inf")
