"""A night, wired once: plan → submit to AWS Batch, or plan → run on this machine, and what follows
a submission (retention). The CLI, the Lambda and the demo call these; report.py prints results."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from submitter.batch import BatchApi, make_client
from submitter.config import SubmitterConfig
from submitter.local import LocalExecutor, LocalSummary, Progress, RetryStrategy, local_base_env
from submitter.plan import Plan, RunKind, plan_retry, plan_run
from submitter.submit import SubmitResult, submit_plan
from worker.common import db


@dataclass(frozen=True)
class NightRequest:
    """Which night and which shops: what the CLI's options and the Lambda's event both say."""

    run_date: dt.date
    shop_ids: Sequence[str] | None = None
    kind: RunKind = "nightly"
    images_before_feed: bool | None = None  # None: the configuration's


@dataclass(frozen=True)
class LocalRun:
    """How to run a plan here: the local executor's knobs."""

    log_dir: Path
    command: Sequence[str] | None = None
    parallel: int | None = None
    attempts: int = 3
    extra_env: Mapping[str, str] = field(default_factory=dict)
    progress: Callable[[Progress], None] | None = None


def open_database(database_url: str) -> psycopg.Connection:
    """The submitter's connection, its schema checked (and that check's transaction ended)."""
    conn = db.connect(database_url, retry_for=30.0)
    try:
        db.check_schema(conn)
        conn.commit()
    except BaseException:
        conn.close()
        raise
    return conn


def batch_api(config: SubmitterConfig) -> BatchApi:
    return BatchApi(make_client(endpoint_url=config.aws_endpoint_url))


def plan_night(conn: psycopg.Connection, config: SubmitterConfig, request: NightRequest) -> Plan:
    """Find or freeze the night's run (bundled by the configuration's target child duration)."""
    return plan_run(
        conn, request.run_date, shop_ids=request.shop_ids, kind=request.kind,
        images_before_feed=(request.images_before_feed if request.images_before_feed is not None
                            else config.images_before_feed),
        bundle_target_s=config.bundle_target_s,
    )


def plan_failed(
    conn: psycopg.Connection, config: SubmitterConfig, run_id: str, *,
    also_positions: Sequence[int] = (),
) -> Plan | None:
    """A retry run of ``run_id``'s failed shops (None: nothing failed)."""
    return plan_retry(conn, run_id, also_positions=also_positions,
                      bundle_target_s=config.bundle_target_s)


def submit_night(
    conn: psycopg.Connection, config: SubmitterConfig, plan: Plan, api: BatchApi | None = None
) -> SubmitResult:
    """Submit the plan's jobs not submitted yet (idempotent)."""
    queue, definition = config.require_batch()
    return submit_plan(conn, plan, api or batch_api(config), job_queue=queue,
                       job_definition=definition)


def plan_and_submit(
    conn: psycopg.Connection, config: SubmitterConfig, request: NightRequest,
    api: BatchApi | None = None,
) -> tuple[Plan, SubmitResult]:
    """The nightly path: the configuration's Batch names are checked before anything is planned."""
    config.require_batch()
    plan = plan_night(conn, config, request)
    return plan, submit_night(conn, config, plan, api)


def run_locally(
    config: SubmitterConfig, database_url: str, plan: Plan, how: LocalRun
) -> LocalSummary:
    """Run the plan's children here with Batch's semantics; the executor's summary."""
    base_env = local_base_env(config, database_url)
    base_env.update(how.extra_env)
    executor = LocalExecutor(
        plan, base_env=base_env, log_dir=how.log_dir, command=how.command,
        parallel=how.parallel, retry=RetryStrategy(attempts=how.attempts), progress=how.progress,
    )
    return executor.run()
