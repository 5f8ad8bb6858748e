"""Retention: task rows, rejects and runs older than N days are deleted in small batches, each its
own short transaction, so that no night's writers wait behind a long lock."""

from __future__ import annotations

import datetime as dt

import psycopg
import structlog

KEEP_DAYS = 30
BATCH_ROWS = 5_000
BATCH_RUNS = 20

log = structlog.get_logger(__name__)


def _batched(conn: psycopg.Connection, statement: str, params: dict[str, object]) -> int:
    total = 0
    while True:
        with conn.transaction():
            count = conn.execute(statement, params).rowcount  # type: ignore[arg-type]
        total += max(count, 0)
        if count < int(params["batch"]):  # type: ignore[call-overload]
            return total


def prune(
    conn: psycopg.Connection, *, keep_days: int = KEEP_DAYS, batch: int = BATCH_ROWS,
    now: dt.datetime | None = None,
) -> dict[str, int]:
    """Delete what is older than ``keep_days``: rejects, then task rows (their rejects first, so
    no cascade is large), then runs with their frozen lists. The counts deleted."""
    if keep_days < 1:
        raise ValueError(f"keep_days={keep_days}: keep at least one day")
    if not conn.autocommit and conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        conn.commit()
    cutoff = (now or dt.datetime.now(dt.UTC)) - dt.timedelta(days=keep_days)
    params: dict[str, object] = {"cutoff": cutoff, "batch": batch}
    counts = {
        "rejects": _batched(conn, """
            DELETE FROM rejects WHERE id IN (
                SELECT id FROM rejects WHERE created_at < %(cutoff)s LIMIT %(batch)s)""", params),
    }
    counts["rejects"] += _batched(conn, """
        DELETE FROM rejects WHERE id IN (
            SELECT r.id FROM rejects r JOIN task_runs t ON t.id = r.task_run_id
            WHERE t.started_at < %(cutoff)s LIMIT %(batch)s)""", params)
    counts["task_runs"] = _batched(conn, """
        DELETE FROM task_runs WHERE id IN (
            SELECT id FROM task_runs WHERE started_at < %(cutoff)s LIMIT %(batch)s)""", params)
    # A run goes with its last task row: an old run some recent row still names stays.
    old = [r[0] for r in conn.execute(
        """
        SELECT id FROM runs r WHERE created_at < %s
          AND NOT EXISTS (SELECT 1 FROM task_runs t WHERE t.run_id = r.id)
        """, (cutoff,)).fetchall()]
    conn.commit()
    params["runs"] = old
    counts["run_shops"] = _batched(conn, """
        DELETE FROM run_shops WHERE ctid = ANY(ARRAY(
            SELECT ctid FROM run_shops WHERE run_id = ANY(%(runs)s) LIMIT %(batch)s))""", params)
    runs = 0
    for start in range(0, len(old), BATCH_RUNS):
        ids = old[start:start + BATCH_RUNS]
        with conn.transaction():
            conn.execute("UPDATE runs SET rerun_of = NULL WHERE rerun_of = ANY(%s)", (ids,))
            runs += conn.execute("DELETE FROM runs WHERE id = ANY(%s)", (ids,)).rowcount
    counts["runs"] = runs
    log.info("prune.done", keep_days=keep_days, cutoff=cutoff.isoformat(), **counts)
    return counts
