"""AWS, decided once: the client factories (S3, Batch, Secrets Manager) with their shared botocore
configuration, and the one classifier that calls a boto error transient (exit 75) or permanent (65).

Every caller (collect's S3 source, the S3 store, the submitter's Batch and Secrets Manager calls)
makes its clients here and turns their errors into ours here; back-off between attempts is
``worker.common.errors.backoff_delay``.
"""

from __future__ import annotations

from typing import Any, Literal

from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    CredentialRetrievalError,
    EndpointConnectionError,
    IncompleteReadError,
    MetadataRetrievalError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    PartialCredentialsError,
    ReadTimeoutError,
    ResponseStreamingError,
    UnknownServiceError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from worker.common.errors import FatalError, TransientError

Kind = Literal["transient", "permanent"]

# botocore's standard retry mode backs off on throttling and 5xx with jitter; a few attempts.
ATTEMPTS = 5
CONNECT_TIMEOUT = 10
READ_TIMEOUT = 60

# Codes AWS services use for "slow down" (some answer 400 with them, not 429).
THROTTLING_CODES = frozenset({
    "TooManyRequestsException", "ThrottlingException", "Throttling", "ThrottledException",
    "RequestLimitExceeded", "ProvisionedThroughputExceededException", "SlowDown",
    "RequestThrottled", "RequestThrottledException", "BandwidthLimitExceeded",
    "TransactionInProgressException", "PriorRequestNotComplete", "EC2ThrottledException",
})
# Codes of a request that timed out or a service that hiccuped, whatever the status says.
_TRANSIENT_CODES = frozenset({
    "RequestTimeout", "RequestTimeoutException", "InternalError", "InternalFailure",
    "InternalServerError", "ServiceUnavailable", "ServiceUnavailableException",
    "ServerException", "Unavailable", "OperationAborted",
})
# A network that failed or a credential endpoint that did not answer: a later attempt may pass.
_TRANSIENT_BOTOCORE = (
    BotoConnectionError, EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError,
    ConnectionClosedError, ResponseStreamingError, IncompleteReadError,
    CredentialRetrievalError, MetadataRetrievalError,
)
# Our configuration or our request is wrong: no later attempt differs.
_PERMANENT_BOTOCORE = (
    NoCredentialsError, PartialCredentialsError, NoRegionError, ParamValidationError,
    UnknownServiceError,
)


def client_config(*, attempts: int = ATTEMPTS) -> Config:
    """The botocore configuration every client shares: standard retries, bounded timeouts."""
    return Config(
        retries={"mode": "standard", "total_max_attempts": attempts},
        connect_timeout=CONNECT_TIMEOUT,
        read_timeout=READ_TIMEOUT,
    )


def client(
    service: str,
    *,
    endpoint_url: str | None = None,
    region_name: str | None = None,
    attempts: int = ATTEMPTS,
    **options: Any,
) -> Any:
    """A boto3 client for ``service``; failing to make one is a ``TransientError`` or a
    ``FatalError`` by the classifier (a container credentials endpoint that is down: 75).

    Each client comes from a session of its own: boto3's default session is not thread-safe and
    caches the credentials it resolved first. ``options`` go to boto3 (tests: keys).
    """
    import boto3

    try:
        session = boto3.session.Session()
        return session.client(
            service,
            endpoint_url=endpoint_url,
            region_name=region_name,
            config=client_config(attempts=attempts),
            **options,
        )
    except (BotoCoreError, ClientError, OSError) as exc:
        raise as_catalog_error(
            exc, f"creating the AWS {service} client",
            hint="check the task's role and its credentials endpoint, AWS_REGION and "
            "AWS_ENDPOINT_URL",
        ) from exc


def s3_client(endpoint_url: str | None = None, **options: Any) -> Any:
    """An S3 client (stores and collect's s3:// sources); ``endpoint_url`` from settings."""
    return client("s3", endpoint_url=endpoint_url, **options)


def batch_client(*, endpoint_url: str | None = None, region_name: str | None = None) -> Any:
    """A Batch client with botocore's retries off: ``BatchApi`` retries what may pass itself."""
    return client("batch", endpoint_url=endpoint_url, region_name=region_name, attempts=1)


def secrets_client(*, endpoint_url: str | None = None, region_name: str | None = None) -> Any:
    """A Secrets Manager client (the submitter reads the database URL's secret with it)."""
    return client("secretsmanager", endpoint_url=endpoint_url, region_name=region_name)


def error_code(exc: BaseException) -> str:
    """The AWS error code of a ``ClientError`` (``"AccessDenied"``, ``"404"``), else ``""``."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "") or "")
    return ""


def error_message(exc: BaseException) -> str:
    """The AWS error message of a ``ClientError``, else the exception's text."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Message", "") or "")
    return str(exc)


def http_status(exc: BaseException) -> int:
    """The HTTP status of a ``ClientError``'s response, else 0."""
    if isinstance(exc, ClientError):
        return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return 0


def _client_error_in(exc: BaseException) -> ClientError | None:
    # s3transfer wraps the ClientError of a failed upload in S3UploadFailedError.
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ClientError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def classify(exc: BaseException) -> Kind:
    """Whether a boto3/botocore error (or a network error under it) may pass on a later attempt.

    Transient: throttling, 5xx, request timeouts, connection failures, a credentials endpoint that
    does not answer. Permanent: everything a retry would repeat: access denied, no such bucket or
    key, validation errors, missing credentials or region, any other 4xx.
    """
    if isinstance(exc, _PERMANENT_BOTOCORE):
        return "permanent"
    if isinstance(exc, _TRANSIENT_BOTOCORE):
        return "transient"
    found = _client_error_in(exc)
    if found is not None:
        code, status = error_code(found), http_status(found)
        if code in THROTTLING_CODES or code in _TRANSIENT_CODES:
            return "transient"
        if status in (408, 429) or status >= 500:
            return "transient"
        return "permanent"
    if isinstance(exc, ConnectionError | TimeoutError):
        return "transient"
    text = str(exc)
    if any(code in text for code in ("AccessDenied", "NoSuchBucket", "InvalidAccessKeyId",
                                     "SignatureDoesNotMatch", "ValidationException")):
        return "permanent"
    # Another botocore failure (a broken response, a waiter) or an OSError of the network.
    return "transient"


def is_transient(exc: BaseException) -> bool:
    """``classify(exc) == "transient"``."""
    return classify(exc) == "transient"


def as_catalog_error(exc: BaseException, doing: str, *, hint: str) -> FatalError | TransientError:
    """A boto error as ours, by ``classify``: what failed, why, and (when permanent) what to fix."""
    found = _client_error_in(exc)
    what = (error_code(found) or str(http_status(found))) if found is not None else type(exc).__name__
    if classify(exc) == "permanent":
        return FatalError(f"{doing} failed: {what} ({exc}); {hint}")
    return TransientError(f"{doing} failed: {what} ({exc}); a later attempt will retry")


__all__ = [
    "THROTTLING_CODES", "as_catalog_error", "batch_client", "classify", "client", "client_config",
    "error_code", "error_message", "http_status", "is_transient", "s3_client", "secrets_client",
]
