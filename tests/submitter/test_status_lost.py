"""``status`` marks a running row whose process is gone as lost: its Batch job ended (asked with
DescribeJobs, 100 ids a call), or its shop's task lock is free."""

from __future__ import annotations

import datetime as dt
import time

import psycopg
import pytest

from submitter.plan import plan_run
from submitter.status import reconcile_running, run_status
from submitter.submit import submit_plan
from tests.submitter.conftest import BatchEnv, add_shops
from worker.common.db import shop_lock_key

NIGHT = dt.date(2026, 11, 29)


def _running(conn: psycopg.Connection, run_id: str, shop_id: str, job_id: str | None) -> int:
    row = conn.execute(
        "INSERT INTO task_runs (run_id, shop_id, task, job_id) VALUES (%s, %s, 'collect', %s) "
        "RETURNING id", (run_id, shop_id, job_id)).fetchone()
    conn.commit()
    assert row is not None
    return int(row[0])


def test_a_row_whose_batch_job_ended_is_lost_even_while_its_lock_is_held(
    conn: psycopg.Connection, database_url: str, batch_env: BatchEnv,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MOTO_SIMPLE_BATCH_FAIL_AFTER", "0")  # moto fails every job it is given
    add_shops(conn, 1)
    plan = plan_run(conn, NIGHT)
    result = submit_plan(conn, plan, batch_env.api(), job_queue=batch_env.queue,
                         job_definition=batch_env.definition)
    job_id = result.submitted["collect/0"]
    deadline = time.monotonic() + 30
    while batch_env.client.describe_jobs(jobs=[job_id])["jobs"][0]["status"] != "FAILED":
        assert time.monotonic() < deadline, "moto never ended the job"
        time.sleep(0.1)
    ended = _running(conn, plan.run_id, "shop00000", job_id)
    unknown = [_running(conn, plan.run_id, "shop00000", f"job-{i}") for i in range(150)]
    calls: list[int] = []
    batch_env.client.meta.events.register(
        "provide-client-params.batch.DescribeJobs",
        lambda params, **_: calls.append(len(params["jobs"])))
    with psycopg.connect(database_url, autocommit=True) as live:
        # the lock is held, so only Batch's word can say this attempt is gone
        live.execute("SELECT pg_advisory_lock(%s)", (shop_lock_key("shop00000", "collect"),))
        assert reconcile_running(conn, plan.run_id, batch_env.api()) == [ended]
    assert calls == [100, 51]
    status, error = conn.execute("SELECT status, error FROM task_runs WHERE id = %s",
                                 (ended,)).fetchone()
    assert status == "lost" and f"Batch job {job_id} ended (FAILED" in error
    # the 150 rows Batch knows nothing of stay running while their lock is held; freed, lost
    assert conn.execute("SELECT count(*) FROM task_runs WHERE status = 'running'").fetchone() == (
        150,)
    conn.commit()
    state = run_status(conn, plan.run_id)
    assert sorted(state.lost) == unknown
    assert state.counts["collect"]["failed"] == 1 and state.exit_code == 2


def test_without_batch_a_free_lock_is_enough(conn: psycopg.Connection) -> None:
    add_shops(conn, 2)
    plan = plan_run(conn, NIGHT)
    gone = _running(conn, plan.run_id, "shop00001", None)
    assert reconcile_running(conn, plan.run_id) == [gone]
    assert reconcile_running(conn, plan.run_id) == []  # once
