"""A run's state per task and per shop: the task rows in the database, and AWS Batch's view.

The database knows what each worker reported; Batch also knows the children that never reported
(a dependency failed, the container never started, the host was reclaimed). ``status`` merges both;
its exit code is for scripts: 0 every shop's every task succeeded, 2 something failed, 3 running.

A row still ``running`` whose process is gone — its Batch job ended, or its shop's task lock is
free (every live attempt holds it from before its row is written until after it is finished) —
is marked ``lost`` first: an OOM kill or a segfault leaves no row behind in ``running`` forever.

``feed_reasons`` is the feed's per-item diagnostics for a run: per shop and channel, the top
reasons items were excluded and attributes dropped (``status RUN --reasons``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
import structlog

from submitter.batch import BatchApi
from submitter.plan import Plan, load_plan, recorded_jobs
from worker.common.accounting import mark_lost
from worker.common.db import shop_lock_key
from worker.common.settings import TASKS

log = structlog.get_logger(__name__)

EXIT_ALL_SUCCEEDED = 0
EXIT_SOME_FAILED = 2
EXIT_IN_PROGRESS = 3

_LATEST = """
    latest AS (
        SELECT DISTINCT ON (shop_id, task) shop_id, task,
               CASE WHEN status IN ('interrupted', 'lost') THEN 'failed' ELSE status END AS status,
               status AS raw_status, exit_code, error, attempt, rows_in, rows_out, rows_rejected,
               counts->>'note' AS note
        FROM task_runs WHERE run_id = %(run)s
        ORDER BY shop_id, task, started_at DESC, id DESC
    )
"""
ENDED = ("SUCCEEDED", "FAILED")


@dataclass
class BatchJobState:
    key: str
    job_id: str
    name: str
    status: str
    summary: dict[str, int] = field(default_factory=dict)  # array children per status


@dataclass
class RunStatus:
    plan: Plan
    counts: dict[str, Counter[str]]  # task → {succeeded, failed, running, waiting}
    batch: list[BatchJobState] = field(default_factory=list)
    batch_failed: dict[str, set[int]] = field(default_factory=dict)  # task → positions
    lost: list[int] = field(default_factory=list)  # task rows this call marked lost

    @property
    def exit_code(self) -> int:
        if any(c["failed"] for c in self.counts.values()):
            return EXIT_SOME_FAILED
        if all(c["succeeded"] == self.plan.shop_count for c in self.counts.values()):
            return EXIT_ALL_SUCCEEDED
        return EXIT_IN_PROGRESS


def reconcile_running(
    conn: psycopg.Connection, run_id: str, api: BatchApi | None = None
) -> list[int]:
    """Mark the run's ``running`` rows whose process is gone as ``lost``; their ids.

    Gone: with ``api``, its Batch job (``DescribeJobs``, 100 ids a call) has ended; in any case,
    its shop's task lock is free (tried, never waited for, released at once).
    """
    rows = conn.execute(
        "SELECT id, shop_id, task, job_id FROM task_runs WHERE run_id = %s AND status = 'running'",
        (run_id,),
    ).fetchall()
    conn.commit()
    if not rows:
        return []
    ended: dict[str, str] = {}
    if api is not None:
        job_ids = sorted({str(r[3]) for r in rows if r[3]})
        for job in api.describe_jobs(job_ids):
            if job.get("status") in ENDED:
                reason = job.get("statusReason") or ""
                ended[str(job["jobId"])] = f"{job['status']}" + (f": {reason}" if reason else "")
    lost: list[int] = []
    for row_id, shop_id, task, job_id in rows:
        if job_id and job_id in ended:
            reason = (f"lost: its Batch job {job_id} ended ({ended[job_id]}) without the worker "
                      "recording how (killed for memory, a segfault, its host gone)")
        else:
            with conn.transaction():
                free = conn.execute(
                    "SELECT pg_try_advisory_xact_lock(%s)", (shop_lock_key(shop_id, task),)
                ).fetchone()
            if not (free and free[0]):
                continue
            reason = ("lost: no process holds its shop's lock any more, and it never recorded "
                      "how it ended (killed for memory, a segfault, its host gone)")
        with conn.transaction():
            lost += mark_lost(conn, shop_id=shop_id, task=task, reason=reason, ids=[row_id])
    if lost:
        log.warning("status.lost_rows", run_id=run_id, task_run_ids=lost)
    return lost


def run_status(conn: psycopg.Connection, run_id: str, api: BatchApi | None = None) -> RunStatus:
    """Counts per task from the task rows (after marking the lost ones); with ``api``, Batch's job
    states and failed children."""
    plan = load_plan(conn, run_id)
    lost = reconcile_running(conn, run_id, api)
    batch: list[BatchJobState] = []
    batch_failed: dict[str, set[int]] = {task: set() for task in TASKS}
    if api is not None:
        jobs = recorded_jobs(conn, run_id)
        by_id = {job_id: key for key, job_id in jobs.items()}
        planned = {job.key: job for job in plan.jobs}
        for described in api.describe_jobs(jobs.values()):
            key = by_id.get(described["jobId"], "?")
            summary = dict((described.get("arrayProperties") or {}).get("statusSummary") or {})
            batch.append(BatchJobState(key, described["jobId"], described.get("jobName", ""),
                                       described.get("status", "?"), summary))
            job = planned.get(key)
            if job is None:
                continue
            # Positions are children: a bundle's child stands for each of its shops.
            if job.array_size is None:
                if described.get("status") == "FAILED":
                    batch_failed[job.task].add(job.chunk.offset)
            elif summary.get("FAILED"):
                for child in api.list_children(described["jobId"], "FAILED"):
                    index = int(str(child["jobId"]).rsplit(":", 1)[1])
                    batch_failed[job.task].add(job.chunk.offset + index)
    counts: dict[str, Counter[str]] = {task: Counter() for task in TASKS}
    failed_pairs = [(task, idx) for task, positions in batch_failed.items() for idx in positions]
    for task, state, total in conn.execute(
        "WITH" + _LATEST + """
        SELECT t.task,
               CASE WHEN l.status IS NULL AND bf.idx IS NOT NULL THEN 'failed'
                    ELSE coalesce(l.status, 'waiting') END,
               count(*)
        FROM run_shops rs
        CROSS JOIN unnest(%(tasks)s::text[]) AS t(task)
        LEFT JOIN latest l ON l.shop_id = rs.shop_id AND l.task = t.task
        -- children Batch failed without a task row: their dependency failed, the host vanished
        LEFT JOIN unnest(%(ftask)s::text[], %(fidx)s::int[]) AS bf(task, idx)
               ON bf.task = t.task AND bf.idx = rs.child
        WHERE rs.run_id = %(run)s
        GROUP BY 1, 2
        """,
        {"run": run_id, "tasks": list(TASKS), "ftask": [p[0] for p in failed_pairs],
         "fidx": [p[1] for p in failed_pairs]},
    ):
        counts[task][state] += total
    if not conn.autocommit:
        conn.commit()
    return RunStatus(plan, counts, batch, batch_failed, lost)


def shop_rows(
    conn: psycopg.Connection, run_id: str, *, problems_only: bool = True
) -> Iterator[dict[str, Any]]:
    """The latest task row per shop and task — the one place this is asked — as one dict per shop
    (idx order): ``collect``/``feed``/``images`` their state ('waiting' without a row), and per
    task ``_exit``, ``_in``, ``_out``, ``_rejected``, ``_note``, ``_error``; streamed."""
    query = "WITH" + _LATEST + """
        SELECT rs.idx, rs.child, rs.shop_id, c.attempt,
               c.status, c.exit_code, c.rows_in, c.rows_out, c.rows_rejected, c.note, c.error,
               f.status, f.exit_code, f.rows_in, f.rows_out, f.rows_rejected, f.note, f.error,
               i.status, i.exit_code, i.rows_in, i.rows_out, i.rows_rejected, i.note, i.error
        FROM run_shops rs
        LEFT JOIN latest c ON c.shop_id = rs.shop_id AND c.task = 'collect'
        LEFT JOIN latest f ON f.shop_id = rs.shop_id AND f.task = 'feed'
        LEFT JOIN latest i ON i.shop_id = rs.shop_id AND i.task = 'images'
        WHERE rs.run_id = %(run)s
          AND (NOT %(problems)s OR c.status IS DISTINCT FROM 'succeeded'
               OR f.status IS DISTINCT FROM 'succeeded' OR i.status IS DISTINCT FROM 'succeeded')
        ORDER BY rs.idx
    """
    with conn.transaction(), conn.cursor(name=f"status_{run_id}".replace("-", "_")) as cur:
        cur.execute(query, {"run": run_id, "problems": problems_only})
        for row in cur:
            out: dict[str, Any] = {"index": row[0], "child": row[1], "shop_id": row[2],
                                   "attempt": row[3]}
            for n, task in enumerate(TASKS):
                status, code, rows_in, rows_out, rejected, note, error = row[4 + 7 * n: 11 + 7 * n]
                out.update({
                    task: status or "waiting", f"{task}_exit": code, f"{task}_in": rows_in,
                    f"{task}_out": rows_out, f"{task}_rejected": rejected,
                    f"{task}_note": note, f"{task}_error": error,
                })
            out["error"] = out["collect_error"] or out["feed_error"] or out["images_error"]
            yield out


def feed_reasons(
    conn: psycopg.Connection, run_id: str, *, shop_id: str | None = None, top: int = 5
) -> list[dict[str, Any]]:
    """The top ``top`` reasons per shop, channel and outcome (excluded / dropped) of each shop's
    latest feed attempt in the run, most frequent first (small by construction: a few per channel).
    """
    rows = conn.execute(
        """
        WITH latest AS (
            SELECT DISTINCT ON (shop_id) id, shop_id FROM task_runs
            WHERE run_id = %(run)s AND task = 'feed'
              AND (%(shop)s::text IS NULL OR shop_id = %(shop)s)
            ORDER BY shop_id, started_at DESC, id DESC
        ), counted AS (
            SELECT r.shop_id, r.channel, r.outcome, r.reason, count(*) AS n,
                   row_number() OVER (PARTITION BY r.shop_id, r.channel, r.outcome
                                      ORDER BY count(*) DESC, r.reason) AS rank
            FROM rejects r JOIN latest l ON r.task_run_id = l.id
            GROUP BY r.shop_id, r.channel, r.outcome, r.reason
        )
        SELECT shop_id, channel, outcome, reason, n FROM counted WHERE rank <= %(top)s
        ORDER BY shop_id, channel, outcome DESC, n DESC, reason
        """,
        {"run": run_id, "shop": shop_id, "top": top},
    ).fetchall()
    if not conn.autocommit:
        conn.commit()
    return [
        {"shop_id": r[0], "channel": r[1], "outcome": r[2], "reason": r[3], "count": r[4]}
        for r in rows
    ]
