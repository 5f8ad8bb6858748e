"""worker.common.aws: the client factories and the one transient/permanent classifier, against real
HTTP endpoints on 127.0.0.1 (an S3-shaped error server, moto, a closed port)."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tests.fixtures_http import Server, read_body, send, serve
from worker.common import aws
from worker.common.errors import (
    FatalError,
    TransientError,
    backoff_delay,
    exit_code_for,
)
from worker.common.stores.s3 import S3Store

ROOT = Path(__file__).resolve().parents[3]
KEYS = {"region_name": "us-east-1", "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


@pytest.fixture
def error_server(request: pytest.FixtureRequest) -> Iterator[Server]:
    """Answers every request with one status and an S3-style XML error code."""
    status, code = request.param
    body = f"<Error><Code>{code}</Code><Message>said {code}</Message></Error>".encode()

    def answer(h: BaseHTTPRequestHandler) -> None:
        read_body(h)
        send(h, status, body, {"Content-Type": "application/xml"})

    with serve(fallback=answer) as server:
        yield server


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    ("error_server", "kind"),
    [
        ((503, "SlowDown"), "transient"),
        ((500, "InternalError"), "transient"),
        ((429, "TooManyRequests"), "transient"),
        ((400, "ThrottlingException"), "transient"),  # throttling said with a 400
        ((400, "RequestTimeout"), "transient"),
        ((403, "AccessDenied"), "permanent"),
        ((404, "NoSuchBucket"), "permanent"),
        ((400, "ValidationException"), "permanent"),
        ((400, "InvalidBucketName"), "permanent"),
    ],
    indirect=["error_server"],
)
def test_an_aws_answer_is_classified_by_its_code_and_status(
    error_server: Server, kind: str
) -> None:
    client = aws.client("s3", endpoint_url=error_server.base, attempts=1, **KEYS)
    with pytest.raises(ClientError) as caught:
        client.put_object(Bucket="bucket", Key="k", Body=b"x")
    assert aws.classify(caught.value) == kind
    failure = aws.as_catalog_error(caught.value, "writing s3://bucket/k", hint="fix it")
    assert isinstance(failure, TransientError if kind == "transient" else FatalError)
    assert exit_code_for(failure) == (75 if kind == "transient" else 65)
    assert "writing s3://bucket/k failed" in str(failure)
    assert len(error_server.hits) == 1


def test_an_unreachable_endpoint_is_transient() -> None:
    client = aws.client("s3", endpoint_url=f"http://127.0.0.1:{_closed_port()}", attempts=1, **KEYS)
    with pytest.raises(Exception) as caught:
        client.head_bucket(Bucket="bucket")
    assert aws.classify(caught.value) == "transient"


def test_a_request_that_fails_validation_is_permanent() -> None:
    client = aws.client("s3", endpoint_url=f"http://127.0.0.1:{_closed_port()}", attempts=1, **KEYS)
    with pytest.raises(Exception) as caught:
        client.get_object(Bucket="bucket")  # Key is required: botocore refuses before sending
    assert aws.classify(caught.value) == "permanent"


@pytest.fixture
def container_credentials_down(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The environment of a Batch container whose credentials endpoint does not answer."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv(
        "AWS_CONTAINER_CREDENTIALS_FULL_URI", f"http://127.0.0.1:{_closed_port()}/v2/credentials"
    )


@pytest.mark.usefixtures("container_credentials_down")
def test_a_credentials_endpoint_that_is_down_makes_client_creation_transient() -> None:
    with pytest.raises(TransientError) as caught:
        aws.s3_client()
    assert exit_code_for(caught.value) == 75
    assert "creating the AWS s3 client failed: CredentialRetrievalError" in str(caught.value)


@pytest.mark.usefixtures("container_credentials_down")
def test_a_store_whose_client_cannot_be_made_exits_75() -> None:
    with pytest.raises(TransientError) as caught:
        S3Store("feeds", "nightly")
    assert exit_code_for(caught.value) == 75


def test_no_credentials_at_all_is_permanent(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                 "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    client = aws.s3_client(f"http://127.0.0.1:{_closed_port()}", region_name="us-east-1")
    with pytest.raises(Exception) as caught:
        client.head_bucket(Bucket="bucket")
    assert aws.classify(caught.value) == "permanent"
    assert isinstance(aws.as_catalog_error(caught.value, "x", hint="give the task a role"), FatalError)


def test_the_clients_share_one_configuration() -> None:
    s3 = aws.s3_client("http://127.0.0.1:9", **KEYS)
    batch = aws.batch_client(endpoint_url="http://127.0.0.1:9", region_name="us-east-1")
    secrets = aws.secrets_client(endpoint_url="http://127.0.0.1:9", region_name="us-east-1")
    for client in (s3, batch, secrets):
        assert client.meta.endpoint_url == "http://127.0.0.1:9"
        assert client.meta.config.connect_timeout == aws.CONNECT_TIMEOUT
        assert client.meta.config.read_timeout == aws.READ_TIMEOUT
    assert s3.meta.config.retries["total_max_attempts"] == aws.ATTEMPTS
    # BatchApi retries Batch calls itself, with the project's back-off.
    assert batch.meta.config.retries["total_max_attempts"] == 1


@pytest.mark.parametrize(("attempt", "expected"), [(0, 0.25), (1, 0.5), (3, 2.0), (10, 20.0)])
def test_backoff_is_exponential_capped_and_scaled_by_the_jitter(attempt: int, expected: float) -> None:
    assert backoff_delay(attempt, base=0.25, cap=20.0, jitter=lambda: 1.0) == expected
    assert backoff_delay(attempt, base=0.25, cap=20.0, jitter=lambda: 0.5) == expected / 2
    assert backoff_delay(attempt, base=0.25, cap=20.0, jitter=lambda: 0.0) == 0.0


def test_no_module_but_aws_makes_a_boto3_client_or_classifies_boto_errors() -> None:
    # One factory and one classifier: a second boto3.client(...) or a second list of AWS error
    # codes elsewhere would decide the same question twice.
    offenders: list[str] = []
    pattern = re.compile(r"boto3\.(client|resource|session)\b|\.response\.get\(['\"]Error")
    for package in ("worker", "submitter"):
        for path in (ROOT / package).rglob("*.py"):
            if path == ROOT / "worker" / "common" / "aws.py":
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if pattern.search(line):
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []
