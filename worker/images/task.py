"""The images task: for one shop, fetch each image URL once, normalise it, store it by content,
record every outcome, point the products at the results, and exit 75 when the image host is down."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import psycopg

from worker.common import db
from worker.common.errors import TransientError
from worker.common.net import redact_url
from worker.common.stores import open_store
from worker.common.task import TaskContext, TaskResult
from worker.images import state
from worker.images.pipeline import Attempt, ImageHandler, ImageJob, ImagesConfig, bounded_map
from worker.images.process import Outcome, ProcessOptions

# Early stop: this many attempts in, this share failing transiently, and the rest is not tried.
_EARLY_STOP_ATTEMPTS = 50
_EARLY_STOP_SHARE = 0.9
# Commit the attempts' records at least this often (and every ``config.commit_seconds``), so that
# a killed attempt keeps its progress.
_COMMIT_EVERY = 200
# A progress event this often, so that a large shop's run can be followed in the logs.
_PROGRESS_EVERY = 1000


def run(
    ctx: TaskContext,
    *,
    config: ImagesConfig | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> TaskResult:
    """Process the shop's images; see docs/images.md. ``clock`` is for tests."""
    settings, shop, conn, log = ctx.settings, ctx.shop, ctx.conn, ctx.log
    config = config or ImagesConfig.from_settings(settings)
    options = ProcessOptions.for_shop(
        shop, on=config.on, quality=config.quality, progressive=config.progressive
    )
    store = open_store(settings.output_url, endpoint_url=settings.aws_endpoint_url)
    handler = ImageHandler(shop_id=shop.id, store=store, options=options, config=config)
    outcomes: Counter[str] = Counter()
    transient: Counter[str] = Counter()
    totals: Counter[str] = Counter()
    started = clock()
    budget_end = None if config.time_budget is None else started + config.time_budget

    with db.shop_lock(conn, shop.id, "images", timeout_s=settings.shop_lock_timeout):
        registered = state.register_urls(conn, shop.id, config)
        # A later attempt of the same night (after a spent time budget, a kill) goes on from there.
        since = state.night_started(conn, ctx.run_id, shop.id)
        stopped_early = False
        out_of_time = False

        def jobs() -> Iterator[ImageJob]:
            nonlocal out_of_time
            # Stopping the supply (not the consumer) lets the attempts in flight finish and be
            # recorded.
            for job in state.iter_jobs(conn, shop.id, config, not_attempted_since=since):
                if stopped_early:
                    return
                if budget_end is not None and clock() >= budget_end:
                    out_of_time = True
                    return
                yield job

        attempts = bounded_map(
            handler, jobs(), workers=config.fetch_workers, max_in_flight=config.fetch_workers * 2
        )
        last_commit = clock()
        try:
            for attempt in attempts:
                _account(attempt, outcomes, transient, totals)
                if totals["attempted"] % _PROGRESS_EVERY == 0:
                    log.info("images.progress", attempted=totals["attempted"],
                             outcomes=dict(outcomes))
                if state.record_attempt(conn, shop.id, attempt):
                    totals["rows_written"] += 1
                    now = clock()
                    if (totals["rows_written"] % _COMMIT_EVERY == 0
                            or now - last_commit >= config.commit_seconds):
                        conn.commit()
                        totals["commits"] += 1
                        last_commit = now
                if not attempt.transient and not attempt.outcome.stored and (
                    attempt.outcome is not Outcome.UNCHANGED
                ):
                    _reject(ctx, attempt)
                if _looks_down(totals, _EARLY_STOP_ATTEMPTS, _EARLY_STOP_SHARE):
                    stopped_early = True
        finally:
            attempts.close()  # cancels what was not started; waits for what was
            if conn.info.transaction_status != psycopg.pq.TransactionStatus.INERROR:
                conn.commit()  # keep the progress recorded so far, even when failing
        products_updated = state.update_products(
            conn, shop.id, options.rules, options.channels, config
        )

    counts: dict[str, Any] = {
        "outcomes": dict(outcomes),
        "attempted": totals["attempted"],
        "transient": totals["transient"],
        "downloaded_bytes": totals["downloaded_bytes"],
        "stored_new": totals["stored_new"],
        "stored_existing": totals["stored_existing"],
        "products_updated": products_updated,
        "progress_commits": totals["commits"],
        "decode_memory_peak": handler.memory.peak,
        **registered,
    }
    log.info("images.done", seconds=round(clock() - started, 3), **counts)
    if out_of_time:
        raise TransientError(
            f"shop {shop.id}: the images time budget of {config.time_budget:g} s "
            f"(IMAGES_TIME_BUDGET) was spent after {totals['attempted']} image(s); what was done "
            "is recorded and the next attempt goes on with the rest"
        )
    if stopped_early or _looks_down(totals, config.down_min_attempts, config.down_share):
        raise TransientError(
            f"shop {shop.id}: {totals['transient']} of {totals['attempted']} image downloads "
            f"failed transiently ({_transient_summary(transient)})"
            + (", so the rest was not tried" if stopped_early else "")
            + ": the shop's image host looks down; what succeeded is recorded and a later "
            "attempt retries the rest"
        )
    return TaskResult(
        rows_in=totals["attempted"],
        rows_out=outcomes[Outcome.OK] + outcomes[Outcome.TOO_SMALL] + outcomes[Outcome.UNCHANGED],
        rows_rejected=ctx.rejects.count,
        bytes=totals["bytes_written"],
        counts=counts,
        note="nothing changed" if totals["rows_written"] == 0 and products_updated == 0 else None,
    )


def _account(
    attempt: Attempt, outcomes: Counter[str], transient: Counter[str], totals: Counter[str]
) -> None:
    outcomes[attempt.outcome.value] += 1
    if attempt.transient:
        transient[attempt.outcome.value] += 1
    totals["attempted"] += 1
    totals["transient"] += attempt.transient
    totals["downloaded_bytes"] += attempt.source_bytes if attempt.downloaded else 0
    totals["bytes_written"] += attempt.bytes_written
    if attempt.output_key is not None:
        totals["stored_new" if attempt.bytes_written else "stored_existing"] += 1


def _looks_down(totals: Counter[str], min_attempts: int, share: float) -> bool:
    attempted = totals["attempted"]
    return attempted >= min_attempts and totals["transient"] > share * attempted


def _transient_summary(transient: Counter[str]) -> str:
    return ", ".join(f"{n} {name}" for name, n in transient.most_common()) or "none"


def _reject(ctx: TaskContext, attempt: Attempt) -> None:
    """A URL that gave no usable image is a rejected record: the reason, the URL, the message."""
    ctx.rejects.add(
        f"image {attempt.outcome.value}",
        position=redact_url(attempt.job.url),
        field="image_link",
        excerpt=attempt.error,
    )
    ctx.log.warning(
        "images.rejected", outcome=attempt.outcome.value, url=redact_url(attempt.job.url),
        http_status=attempt.http_status, error=attempt.error,
    )


__all__ = ["ImagesConfig", "run"]
