"""Per-task accounting: the task_runs row of an attempt and the rejected records with their reasons.

Both are written on a connection of their own, in autocommit, so that what a task rejected and how
it ended are kept even when the task's own transaction rolls back.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Protocol

import psycopg

EXCERPT_CHARS = 200
_FLUSH_EVERY = 500


class RejectRecorder(Protocol):
    """What a task needs of a reject sink: ``RejectSink`` in production, a list in some tests."""

    def add(
        self, reason: str, *, position: str | int | None = None, product_id: str | None = None,
        field: str | None = None, excerpt: str | None = None, channel: str | None = None,
        outcome: str = "rejected",
    ) -> None: ...


@dataclass
class RejectSink:
    """Collects rejected records and streams them to ``rejects`` in batches."""

    conn: psycopg.Connection | None
    shop_id: str
    task: str
    run_id: str | None = None
    task_run_id: int | None = None
    count: int = 0
    by_reason: Counter[str] = field(default_factory=Counter)
    by_channel_reason: Counter[tuple[str | None, str]] = field(default_factory=Counter)
    dropped_by_channel_reason: Counter[tuple[str | None, str]] = field(default_factory=Counter)
    _pending: list[tuple[Any, ...]] = field(default_factory=list)

    def add(
        self,
        reason: str,
        *,
        position: str | int | None = None,
        product_id: str | None = None,
        field: str | None = None,
        excerpt: str | None = None,
        channel: str | None = None,
        outcome: str = "rejected",
    ) -> None:
        """``outcome``: ``rejected`` (collect), ``excluded`` or ``dropped`` (feed: the item, or one
        attribute of it, left out of a channel): a dropped attribute is not a rejected record."""
        if outcome == "dropped":
            self.dropped_by_channel_reason[(channel, reason)] += 1
        else:
            self.count += 1
            self.by_reason[reason] += 1
            self.by_channel_reason[(channel, reason)] += 1
        if excerpt is not None and len(excerpt) > EXCERPT_CHARS:
            excerpt = excerpt[:EXCERPT_CHARS] + "…"
        self._pending.append(
            (
                self.task_run_id, self.run_id, self.shop_id, self.task, channel,
                None if position is None else str(position), product_id, field, reason,
                None if excerpt is None else _printable(excerpt), outcome,
            )
        )
        if len(self._pending) >= _FLUSH_EVERY:
            self.flush()

    def flush(self) -> None:
        if not self._pending or self.conn is None:
            self._pending.clear()
            return
        with self.conn.cursor() as cur, cur.copy(
            "COPY rejects (task_run_id, run_id, shop_id, task, channel, position, product_id,"
            " field, reason, excerpt, outcome) FROM STDIN"
        ) as copy:
            for row in self._pending:
                copy.write_row(row)
        self._pending.clear()

    def summary(self) -> dict[str, Any]:
        """Counts per reason (and per channel, where a channel rejected), for the task's summary."""
        out: dict[str, Any] = {"rejected": self.count}
        if self.by_reason:
            out["rejected_by_reason"] = dict(self.by_reason)
        channels: dict[str, dict[str, int]] = {}
        for (channel, reason), n in self.by_channel_reason.items():
            if channel is not None:
                channels.setdefault(channel, {})[reason] = n
        if channels:
            out["rejected_by_channel"] = channels
        dropped: dict[str, dict[str, int]] = {}
        for (channel, reason), n in self.dropped_by_channel_reason.items():
            dropped.setdefault(channel or "", {})[reason] = n
        if dropped:
            out["dropped_by_channel"] = dropped
        return out


def _printable(text: str) -> str:
    # PostgreSQL text cannot hold NUL; other control characters are kept visible for the reader.
    return text.replace("\x00", "\\x00")


def start_task_run(
    conn: psycopg.Connection,
    *,
    run_id: str | None,
    shop_id: str,
    task: str,
    array_index: int,
    job_id: str | None,
    attempt: int,
) -> int:
    row = conn.execute(
        """
        INSERT INTO task_runs (run_id, shop_id, task, array_index, job_id, attempt)
        VALUES (%s, %s, %s, %s, %s, %s) RETURNING id
        """,
        (run_id, shop_id, task, array_index, job_id, attempt),
    ).fetchone()
    assert row is not None
    return int(row[0])


def finish_task_run(
    conn: psycopg.Connection,
    task_run_id: int,
    *,
    status: str,
    exit_code: int,
    duration_s: float,
    rows_in: int | None = None,
    rows_out: int | None = None,
    rows_rejected: int | None = None,
    bytes_: int | None = None,
    counts: dict[str, Any] | None = None,
    error: str | None = None,
) -> None:
    conn.execute(
        """
        UPDATE task_runs SET finished_at = clock_timestamp(), status = %s, exit_code = %s,
               duration_s = %s, rows_in = %s, rows_out = %s, rows_rejected = %s, bytes = %s,
               counts = %s::jsonb, error = %s
        WHERE id = %s
        """,
        (
            status, exit_code, duration_s, rows_in, rows_out, rows_rejected, bytes_,
            json.dumps(counts or {}, default=str, ensure_ascii=False), error, task_run_id,
        ),
    )
