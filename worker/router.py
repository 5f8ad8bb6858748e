"""The task router: ``python -m worker TASK`` resolves its shop, binds the log context, records the
attempt, runs the task, and maps its outcome to the exit code AWS Batch's retry strategy acts on."""

from __future__ import annotations

import importlib
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
import structlog

from worker.common import accounting, db, metrics, shutdown
from worker.common.errors import (
    EXIT_BUG,
    EXIT_DATAERR,
    EXIT_OK,
    EXIT_TEMPFAIL,
    CatalogError,
    FatalError,
    exit_code_for,
)
from worker.common.logging import bind_context, configure, get_logger
from worker.common.redact import redact
from worker.common.settings import MAINTENANCE_TASKS, TASKS, Settings
from worker.common.shops import require_shop
from worker.common.shutdown import Interrupted
from worker.common.task import TaskContext, TaskResult

USAGE = ("usage: python -m worker TASK   (TASK is one of: " + ", ".join(TASKS + MAINTENANCE_TASKS)
         + ")")


def resolve_shop_ids(settings: Settings, conn: psycopg.Connection) -> tuple[list[str], str]:
    """The shops this process works on, by DESIGN.md's order, and where they came from.

    ``SHOP_ID`` and ``SHOP_IDS`` name one shop; ``RUN_ID`` names an array child of the night, which
    runs its bundle: one shop, or several small ones packed by the submitter (idx order).
    """
    index = settings.array_index
    if settings.shop_id is not None:
        return [settings.shop_id], f"SHOP_ID={settings.shop_id}"
    if settings.shop_ids is not None:
        ids = settings.shop_ids
        if index >= len(ids):
            raise FatalError(
                f"AWS_BATCH_JOB_ARRAY_INDEX={index} is out of range for SHOP_IDS, which has "
                f"{len(ids)} entries ({','.join(ids)}): valid indexes are 0–{len(ids) - 1}"
            )
        return [ids[index]], f"SHOP_IDS[{index}]"
    if settings.run_id is not None:
        run = conn.execute(
            "SELECT shop_count, coalesce(child_count, shop_count) FROM runs WHERE id = %s",
            (settings.run_id,),
        ).fetchone()
        if run is None:
            raise FatalError(
                f"RUN_ID={settings.run_id} does not exist: plan the night first "
                "(catalog-submit plan / submit)"
            )
        position = settings.shop_index_offset + index
        rows = conn.execute(
            "SELECT shop_id FROM run_shops WHERE run_id = %s AND child = %s ORDER BY idx",
            (settings.run_id, position),
        ).fetchall()
        if not rows:
            raise FatalError(
                f"run {settings.run_id}: AWS_BATCH_JOB_ARRAY_INDEX={index} with "
                f"SHOP_INDEX_OFFSET={settings.shop_index_offset} is position {position}, outside "
                f"its frozen list of {run[1]} children ({run[0]} shops)"
            )
        return [str(r[0]) for r in rows], f"run {settings.run_id} index {position}"
    raise FatalError(
        "no shop to work on: set SHOP_ID, or SHOP_IDS with AWS_BATCH_JOB_ARRAY_INDEX, "
        "or RUN_ID with AWS_BATCH_JOB_ARRAY_INDEX"
    )


def resolve_shop_id(settings: Settings, conn: psycopg.Connection) -> tuple[str, str]:
    """The first (for a plain child, the only) shop of ``resolve_shop_ids``."""
    ids, where = resolve_shop_ids(settings, conn)
    return ids[0], where


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


def _upstream(task: str, images_before_feed: bool) -> tuple[str, ...]:
    """The tasks whose success in this run a shop's ``task`` needs (the plan's N_TO_N chain)."""
    if task == "collect":
        return ()
    if images_before_feed:
        return ("collect",) if task == "images" else ("collect", "images")
    return ("collect",)


def plan_bundle(
    conn: psycopg.Connection, settings: Settings, task: str, shop_ids: list[str]
) -> tuple[list[str], dict[str, str]]:
    """Of a bundle's shops, those to run now, and why each other is skipped.

    Skipped: a shop whose task already ended for good in this run (a retry of the child redoes
    only what failed transiently), and, after collect, a shop whose upstream task did not succeed
    in this run (N_TO_N per shop, inside the bundle).
    """
    if settings.run_id is None:
        return shop_ids, {}
    row = conn.execute("SELECT options FROM runs WHERE id = %s", (settings.run_id,)).fetchone()
    images_before_feed = bool(((row[0] if row else None) or {}).get("images_before_feed"))
    upstream = _upstream(task, images_before_feed)
    latest = conn.execute(
        """
        SELECT DISTINCT ON (shop_id, task) shop_id, task, status, exit_code
        FROM task_runs WHERE run_id = %s AND shop_id = ANY(%s) AND task = ANY(%s)
        ORDER BY shop_id, task, started_at DESC, id DESC
        """,
        (settings.run_id, shop_ids, [task, *upstream]),
    ).fetchall()
    conn.commit()
    state = {(r[0], r[1]): (r[2], r[3]) for r in latest}
    todo: list[str] = []
    skipped: dict[str, str] = {}
    for shop_id in shop_ids:
        status, code = state.get((shop_id, task), (None, None))
        if status == "succeeded":
            skipped[shop_id] = f"{task} already succeeded in this run"
        elif status == "failed" and code not in (None, EXIT_TEMPFAIL):
            skipped[shop_id] = f"{task} already failed for good in this run (exit {code})"
        elif any(state.get((shop_id, up), (None, None))[0] != "succeeded" for up in upstream):
            skipped[shop_id] = f"its {'/'.join(upstream)} did not succeed in this run"
        else:
            todo.append(shop_id)
    return todo, skipped


def run_task(task: str, settings: Settings) -> int:
    """Run one task for the resolved shop, or for each shop of the child's bundle; the exit code
    (never raises). A bundle exits 75 when any shop failed transiently (Batch retries the child,
    which skips the shops already done), else 0: a shop's permanent failure is recorded on its own
    row and holds back nobody else. A plain child exits with its shop's code, as before bundles."""
    log = get_logger("worker")
    bind_context(
        task=task, run_id=settings.run_id, array_index=settings.array_index,
        job_id=settings.job_id, attempt=settings.attempt,
    )
    started = time.monotonic()
    conn: psycopg.Connection | None = None
    try:
        try:
            conn = _connect(settings)
            db.check_schema(conn)
            shop_ids, where = resolve_shop_ids(settings, conn)
            conn.commit()
            if len(shop_ids) > 1:
                todo, skipped = plan_bundle(conn, settings, task, shop_ids)
        except BaseException as exc:
            return _failed_before_a_shop(log, task, settings, exc, started)
        if len(shop_ids) == 1:
            return _run_shop(task, settings, conn, shop_ids[0], where, log)
        log.info("bundle.start", shops=len(shop_ids), to_run=len(todo), source=where)
        codes: dict[str, int] = {}
        for shop_id in shop_ids:
            if shop_id in skipped:
                log.info("task.skipped", shop_id=shop_id, reason=skipped[shop_id])
                continue
            if conn.closed:
                conn = _connect(settings)
            codes[shop_id] = _run_shop(task, settings, conn, shop_id, where, log)
        transient = sorted(s for s, c in codes.items() if c == EXIT_TEMPFAIL)
        code = EXIT_TEMPFAIL if transient else EXIT_OK
        bind_context(shop_id=None)
        log.info(
            "bundle.summary", exit_code=code, shops=len(shop_ids), ran=len(codes),
            succeeded=sum(1 for c in codes.values() if c == EXIT_OK),
            failed_transiently=transient,
            failed_for_good=sorted(s for s, c in codes.items()
                                   if c not in (EXIT_OK, EXIT_TEMPFAIL)),
            skipped=len(skipped), duration_s=round(time.monotonic() - started, 3),
        )
        return code
    except KeyboardInterrupt:
        # Recorded on the shop's row already; the bundle's other shops wait for the retry.
        return EXIT_TEMPFAIL
    except CatalogError as exc:
        # Reconnecting between a bundle's shops failed.
        log.error("task.failed", exit_code=exc.exit_code, error=str(exc))
        return exc.exit_code
    finally:
        if conn is not None and not conn.closed:
            conn.close()


def _connect(settings: Settings) -> psycopg.Connection:
    assert settings.database_url is not None
    return db.connect(
        settings.database_url, connect_timeout=settings.database_connect_timeout,
        retry_for=settings.database_connect_retry_s,
    )


def _code_for(exc: BaseException) -> int:
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_TEMPFAIL  # SIGTERM, SIGINT, Ctrl-C: another attempt may finish
    return exit_code_for(exc) if isinstance(exc, Exception) else EXIT_BUG


def _log_failure(log: Any, exc: BaseException, code: int, **extra: Any) -> str:
    # Redacted before it reaches the log or the task row: a message may quote a URL or DSN.
    message = redact(str(exc) or type(exc).__name__)
    if isinstance(exc, CatalogError | KeyboardInterrupt) or code != EXIT_BUG:
        log.error("task.failed", exit_code=code, error=message, error_type=type(exc).__name__,
                  **extra)
    else:
        log.exception("task.crashed", exit_code=code, error=message)
    return message


def _failed_before_a_shop(
    log: Any, task: str, settings: Settings, exc: BaseException, started: float
) -> int:
    """A failure before any shop's row exists (connecting, the schema, resolving): logged only."""
    code = _code_for(exc)
    _log_failure(log, exc, code)
    _log_summary(log, task, settings, status="failed", exit_code=code,
                 **_summary_numbers(0, 0, 0, 0, time.monotonic() - started), counts={})
    return code


def _run_shop(
    task: str, settings: Settings, conn: psycopg.Connection, shop_id: str, where: str, log: Any
) -> int:
    """One shop's task on the child's one connection: its lock, its row, its summary; the exit
    code. An interruption is recorded, then raised again (the child stops)."""
    bind_context(shop_id=shop_id)
    started = time.monotonic()
    task_run_id: int | None = None
    rejects: accounting.RejectSink | None = None
    shop = None
    try:
        shop = require_shop(conn, shop_id, where=where)
        conn.commit()
        # Held from before the row is written until after it is finished, so that a 'running'
        # row whose lock is free belongs to a process that died without a word.
        with db.shop_lock(conn, shop.id, task, timeout_s=settings.shop_lock_timeout):
            with conn.transaction():
                lost = accounting.mark_lost(
                    conn, shop_id=shop.id, task=task,
                    reason="lost: its process ended without recording how (killed for memory, "
                           "a segfault, its host gone); found by the next attempt",
                )
                task_run_id = accounting.start_task_run(
                    conn, run_id=settings.run_id, shop_id=shop.id, task=task,
                    array_index=settings.array_index, job_id=settings.job_id,
                    attempt=settings.attempt,
                )
            if lost:
                log.warning("task.lost_rows", task_run_ids=lost)
            rejects = accounting.RejectSink(
                conn, shop_id=shop.id, task=task, run_id=settings.run_id, task_run_id=task_run_id
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
            # What the task left uncommitted is not its result (as when its connection closed).
            _end_transaction(conn)
            duration = time.monotonic() - started
            counts = {**result.counts, **rejects.summary()}
            if result.note:
                counts["note"] = result.note
            rejected = result.rows_rejected or rejects.count
            with conn.transaction():
                rejects.flush(conn)
                accounting.finish_task_run(
                    conn, task_run_id, status="succeeded", exit_code=EXIT_OK,
                    duration_s=duration, rows_in=result.rows_in, rows_out=result.rows_out,
                    rows_rejected=rejected, bytes_=result.bytes, counts=counts,
                )
        _log_summary(
            log, task, settings, status="succeeded", exit_code=EXIT_OK,
            **_summary_numbers(result.rows_in, result.rows_out, rejected, result.bytes, duration),
            counts=counts, note=result.note,
        )
        return EXIT_OK
    except BaseException as exc:
        code = _code_for(exc)
        duration = time.monotonic() - started
        status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        message = _log_failure(log, exc, code, status=status)
        extra = {"signal": exc.signal_name} if isinstance(exc, Interrupted) else {}
        if shop is not None:
            _record_failure(conn, settings, shop.id, task, task_run_id, rejects,
                            _Outcome(status, code, duration, message, extra))
        _log_summary(
            log, task, settings, status=status, exit_code=code,
            **_summary_numbers(0, 0, rejects.count if rejects else 0, 0, duration),
            counts={**(rejects.summary() if rejects else {}), **extra},
        )
        if isinstance(exc, KeyboardInterrupt):
            raise
        return code


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


def _end_transaction(conn: psycopg.Connection) -> None:
    if not conn.closed and conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        conn.rollback()


@dataclass(frozen=True)
class _Outcome:
    status: str
    code: int
    duration: float
    message: str
    extra: dict[str, Any]


def _record_failure(
    conn: psycopg.Connection,
    settings: Settings,
    shop_id: str,
    task: str,
    task_run_id: int | None,
    rejects: accounting.RejectSink | None,
    outcome: _Outcome,
) -> None:
    """The failed (or interrupted) row, with the rejects so far: on the child's connection when it
    still works, else on a short-lived one (the server may have dropped the first)."""
    own = None
    try:
        try:
            _end_transaction(conn)
            target = conn
        except psycopg.Error:
            target = conn
        if target.closed or target.broken:
            own = target = _connect(settings)
        with target.transaction():
            if task_run_id is None:
                # Failed before its row (waiting for the shop's lock): the attempt still counts.
                task_run_id = accounting.start_task_run(
                    target, run_id=settings.run_id, shop_id=shop_id, task=task,
                    array_index=settings.array_index, job_id=settings.job_id,
                    attempt=settings.attempt,
                )
            if rejects is not None:
                rejects.flush(target)
            accounting.finish_task_run(
                target, task_run_id, status=outcome.status, exit_code=outcome.code,
                duration_s=outcome.duration,
                rows_rejected=rejects.count if rejects else None,
                counts={**(rejects.summary() if rejects else {}), **outcome.extra},
                error=outcome.message[:4000],
            )
    except (psycopg.Error, CatalogError, KeyboardInterrupt):
        get_logger("worker").warning("task.record_failed", task_run_id=task_run_id)
    finally:
        if own is not None and not own.closed:
            own.close()


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
    if len(args) != 1 or args[0] not in TASKS + MAINTENANCE_TASKS:
        got = " ".join(args) or "no task"
        print(f"catalog-worker: unknown task ({got})\n{USAGE}", file=sys.stderr)
        return EXIT_DATAERR
    task = args[0]
    try:
        settings = Settings.from_env()
    except CatalogError as exc:
        configure("json", stream=sys.stderr)
        get_logger("worker").error("config.invalid", task=task, error=redact(str(exc)))
        print(f"catalog-worker {task}: {redact(str(exc))}", file=sys.stderr)
        return exc.exit_code
    configure(settings.log_format)
    if task == "migrate":
        return run_migrate(settings)
    shutdown.install()
    return run_task(task, settings)


def run_migrate(settings: Settings) -> int:
    """Apply the schema migrations with nothing but DATABASE_URL (no shop, no run): the one-off
    job `catalog-submit migrate --on-batch` submits, inside the VPC. Returns the exit code."""
    log = get_logger("worker")
    bind_context(task="migrate", job_id=settings.job_id, attempt=settings.attempt)
    if settings.database_url is None:
        error = "DATABASE_URL is not set: migrate needs the database's libpq URI itself"
        log.error("task.failed", exit_code=EXIT_DATAERR, error=error)
        return EXIT_DATAERR
    started = time.monotonic()
    try:
        applied = db.migrate(settings.database_url)
    except Exception as exc:
        code = exit_code_for(exc)
        if code == 1:
            log.exception("task.crashed", exit_code=code, error=redact(str(exc)))
        else:
            log.error("task.failed", exit_code=code, error=redact(str(exc)) or type(exc).__name__,
                      error_type=type(exc).__name__)
        return code
    log.info("migrate.done", applied=[f"{m.version:04d}_{m.name}" for m in applied],
             schema_version=db.latest_version(), duration_s=round(time.monotonic() - started, 3))
    return EXIT_OK
