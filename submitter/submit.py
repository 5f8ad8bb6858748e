"""Submitting a planned run to AWS Batch, idempotently: each job once, recorded as it is submitted.

A session advisory lock on the run serialises two invocations of the same night (EventBridge
delivers at least once). Jobs already recorded on the run are skipped; a job Batch knows under its
deterministic name and the run's tag (the process died between SubmitJob and the record) is adopted,
not submitted again. So a crash anywhere is completed by the next invocation, never duplicated.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

import psycopg
import structlog

from submitter.batch import BatchApi, submit_job_payload
from submitter.plan import Plan, record_job, recorded_jobs

log = structlog.get_logger(__name__)


@dataclass
class SubmitResult:
    run_id: str
    created: bool
    shop_count: int
    submitted: dict[str, str] = field(default_factory=dict)  # key → job id, by this call
    existing: dict[str, str] = field(default_factory=dict)  # key → job id, from before
    adopted: dict[str, str] = field(default_factory=dict)  # found in Batch, not yet recorded

    def summary(self) -> dict[str, object]:
        return {
            "run_id": self.run_id,
            "created": self.created,
            "shop_count": self.shop_count,
            "submitted": self.submitted,
            "already_submitted": {**self.existing, **self.adopted},
        }


def _run_lock_key(run_id: str) -> int:
    digest = hashlib.blake2b(f"catalog-submit:{run_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") & 0x7FFFFFFFFFFFFFFF


def submit_plan(
    conn: psycopg.Connection,
    plan: Plan,
    api: BatchApi,
    *,
    job_queue: str,
    job_definition: str,
    extra_environment: Mapping[str, str] | None = None,
) -> SubmitResult:
    """Submit the plan's jobs that are not submitted yet, in order; record each id at once."""
    result = SubmitResult(plan.run_id, plan.created, plan.shop_count)
    if not plan.jobs:
        log.info("submit.nothing_to_do", run_id=plan.run_id, shops=0)
        return result
    if not conn.autocommit:
        conn.commit()
    key = _run_lock_key(plan.run_id)
    conn.execute("SELECT pg_advisory_lock(%s)", (key,))
    try:
        ids = recorded_jobs(conn, plan.run_id)
        for job in plan.jobs:
            if job.key in ids:
                result.existing[job.key] = ids[job.key]
                continue
            # A run planned by this very call cannot have jobs in Batch yet: skip the look-up.
            found = None if plan.created else api.find_job(job_queue, job.name, plan.run_id)
            if found is not None:
                result.adopted[job.key] = found
                log.warning("submit.adopted", run_id=plan.run_id, job=job.name, job_id=found)
            else:
                payload = submit_job_payload(
                    job, job_queue=job_queue, job_definition=job_definition, job_ids=ids,
                    extra_environment=extra_environment,
                )
                found = api.submit_job(payload)
                result.submitted[job.key] = found
                log.info("submit.job", run_id=plan.run_id, job=job.name, job_id=found,
                         array_size=job.array_size, depends_on=[d.key for d in job.depends_on])
            record_job(conn, plan.run_id, job.key, found)
            ids[job.key] = found
    finally:
        if conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR:
            conn.rollback()
        conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
        if not conn.autocommit:
            conn.commit()
    return result
