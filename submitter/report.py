"""Everything the submitter prints: the plan with its bundles, live progress, the local summary,
the status tables, the per-shop outcome, the outputs, submission and retention summaries.

Commands (cli.py, demo.py) compute with plan/night/status/local and hand the results here; nothing
else in the submitter writes to the console.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TextIO

import psycopg

from submitter.local import LocalSummary, Progress
from submitter.plan import Plan
from submitter.status import RunStatus
from worker.common.redact import redact
from worker.common.settings import TASKS
from worker.common.shops import Shop

SHOWN_PER_BUNDLE = 4


def shops_text(shops: Iterable[Shop]) -> str:
    """The registered shops, one per line, the source last (it is the longest), redacted: a shop's
    export URL may carry a token in its user info or query string."""
    rows = [("ID", "ACTIVE", "FORMAT", "CURRENCY", "CHANNELS", "SOURCE")]
    rows += [
        (s.id, "yes" if s.active else "no", s.format, s.currency, ",".join(s.channels),
         redact(s.source_url))
        for s in shops
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1]
        for row in rows
    )


def bundle_label(shops: list[str]) -> str:
    """A child's shops in a few words: ``a``, or ``a+b+c``, or ``a+b+c+d +12 more``."""
    head = "+".join(shops[:SHOWN_PER_BUNDLE])
    more = len(shops) - SHOWN_PER_BUNDLE
    return head + (f" +{more} more" if more > 0 else "")


def plan_text(conn: psycopg.Connection, plan: Plan, *, all_shops: bool = False) -> str:
    """The run, its jobs and its children with their shops (the first 20 unless ``all_shops``)."""
    state = "new" if plan.created else "existing"
    bundled = plan.children < plan.shop_count
    lines = [f"run {plan.run_id} ({state} {plan.kind} run for {plan.run_date}): "
             f"{plan.shop_count} shops"
             + (f" in {plan.children} children (small shops bundled)" if bundled else "")
             + f", {len(plan.jobs)} jobs"
             + (", images before feed" if plan.images_before_feed else "")]
    if not plan.jobs:
        lines.append("nothing to do: no active shops")
        return "\n".join(lines)
    for job in plan.jobs:
        size = f"array of {job.array_size}" if job.array_size else "plain job"
        deps = ", ".join(f"{d.key} ({d.type or 'plain'})" for d in job.depends_on) or "-"
        lines.append(f"  {job.key:<10} {job.name:<48} {size:<15} offset {job.chunk.offset:<6} "
                     f"after {deps}")
    limit = None if all_shops else 20
    shown = 0
    with conn.cursor(name="plan_children") as cur:
        cur.execute(
            "SELECT child, array_agg(shop_id ORDER BY idx) FROM run_shops WHERE run_id = %s "
            "GROUP BY child ORDER BY child", (plan.run_id,))
        for child, shops in cur:
            if limit is not None and shown >= limit:
                break
            if len(shops) == 1:
                lines.append(f"  [{child}] {shops[0]}")
            else:
                lines.append(f"  [{child}] bundle of {len(shops)}: "
                             + (", ".join(shops) if all_shops else bundle_label(list(shops))))
            shown += 1
    conn.commit()
    if shown < plan.children:
        lines.append(f"  … {plan.children - shown} more children (--all-shops lists them)")
    return "\n".join(lines)


def progress_line(progress: Progress) -> str:
    parts = []
    for task, c in progress.counts.items():
        parts.append(f"{task} {c['succeeded']} ok {c['failed']} failed "
                     f"{c['running']} running {c['waiting'] + c['retrying']} waiting")
    return " | ".join(parts)


def progress_printer(
    stream: TextIO | None = None, every_s: float = 2.0
) -> Callable[[Progress], None]:
    """Live progress of children: one rewritten line on a terminal, else a line at most every
    ``every_s``."""
    stream = stream or sys.stderr
    tty = stream.isatty()
    last_at = [0.0]
    last_seen = [""]
    last_printed = [""]

    def show(progress: Progress) -> None:
        line = progress_line(progress)
        if line == last_seen[0] and not progress.done:
            return
        last_seen[0] = line
        now = time.monotonic()
        if tty:
            stream.write("\r\033[K" + line + ("\n" if progress.done else ""))
            stream.flush()
        elif line != last_printed[0] and (progress.done or now - last_at[0] >= every_s):
            stream.write(line + "\n")
            stream.flush()
            last_at[0] = now
            last_printed[0] = line

    return show


def summary_text(summary: LocalSummary, labels: Mapping[int, str] | None = None) -> str:
    """The closing table of a local night, per task the children's counts; then each child that
    failed, with its shops and log. ``labels``: child position → its shops."""
    names = labels or {}
    lines = [f"run {summary.run_id}: {summary.attempts} worker processes "
             f"in {summary.duration_s:.1f}s"]
    lines.append(f"  {'task':<8} {'succeeded':>9} {'failed':>7}   (children)")
    for task, c in summary.counts.items():
        lines.append(f"  {task:<8} {c['succeeded']:>9} {c['failed']:>7}")
    if summary.failure_count:
        lines.append(f"{summary.failure_count} task(s) failed:")
        for f in summary.failures:
            shop = names.get(f.position, f"#{f.position}")
            if f.exit_code is None:
                lines.append(f"  {f.task:<8} shop {shop}: not run, its dependency failed")
            else:
                lines.append(f"  {f.task:<8} shop {shop}: exit {f.exit_code} after {f.attempts} "
                             f"attempt(s); log {f.log_path}")
                if f.last_line:
                    lines.append(f"           {f.last_line}")
        if summary.failure_count > len(summary.failures):
            lines.append(f"  … and {summary.failure_count - len(summary.failures)} more")
    else:
        lines.append("every child succeeded")
    return "\n".join(lines)


def status_text(status: RunStatus) -> str:
    """The compact table: one line per task with its counts, then Batch's jobs when known."""
    plan = status.plan
    lines = [f"run {plan.run_id} ({plan.kind}, {plan.run_date}): {plan.shop_count} shops"
             + (f" in {plan.children} children" if plan.children != plan.shop_count else "")]
    lines.append(f"  {'task':<8} {'succeeded':>9} {'failed':>7} {'running':>8} {'waiting':>8}")
    for task in TASKS:
        c = status.counts[task]
        lines.append(
            f"  {task:<8} {c['succeeded']:>9} {c['failed']:>7} {c['running']:>8} {c['waiting']:>8}"
        )
    if status.lost:
        lines.append(f"  {len(status.lost)} running row(s) marked lost: their process is gone "
                     "(its Batch job ended, or its shop's lock was free)")
    for job in status.batch:
        summary = ", ".join(f"{k.lower()} {v}" for k, v in sorted(job.summary.items()) if v)
        lines.append(f"  batch {job.key:<10} {job.status:<10} {job.job_id}"
                     + (f"  ({summary})" if summary else ""))
    return "\n".join(lines)


def shop_table(rows: Iterable[Mapping[str, Any]]) -> str:
    """One line per shop: each task's latest state and the first line of its error."""
    lines: list[str] = []
    for row in rows:
        if not lines:
            lines.append(f"  {'#':>6} {'child':>6} {'shop':<24} {'collect':<11} {'feed':<11} "
                         f"{'images':<11} error")
        error = (row["error"] or "").splitlines()[0][:80] if row["error"] else ""
        lines.append(f"  {row['index']:>6} {row['child']:>6} {row['shop_id']:<24} "
                     f"{row['collect']:<11} {row['feed']:<11} {row['images']:<11} {error}")
    return "\n".join(lines)


def per_shop_text(rows: Iterable[Mapping[str, Any]]) -> str:
    """What each task did per shop (rows, notes, errors): the demo's closing table."""
    lines = ["per shop:"]
    for row in rows:
        for task in TASKS:
            status = row[task]
            if status == "waiting":
                continue
            detail = (f"in {row[task + '_in'] or 0} out {row[task + '_out'] or 0} "
                      f"rejected {row[task + '_rejected'] or 0}")
            if row[task + "_note"]:
                detail += f" ({row[task + '_note']})"
            if row[task + "_error"]:
                detail += f" — {str(row[task + '_error']).splitlines()[0][:160]}"
            if status == "failed" and row[task + "_exit"] is not None:
                detail += f" [shop {row['shop_id']}: exit {row[task + '_exit']}]"
            lines.append(f"  {row['shop_id']:<14} {task:<8} {status:<11} {detail}")
    return "\n".join(lines)


def outputs_text(output: Path) -> str:
    feeds = sorted(p for p in (output / "feeds").rglob("*") if p.is_file()) if output.exists() else []
    images = [p for p in (output / "images").rglob("*") if p.is_file()] if output.exists() else []
    lines = [f"feeds ({len(feeds)} files) under {output / 'feeds'}:"]
    lines += [f"  {p.relative_to(output)}" for p in feeds if not p.name.endswith(".manifest.json")]
    lines.append(f"images: {len(images)} files under {output / 'images'}")
    return "\n".join(lines)


def submit_text(summary: Mapping[str, Any]) -> str:
    return json.dumps(summary, indent=2, default=str)


def prune_text(counts: Mapping[str, int], keep_days: int) -> str:
    parts = ", ".join(f"{n} {name}" for name, n in counts.items())
    return f"pruned what is older than {keep_days} days: {parts}"


def reasons_text(rows: list[dict[str, Any]]) -> str:
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
