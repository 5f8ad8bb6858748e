"""AWS Batch: the one place a SubmitJob payload is built, and the calls the submitter makes.

Metaflow's batch client's patterns: the payload built in one function and checked against Batch's
size limits (30 KiB per request, 8,192 characters of container overrides), ``describe_jobs`` in
batches of 100, and back-off with full jitter only on throttling and 5xx — a 4xx is our mistake and
retrying it would only repeat it.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from submitter.plan import PlannedJob
from worker.common import aws
from worker.common.errors import ConfigError, FatalError, TransientError, backoff_delay

MAX_PAYLOAD_BYTES = 30 * 1024
MAX_OVERRIDES_CHARS = 8_192
DESCRIBE_BATCH = 100
RUN_TAG = "catalog-batch:run-id"
TASK_TAG = "catalog-batch:task"

log = structlog.get_logger(__name__)


def submit_job_payload(
    job: PlannedJob,
    *,
    job_queue: str,
    job_definition: str,
    job_ids: Mapping[str, str],
    extra_environment: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The SubmitJob request for one planned job; ``job_ids`` maps planned keys to submitted ids."""
    environment = dict(job.environment)
    if extra_environment:
        environment.update(extra_environment)
    run_id = environment["RUN_ID"]
    payload: dict[str, Any] = {
        "jobName": job.name,
        "jobQueue": job_queue,
        "jobDefinition": job_definition,
        "containerOverrides": {
            "command": list(job.command),
            "environment": [{"name": k, "value": v} for k, v in sorted(environment.items())],
        },
        "tags": {RUN_TAG: run_id, TASK_TAG: job.task},
        # The run id reaches every child's ECS task, so cost and logs can be filtered by night.
        "propagateTags": True,
    }
    if job.array_size is not None:
        payload["arrayProperties"] = {"size": job.array_size}
    if job.depends_on:
        depends = []
        for dep in job.depends_on:
            if dep.key not in job_ids:
                raise FatalError(
                    f"job {job.name} depends on {dep.key}, which has no submitted job id yet"
                )
            entry = {"jobId": job_ids[dep.key]}
            if dep.type is not None:
                entry["type"] = dep.type
            depends.append(entry)
        payload["dependsOn"] = depends
    check_payload(payload)
    return payload


def one_off_job_payload(
    task: str, *, job_queue: str, job_definition: str, name: str
) -> dict[str, Any]:
    """The SubmitJob request for one plain (non-array) job of the worker image running ``task``
    with no shop, such as ``migrate``: the job definition's environment and secret, nothing more."""
    payload: dict[str, Any] = {
        "jobName": name,
        "jobQueue": job_queue,
        "jobDefinition": job_definition,
        "containerOverrides": {"command": [task]},
        "tags": {TASK_TAG: task},
        "propagateTags": True,
    }
    check_payload(payload)
    return payload


def check_payload(payload: Mapping[str, Any]) -> None:
    """Batch's size limits on one request, checked before AWS refuses it."""
    overrides = len(json.dumps(payload.get("containerOverrides", {}), separators=(",", ":")))
    if overrides > MAX_OVERRIDES_CHARS:
        raise FatalError(
            f"job {payload.get('jobName')}: container overrides are {overrides} characters, over "
            f"Batch's {MAX_OVERRIDES_CHARS}; keep lists in the database, not in the environment"
        )
    size = len(json.dumps(payload, separators=(",", ":")).encode())
    if size > MAX_PAYLOAD_BYTES:
        raise FatalError(
            f"job {payload.get('jobName')}: the SubmitJob request is {size} bytes, over Batch's "
            f"{MAX_PAYLOAD_BYTES}"
        )


# The one Batch client factory, under the name the CLI and the Lambda call it by.
make_client = aws.batch_client


class BatchApi:
    """The submitter's Batch calls, each retried on throttling and 5xx with jittered back-off."""

    def __init__(
        self,
        client: Any,
        *,
        attempts: int = 8,
        base_delay: float = 0.25,
        max_delay: float = 20.0,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.client = client
        self.attempts = attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._sleep = sleep
        self._jitter = jitter

    def _call(self, operation: str, **kwargs: Any) -> Any:
        method = getattr(self.client, operation)
        for attempt in range(1, self.attempts + 1):
            try:
                return method(**kwargs)
            except (ClientError, BotoCoreError, ConnectionError) as exc:
                if not aws.is_transient(exc):
                    if isinstance(exc, ClientError):
                        raise ConfigError(
                            f"AWS Batch refused {operation}: {aws.error_code(exc)}: "
                            f"{aws.error_message(exc)} (check the job "
                            "queue, job definition and the role's permissions)"
                        ) from exc
                    raise aws.as_catalog_error(
                        exc, f"AWS Batch {operation}",
                        hint="check the region, the credentials and AWS_ENDPOINT_URL",
                    ) from exc
                if attempt == self.attempts:
                    raise TransientError(
                        f"AWS Batch {operation} still throttled or failing after {attempt} "
                        f"attempts: {exc}; a later invocation will complete the run"
                    ) from exc
                # Full jitter: many submitters backing off together do not retry together.
                delay = backoff_delay(
                    attempt - 1, base=self.base_delay, cap=self.max_delay, jitter=self._jitter
                )
                log.warning("batch.retry", operation=operation, attempt=attempt,
                            delay_s=round(delay, 3), error=str(exc))
                self._sleep(delay)
        raise AssertionError("unreachable")

    def submit_job(self, payload: Mapping[str, Any]) -> str:
        """Submit one job; its id."""
        response = self._call("submit_job", **payload)
        return str(response["jobId"])

    def wait_for_job(
        self, job_id: str, *, timeout_s: float, poll_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> dict[str, Any]:
        """Describe ``job_id`` every ``poll_s`` until it SUCCEEDED or FAILED; the last description.
        Still unfinished after ``timeout_s``: a ``TransientError`` naming its status."""
        deadline = clock() + timeout_s
        while True:
            found = list(self.describe_jobs([job_id]))
            if not found:
                raise FatalError(f"AWS Batch does not know job {job_id} (another region or account?)")
            job = found[0]
            if job.get("status") in ("SUCCEEDED", "FAILED"):
                return job
            if clock() >= deadline:
                raise TransientError(
                    f"job {job_id} is still {job.get('status')} after {timeout_s:.0f} s; follow it "
                    f"with `aws batch describe-jobs --jobs {job_id}`"
                )
            log.info("batch.waiting", job_id=job_id, status=job.get("status"))
            self._sleep(poll_s)

    def register_with_image(self, job_definition: str, image_tag: str) -> str:
        """A new revision of ``job_definition`` that differs only in its image's tag (same
        repository), for a one-off job of an image the stack does not run yet; its ARN."""
        found = self._call("describe_job_definitions", jobDefinitions=[job_definition])
        if not found.get("jobDefinitions"):
            raise ConfigError(f"AWS Batch has no job definition {job_definition}")
        definition = found["jobDefinitions"][0]
        container = dict(definition["containerProperties"])
        container["image"] = f"{container['image'].rsplit(':', 1)[0]}:{image_tag}"
        # The API takes each requirement's value as a string (a described one may be a number).
        container["resourceRequirements"] = [
            {**r, "value": str(r["value"])} for r in container.get("resourceRequirements", [])
        ]
        request: dict[str, Any] = {
            "jobDefinitionName": definition["jobDefinitionName"],
            "type": definition["type"],
            "containerProperties": container,
        }
        for key in ("parameters", "retryStrategy", "timeout", "platformCapabilities",
                    "propagateTags", "consumableResourceProperties"):
            if definition.get(key) is not None:
                request[key] = definition[key]
        return str(self._call("register_job_definition", **request)["jobDefinitionArn"])

    def deregister_job_definition(self, job_definition: str) -> None:
        self._call("deregister_job_definition", jobDefinition=job_definition)

    def find_job(self, job_queue: str, name: str, run_id: str) -> str | None:
        """A job of this run already submitted under ``name`` (a crash lost its id), else None."""
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {
                "jobQueue": job_queue,
                "filters": [{"name": "JOB_NAME", "values": [name]}],
            }
            if token:
                kwargs["nextToken"] = token
            response = self._call("list_jobs", **kwargs)
            candidates = [s["jobId"] for s in response.get("jobSummaryList", [])
                          if s.get("jobName") == name]
            for job in self.describe_jobs(candidates):
                if (job.get("tags") or {}).get(RUN_TAG) == run_id:
                    return str(job["jobId"])
            token = response.get("nextToken")
            if not token:
                return None

    def describe_jobs(self, job_ids: Iterable[str]) -> Iterator[dict[str, Any]]:
        """Describe any number of jobs, 100 per request (Batch's limit)."""
        batch: list[str] = []
        for job_id in job_ids:
            batch.append(job_id)
            if len(batch) == DESCRIBE_BATCH:
                yield from self._call("describe_jobs", jobs=batch).get("jobs", [])
                batch = []
        if batch:
            yield from self._call("describe_jobs", jobs=batch).get("jobs", [])

    def list_children(
        self, array_job_id: str, status: str | None = None
    ) -> Iterator[dict[str, Any]]:
        """The children of an array job (summaries), page by page."""
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"arrayJobId": array_job_id}
            if status:
                kwargs["jobStatus"] = status
            if token:
                kwargs["nextToken"] = token
            response = self._call("list_jobs", **kwargs)
            yield from response.get("jobSummaryList", [])
            token = response.get("nextToken")
            if not token:
                return
