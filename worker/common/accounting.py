"""Per-task accounting: the task_runs row of an attempt and the rejected records with their reasons.

A child holds one database connection (a night of hundreds of children at once must fit the
server's connection budget). The task owns that connection's transactions while it runs, so the
rejects are spooled to a local temporary file (constant memory) and written by ``flush()`` after the
task's transaction has ended, committed or rolled back: what a task rejected and how it ended are
kept either way.
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Protocol

import psycopg

EXCERPT_CHARS = 200
_SPOOL_EVERY = 500
# Past this many bytes the spool moves from memory to a temporary file.
_SPOOL_MEMORY_BYTES = 1 << 20


class RejectRecorder(Protocol):
    """What a task needs of a reject sink: ``RejectSink`` in production, a list in some tests."""

    def add(
        self, reason: str, *, position: str | int | None = None, product_id: str | None = None,
        field: str | None = None, excerpt: str | None = None, channel: str | None = None,
        outcome: str = "rejected",
    ) -> None: ...


@dataclass
class RejectSink:
    """Collects rejected records: spooled as they come, written to ``rejects`` by ``flush()``.

    ``flush()`` writes on ``conn`` (or the connection it is given) and must run outside the task's
    transaction, so that a rollback of the task's work keeps the record of what it rejected.
    """

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
    _spool: Any = None

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
        if len(self._pending) >= _SPOOL_EVERY:
            self._to_spool()

    def _to_spool(self) -> None:
        if self._spool is None:
            # Closed by discard(), which flush() always ends with.
            self._spool = tempfile.SpooledTemporaryFile(  # noqa: SIM115
                max_size=_SPOOL_MEMORY_BYTES, mode="w+", encoding="utf-8", prefix="rejects-"
            )
        for row in self._pending:
            self._spool.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._pending.clear()

    def _spooled(self) -> Any:
        if self._spool is not None:
            self._spool.seek(0)
            for line in self._spool:
                yield tuple(json.loads(line))
        yield from self._pending

    def flush(self, conn: psycopg.Connection | None = None) -> None:
        """Write what was spooled to ``rejects`` on ``conn`` (default: the sink's own), one COPY."""
        conn = conn if conn is not None else self.conn
        if conn is not None and (self._pending or self._spool is not None):
            with conn.cursor() as cur, cur.copy(
                "COPY rejects (task_run_id, run_id, shop_id, task, channel, position, product_id,"
                " field, reason, excerpt, outcome) FROM STDIN"
            ) as copy:
                for row in self._spooled():
                    copy.write_row(row)
        self.discard()

    def discard(self) -> None:
        """Forget what was spooled (written, or not to be written)."""
        self._pending.clear()
        if self._spool is not None:
            self._spool.close()
            self._spool = None

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


def mark_lost(
    conn: psycopg.Connection, *, shop_id: str, task: str, reason: str,
    ids: list[int] | None = None,
) -> list[int]:
    """Mark the shop's task rows still ``running`` as ``lost`` (their process died without a word:
    an OOM kill, a segfault, a vanished host); ``ids`` limits it to those rows. The ids marked.

    The caller knows no live process owns them: it holds the shop's task lock, which every attempt
    holds from before its row is written until after it is finished.
    """
    rows = conn.execute(
        """
        UPDATE task_runs SET status = 'lost', finished_at = clock_timestamp(),
               error = %s, duration_s = extract(epoch FROM clock_timestamp() - started_at)
        WHERE shop_id = %s AND task = %s AND status = 'running'
          AND (%s::bigint[] IS NULL OR id = ANY(%s::bigint[]))
        RETURNING id
        """,
        (reason, shop_id, task, ids, ids),
    ).fetchall()
    return [int(r[0]) for r in rows]
