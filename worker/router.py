"""The task router: ``python -m worker TASK`` resolves its shop, binds the log context, records the
attempt, runs the task, and maps its outcome to the exit code AWS Batch's retry strategy acts on."""

from __future__ import annotations

import importlib
import sys
import time
from collections.abc import Sequence
from typing import Any

import psycopg
import structlog

from worker.common import accounting, db, metrics
from worker.common.errors import (
    EXIT_DATAERR,
    EXIT_OK,
    CatalogError,
    FatalError,
    exit_code_for,
)
from worker.common.logging import bind_context, configure, get_logger
from worker.common.settings import TASKS, Settings
from worker.common.shops import require_shop
from worker.common.task import TaskContext, TaskResult

USAGE = "usage: python -m worker TASK   (TASK is one of: " + ", ".join(TASKS) + ")"


def resolve_shop_id(settings: Settings, conn: psycopg.Connection) -> tuple[str, str]:
    """The shop this process works on, by DESIGN.md's order; and where the id came from."""
    index = settings.array_index
    if settings.shop_id is not None:
        return settings.shop_id, f"SHOP_ID={settings.shop_id}"
    if settings.shop_ids is not None:
        ids = settings.shop_ids
        if index >= len(ids):
            raise FatalError(
                f"AWS_BATCH_JOB_ARRAY_INDEX={index} is out of range for SHOP_IDS, which has "
                f"{len(ids)} entries ({','.join(ids)}): valid indexes are 0–{len(ids) - 1}"
            )
        return ids[index], f"SHOP_IDS[{index}]"
    if settings.run_id is not None:
        run = conn.execute(
            "SELECT shop_count FROM runs WHERE id = %s", (settings.run_id,)
        ).fetchone()
        if run is None:
            raise FatalError(
                f"RUN_ID={settings.run_id} does not exist: plan the night first "
                "(catalog-submit plan / submit)"
            )
        position = settings.shop_index_offset + index
        row = conn.execute(
            "SELECT shop_id FROM run_shops WHERE run_id = %s AND idx = %s",
            (settings.run_id, position),
        ).fetchone()
        if row is None:
            raise FatalError(
                f"run {settings.run_id}: AWS_BATCH_JOB_ARRAY_INDEX={index} with "
                f"SHOP_INDEX_OFFSET={settings.shop_index_offset} is position {position}, outside "
                f"its frozen list of {run[0]} shops"
            )
        return str(row[0]), f"run {settings.run_id} index {position}"
    raise FatalError(
        "no shop to work on: set SHOP_ID, or SHOP_IDS with AWS_BATCH_JOB_ARRAY_INDEX, "
        "or RUN_ID with AWS_BATCH_JOB_ARRAY_INDEX"
    )


def _load_task(task: str) -> Any | None:
    """The task's ``run`` function, or None while the task is not built yet."""
    name = f"worker.{task}.task"
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name == name:
            return None
        raise
    return module.run


def run_task(task: str, settings: Settings) -> int:
    """Run one task for the resolved shop; return the exit code (never raises)."""
    log = get_logger("worker")
    bind_context(
        task=task, run_id=settings.run_id, array_index=settings.array_index,
        job_id=settings.job_id, attempt=settings.attempt,
    )
    started = time.monotonic()
    acct: psycopg.Connection | None = None
    conn: psycopg.Connection | None = None
    task_run_id: int | None = None
    rejects: accounting.RejectSink | None = None
    try:
        assert settings.database_url is not None
        conn = db.connect(settings.database_url)
        acct = db.connect(settings.database_url, autocommit=True)
        db.check_schema(conn)
        shop_id, where = resolve_shop_id(settings, conn)
        bind_context(shop_id=shop_id)
        shop = require_shop(conn, shop_id, where=where)
        conn.commit()
        task_run_id = accounting.start_task_run(
            acct, run_id=settings.run_id, shop_id=shop.id, task=task,
            array_index=settings.array_index, job_id=settings.job_id, attempt=settings.attempt,
        )
        rejects = accounting.RejectSink(
            acct, shop_id=shop.id, task=task, run_id=settings.run_id, task_run_id=task_run_id
        )
        log.info("task.start", source=where)
        run = _load_task(task)
        if run is None:
            result = TaskResult(note=f"the {task} task is not built yet: nothing was done")
        else:
            ctx = TaskContext(
                settings=settings, conn=conn, shop=shop, run_id=settings.run_id,
                task_run_id=task_run_id, rejects=rejects, log=log, task=task,
                array_index=settings.array_index,
            )
            result = run(ctx)
        rejects.flush()
        duration = time.monotonic() - started
        counts = {**result.counts, **rejects.summary()}
        if result.note:
            counts["note"] = result.note
        accounting.finish_task_run(
            acct, task_run_id, status="succeeded", exit_code=EXIT_OK, duration_s=duration,
            rows_in=result.rows_in, rows_out=result.rows_out,
            rows_rejected=result.rows_rejected or rejects.count, bytes_=result.bytes,
            counts=counts,
        )
        _log_summary(
            log, task, settings, status="succeeded", exit_code=EXIT_OK,
            **_summary_numbers(result.rows_in, result.rows_out,
                               result.rows_rejected or rejects.count, result.bytes, duration),
            counts=counts, note=result.note,
        )
        return EXIT_OK
    except BaseException as exc:
        code = exit_code_for(exc) if isinstance(exc, Exception) else 1
        if isinstance(exc, KeyboardInterrupt):
            code = 75  # interrupted (a local Ctrl-C or SIGINT): another attempt may finish
        duration = time.monotonic() - started
        message = str(exc) or type(exc).__name__
        if isinstance(exc, CatalogError) or code != 1:
            log.error("task.failed", exit_code=code, error=message, error_type=type(exc).__name__)
        else:
            log.exception("task.crashed", exit_code=code, error=message)
        _record_failure(acct, task_run_id, rejects, code, duration, message)
        _log_summary(
            log, task, settings, status="failed", exit_code=code,
            **_summary_numbers(0, 0, rejects.count if rejects else 0, 0, duration),
            counts=rejects.summary() if rejects else {},
        )
        return code
    finally:
        for c in (conn, acct):
            if c is not None and not c.closed:
                c.close()


def _record_failure(
    acct: psycopg.Connection | None,
    task_run_id: int | None,
    rejects: accounting.RejectSink | None,
    code: int,
    duration: float,
    message: str,
) -> None:
    if acct is None or acct.closed or task_run_id is None:
        return
    try:
        if rejects is not None:
            rejects.flush()
        accounting.finish_task_run(
            acct, task_run_id, status="failed", exit_code=code, duration_s=duration,
            rows_rejected=rejects.count if rejects else None,
            counts=rejects.summary() if rejects else {}, error=message[:4000],
        )
    except psycopg.Error:
        get_logger("worker").warning("task.record_failed", task_run_id=task_run_id)


def _log_summary(log: Any, task: str, settings: Settings, **fields: Any) -> None:
    """The one ``task.summary`` event, and the same numbers as CloudWatch EMF records (JSON logs
    only: where CloudWatch reads them)."""
    log.info("task.summary", **fields)
    if settings.log_format == "json":
        context = structlog.contextvars.get_contextvars()
        metrics.emit(metrics.summary_records(
            task, fields, status=fields["status"],
            properties={k: context.get(k) for k in ("shop_id", "run_id", "job_id", "attempt")},
        ))


def _summary_numbers(
    rows_in: int, rows_out: int, rejected: int, nbytes: int, seconds: float
) -> dict[str, Any]:
    seconds = max(seconds, 1e-9)
    return {
        "rows_in": rows_in,
        "rows_out": rows_out,
        "rows_rejected": rejected,
        "bytes": nbytes,
        "duration_s": round(seconds, 3),
        "rows_per_s": round(max(rows_in, rows_out) / seconds, 1),
        "mb_per_s": round(nbytes / 1e6 / seconds, 3),
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1 or args[0] not in TASKS:
        got = " ".join(args) or "no task"
        print(f"catalog-worker: unknown task ({got})\n{USAGE}", file=sys.stderr)
        return EXIT_DATAERR
    task = args[0]
    try:
        settings = Settings.from_env()
    except CatalogError as exc:
        configure("json", stream=sys.stderr)
        get_logger("worker").error("config.invalid", task=task, error=str(exc))
        print(f"catalog-worker {task}: {exc}", file=sys.stderr)
        return exc.exit_code
    configure(settings.log_format)
    return run_task(task, settings)
