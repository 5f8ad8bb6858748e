"""A store in an S3 bucket (or an S3-compatible endpoint): objects appear only when complete."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import structlog
from boto3.s3.transfer import S3UploadFailedError, TransferConfig
from botocore.exceptions import BotoCoreError, ClientError

from worker.common import aws
from worker.common.aws import s3_client
from worker.common.errors import FatalError, TransientError
from worker.common.stores import check_key

log = structlog.get_logger(__name__)

MiB = 1024 * 1024

# Multipart above 64 MiB; S3 shows a multipart object only when CompleteMultipartUpload succeeds.
TRANSFER_CONFIG = TransferConfig(
    multipart_threshold=64 * MiB, multipart_chunksize=64 * MiB, max_concurrency=4
)

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
            if aws.error_code(exc) in ("NoSuchKey", "404", "NotFound"):
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
            if aws.error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                return False
            raise _translate(exc, f"checking {self.url_for(key)}") from exc
        except BotoCoreError as exc:
            raise _translate(exc, f"checking {self.url_for(key)}") from exc
        return True

    def url_for(self, key: str) -> str:
        """``s3://bucket/prefix/key``."""
        return f"s3://{self.bucket}/{self._key(key)}"


_HINT = "check the bucket, the prefix and the task role's permissions"


def _translate(exc: BaseException, doing: str) -> FatalError | TransientError:
    """A boto error as ours, by the one classifier (worker.common.aws)."""
    return aws.as_catalog_error(exc, doing, hint=_HINT)
