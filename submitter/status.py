"""A run's state per task and per shop: the task rows in the database, and AWS Batch's view.

The database knows what each worker reported; Batch also knows the children that never reported
(a dependency failed, the container never started, the host was reclaimed). ``status`` merges both;
its exit code is for scripts: 0 every shop's every task succeeded, 2 something failed, 3 running.
``feed_reasons`` is the feed's per-item diagnostics for a run: per shop and channel, the top
reasons items were excluded and attributes dropped (``status RUN --reasons``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg

from submitter.batch import BatchApi
from submitter.plan import Plan, load_plan, recorded_jobs
from worker.common.settings import TASKS

EXIT_ALL_SUCCEEDED = 0
EXIT_SOME_FAILED = 2
EXIT_IN_PROGRESS = 3

_LATEST = """
    latest AS (
        SELECT DISTINCT ON (shop_id, task) shop_id, task, status, exit_code, error, attempt
        FROM task_runs WHERE run_id = %(run)s
        ORDER BY shop_id, task, started_at DESC, id DESC
    )
"""


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

    @property
    def exit_code(self) -> int:
        if any(c["failed"] for c in self.counts.values()):
            return EXIT_SOME_FAILED
        if all(c["succeeded"] == self.plan.shop_count for c in self.counts.values()):
            return EXIT_ALL_SUCCEEDED
        return EXIT_IN_PROGRESS


def run_status(conn: psycopg.Connection, run_id: str, api: BatchApi | None = None) -> RunStatus:
    """Counts per task from the task rows; with ``api``, Batch's job states and failed children."""
    plan = load_plan(conn, run_id)
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
               ON bf.task = t.task AND bf.idx = rs.idx
        WHERE rs.run_id = %(run)s
        GROUP BY 1, 2
        """,
        {"run": run_id, "tasks": list(TASKS), "ftask": [p[0] for p in failed_pairs],
         "fidx": [p[1] for p in failed_pairs]},
    ):
        counts[task][state] += total
    if not conn.autocommit:
        conn.commit()
    return RunStatus(plan, counts, batch, batch_failed)


def shop_rows(
    conn: psycopg.Connection, run_id: str, *, problems_only: bool = True
) -> Iterator[dict[str, Any]]:
    """One row per shop (index order): each task's latest state, streamed from a server cursor."""
    query = "WITH" + _LATEST + """
        SELECT rs.idx, rs.shop_id,
               c.status, c.exit_code, c.attempt, f.status, f.exit_code, i.status, i.exit_code,
               coalesce(c.error, f.error, i.error)
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
            yield {
                "index": row[0], "shop_id": row[1],
                "collect": row[2] or "waiting", "collect_exit": row[3], "attempt": row[4],
                "feed": row[5] or "waiting", "feed_exit": row[6],
                "images": row[7] or "waiting", "images_exit": row[8],
                "error": row[9],
            }


def format_status(status: RunStatus) -> str:
    """The compact table: one line per task with its counts, then Batch's jobs when known."""
    plan = status.plan
    lines = [f"run {plan.run_id} ({plan.kind}, {plan.run_date}): {plan.shop_count} shops"]
    lines.append(f"  {'task':<8} {'succeeded':>9} {'failed':>7} {'running':>8} {'waiting':>8}")
    for task in TASKS:
        c = status.counts[task]
        lines.append(
            f"  {task:<8} {c['succeeded']:>9} {c['failed']:>7} {c['running']:>8} {c['waiting']:>8}"
        )
    for job in status.batch:
        summary = ", ".join(f"{k.lower()} {v}" for k, v in sorted(job.summary.items()) if v)
        lines.append(f"  batch {job.key:<10} {job.status:<10} {job.job_id}"
                     + (f"  ({summary})" if summary else ""))
    return "\n".join(lines)


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


def format_reasons(rows: list[dict[str, Any]]) -> str:
    """The reasons as an indented list: shop, then channel, then outcome and its reasons."""
    if not rows:
        return "  no item was excluded and no attribute dropped"
    lines: list[str] = []
    shop = channel = None
    for row in rows:
        if row["shop_id"] != shop:
            shop, channel = row["shop_id"], None
            lines.append(f"  {shop}")
        if row["channel"] != channel:
            channel = row["channel"]
            lines.append(f"    {channel}")
        lines.append(f"      {row['outcome']:<8} {row['count']:>7}  {row['reason']}")
    return "\n".join(lines)
