"""The submitter's settings: read from the environment once, at start, into one frozen object.

This module and ``worker/common/settings.py`` are the only readers of ``os.environ``. The Lambda
gets ``JOB_QUEUE``, ``JOB_DEFINITION`` and ``DATABASE_SECRET_ARN`` from the CloudFormation stack;
the CLI takes the same variables or their command-line options.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from worker.common.errors import ConfigError, TransientError
from worker.common.settings import database_url_from_secret


@dataclass(frozen=True)
class SubmitterConfig:
    database_url: str | None = None
    database_secret_arn: str | None = None
    job_queue: str | None = None
    job_definition: str | None = None
    aws_endpoint_url: str | None = None
    # Chain images before feed, so that the night's feed already carries the processed images.
    images_before_feed: bool = False
    # What the local executor and the demo hand to the worker processes.
    output_url: str | None = None
    fetch_allow_networks: str | None = None
    log_format: str | None = None
    # Bundles: small shops share an array child up to this many seconds (0: every shop alone).
    bundle_target_s: float = 300.0
    # Retention: the Lambda prunes task rows, rejects and runs older than this after a night.
    keep_days: int = 30
    # The environment a local child inherits besides the Batch variables (PATH, HOME, locale…).
    inherited: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SubmitterConfig:
        """Parse the submitter's variables; raise ``ConfigError`` naming each bad one."""
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        flag = (get("IMAGES_BEFORE_FEED") or "0").lower()
        if flag not in ("0", "1", "true", "false", "yes", "no"):
            raise ConfigError(f"IMAGES_BEFORE_FEED={flag!r} is not a boolean: expected 1 or 0")
        numbers: dict[str, float] = {}
        for name, default, minimum in (("BUNDLE_TARGET_SECONDS", 300.0, 0.0),
                                       ("KEEP_DAYS", 30.0, 1.0)):
            raw = get(name)
            try:
                value = float(raw) if raw is not None else default
            except ValueError:
                raise ConfigError(f"{name}={raw!r} is not a number: expected ≥ {minimum:g}") from None
            if value < minimum:
                raise ConfigError(f"{name}={raw} is below {minimum:g}")
            numbers[name] = value
        inherited = tuple(
            (k, v) for k, v in env.items()
            if k in ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "PYTHONPATH", "VIRTUAL_ENV",
                     "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_ENDPOINT_URL",
                     "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                     "SOURCE_FILE_ROOT")
        )
        return cls(
            database_url=get("DATABASE_URL"),
            database_secret_arn=get("DATABASE_SECRET_ARN"),
            job_queue=get("JOB_QUEUE"),
            job_definition=get("JOB_DEFINITION"),
            aws_endpoint_url=get("AWS_ENDPOINT_URL"),
            images_before_feed=flag in ("1", "true", "yes"),
            output_url=get("OUTPUT_URL"),
            fetch_allow_networks=get("FETCH_ALLOW_NETWORKS"),
            log_format=get("LOG_FORMAT"),
            bundle_target_s=numbers["BUNDLE_TARGET_SECONDS"],
            keep_days=int(numbers["KEEP_DAYS"]),
            inherited=inherited,
        )

    def with_overrides(self, **changes: Any) -> SubmitterConfig:
        """A copy with the command line's explicit options (None means: keep the environment's)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def require_batch(self) -> tuple[str, str]:
        """The job queue and job definition, or a ``ConfigError`` naming what is missing."""
        missing = [
            name for name, value in (("JOB_QUEUE", self.job_queue),
                                     ("JOB_DEFINITION", self.job_definition))
            if not value
        ]
        if missing:
            raise ConfigError(
                f"{' and '.join(missing)} not set: give the AWS Batch job queue and job definition "
                "(environment, or --job-queue / --job-definition)"
            )
        assert self.job_queue is not None and self.job_definition is not None
        return self.job_queue, self.job_definition


def resolve_database_url(config: SubmitterConfig, *, secrets_client: Any = None) -> str:
    """DATABASE_URL if given, else the secret named by DATABASE_SECRET_ARN (read once)."""
    if config.database_url:
        return config.database_url
    if not config.database_secret_arn:
        raise ConfigError(
            "DATABASE_URL is not set and no DATABASE_SECRET_ARN names a secret holding it: give "
            "one of them (e.g. DATABASE_URL=postgresql://user@host:5432/db)"
        )
    from botocore.exceptions import BotoCoreError, ClientError

    from worker.common import aws

    if secrets_client is None:
        secrets_client = aws.secrets_client(endpoint_url=config.aws_endpoint_url)
    try:
        value = secrets_client.get_secret_value(SecretId=config.database_secret_arn)
    except (ClientError, BotoCoreError) as exc:
        failure = aws.as_catalog_error(
            exc, f"reading the database secret {config.database_secret_arn}",
            hint="check the secret's ARN and the role's secretsmanager:GetSecretValue permission",
        )
        if isinstance(failure, TransientError):
            raise failure from exc
        raise ConfigError(str(failure)) from exc
    return database_url_from_secret(str(value.get("SecretString") or ""))
