"""A store in an S3 bucket (or an S3-compatible endpoint): objects appear only when complete."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import structlog
from boto3.s3.transfer import S3UploadFailedError, TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from worker.common.errors import FatalError, TransientError
from worker.common.stores import check_key

log = structlog.get_logger(__name__)

MiB = 1024 * 1024

# botocore's standard retry mode backs off on throttling and 5xx with jitter; a few attempts.
CLIENT_CONFIG = Config(
    retries={"mode": "standard", "total_max_attempts": 5},
    connect_timeout=10,
    read_timeout=60,
)
# Multipart above 64 MiB; S3 shows a multipart object only when CompleteMultipartUpload succeeds.
TRANSFER_CONFIG = TransferConfig(
    multipart_threshold=64 * MiB, multipart_chunksize=64 * MiB, max_concurrency=4
)

_FATAL_CODES = frozenset(
    {"AccessDenied", "NoSuchBucket", "InvalidAccessKeyId", "SignatureDoesNotMatch",
     "AllAccessDisabled", "InvalidBucketName", "AccountProblem", "InvalidRequest",
     "PermanentRedirect", "AuthorizationHeaderMalformed", "400", "403"}
)


def s3_client(endpoint_url: str | None = None, **options: Any) -> Any:
    """An S3 client with our retry and timeout config; ``options`` go to boto3 (tests: keys)."""
    return boto3.client("s3", endpoint_url=endpoint_url, config=CLIENT_CONFIG, **options)


class S3Store:
    """Objects under ``s3://bucket/prefix``; ``client`` and ``transfer_config`` are for tests."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        client: Any | None = None,
        transfer_config: TransferConfig | None = None,
    ) -> None:
        self.bucket = bucket
        prefix = prefix.strip("/")
        self.prefix = f"{prefix}/" if prefix else ""
        self.client = client or s3_client(endpoint_url)
        self.transfer_config = transfer_config or TRANSFER_CONFIG

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    def publish_file(
        self, key: str, path: Path, *, content_type: str, content_encoding: str | None = None
    ) -> None:
        """Upload ``path`` to ``key`` (multipart when large); readers see it only when complete."""
        extra = {"ContentType": content_type}
        if content_encoding:
            extra["ContentEncoding"] = content_encoding
        source = Path(path)
        if not source.is_file():
            raise FatalError(f"cannot publish {source} as {self.url_for(key)}: not a readable file")
        try:
            self.client.upload_file(
                str(source), self.bucket, self._key(key), ExtraArgs=extra,
                Config=self.transfer_config,
            )
        except (S3UploadFailedError, ClientError, BotoCoreError, ConnectionError, TimeoutError) as exc:
            raise _translate(exc, f"uploading {source} to {self.url_for(key)}") from exc
        log.debug("store.published", key=key, url=self.url_for(key))

    def put_bytes(self, key: str, data: bytes, *, content_type: str) -> None:
        """Put ``data`` under ``key`` in one request (a single PUT is atomic)."""
        try:
            self.client.put_object(
                Bucket=self.bucket, Key=self._key(key), Body=data, ContentType=content_type
            )
        except (ClientError, BotoCoreError) as exc:
            raise _translate(exc, f"writing {self.url_for(key)}") from exc

    def get_bytes(self, key: str) -> bytes | None:
        """The object's bytes, or None when there is no such key."""
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404", "NotFound"):
                return None
            raise _translate(exc, f"reading {self.url_for(key)}") from exc
        except BotoCoreError as exc:
            raise _translate(exc, f"reading {self.url_for(key)}") from exc
        body = response["Body"]
        try:
            return bytes(body.read())
        except BotoCoreError as exc:
            raise _translate(exc, f"reading {self.url_for(key)}") from exc
        finally:
            body.close()

    def exists(self, key: str) -> bool:
        """Whether an object is published under ``key`` (HEAD; 404 means no)."""
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if _code(exc) in ("404", "NoSuchKey", "NotFound"):
                return False
            raise _translate(exc, f"checking {self.url_for(key)}") from exc
        except BotoCoreError as exc:
            raise _translate(exc, f"checking {self.url_for(key)}") from exc
        return True

    def url_for(self, key: str) -> str:
        """``s3://bucket/prefix/key``."""
        return f"s3://{self.bucket}/{self._key(key)}"


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def _translate(exc: BaseException, doing: str) -> FatalError | TransientError:
    """A boto error as ours: configuration and permissions are fatal, the rest may pass."""
    cause: BaseException = exc
    if isinstance(exc, S3UploadFailedError) and isinstance(exc.__context__, ClientError):
        cause = exc.__context__
    if isinstance(cause, ClientError):
        code, status = _code(cause), _status(cause)
        if code in _FATAL_CODES or (400 <= status < 500 and status not in (408, 429)):
            return FatalError(
                f"{doing} failed: {code or status} ({cause}); check the bucket, the prefix and "
                "the task role's permissions"
            )
        return TransientError(f"{doing} failed after retries: {code or status} ({cause})")
    if isinstance(cause, S3UploadFailedError):
        text = str(cause)
        if any(code in text for code in ("AccessDenied", "NoSuchBucket", "InvalidAccessKeyId")):
            return FatalError(
                f"{doing} failed: {text}; check the bucket and the task role's permissions"
            )
        return TransientError(f"{doing} failed: {text}")
    if isinstance(cause, BotoConnectionError | ConnectionError | TimeoutError):
        return TransientError(f"{doing} failed: cannot reach S3 ({cause}); a later attempt may")
    if isinstance(cause, BotoCoreError) and "credential" in type(cause).__name__.lower():
        return FatalError(f"{doing} failed: {cause}; give the task a role or AWS credentials")
    return TransientError(f"{doing} failed: {cause}")
