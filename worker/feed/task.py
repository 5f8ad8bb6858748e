"""The feed task: one pass over a shop's products into every channel's file, then publish them whole.

``run(ctx)`` is what the router calls; ``build_feeds`` is the pass itself (also used by the bench).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import psycopg
import structlog

from worker.common import shutdown
from worker.common.accounting import RejectRecorder
from worker.common.errors import RejectedRecord
from worker.common.stores import open_store
from worker.common.task import TaskContext, TaskResult
from worker.feed.channels import get_channel
from worker.feed.channels.base import Channel, FeedProduct, normalise
from worker.feed.lines import (
    COPY_OPTIONS,
    EXCLUDED,
    FIELD_SEP,
    POSITION_END,
    PYTHON,
    SKIP,
    LineSQL,
    lines_query,
)
from worker.feed.publish import GZIP_LEVEL, BuiltFeed, FeedFile, publish_feeds
from worker.feed.stream import (
    Method,
    count_query,
    data_as_of,
    feed_query,
    last_data_as_of,
    stream_products,
)

log = structlog.get_logger(__name__)


@dataclass
class Build:
    """The outcome of the pass: each channel's finished file, the rows read, the watermark."""

    feeds: list[BuiltFeed]
    rows_in: int
    data_as_of: datetime
    method: str = "cursor"  # how the lines were made, after any fallback


def build_feeds(
    conn: psycopg.Connection,
    shop_id: str,
    channels: Sequence[Channel],
    folder: Path,
    *,
    rejects: RejectRecorder,
    method: Method | Literal["lines"] = "cursor",
    itersize: int = 2000,
    gzip_level: int | None = GZIP_LEVEL,
) -> Build:
    """Stream the shop's products, feeding every channel; files land in ``folder``.

    ``cursor`` (the default) / ``copy``: one pass of FeedProduct rows through every channel's
    ``row`` in Python. ``lines`` (the shop option ``feed_database_lines``): one ``COPY`` of the
    lines PostgreSQL builds for all the channels at once (a field per channel; worker/feed/lines.py),
    Python taking the rows it hands back, in one repeatable-read transaction. Measured
    (bench/feed.py, bench/results-feed.md): ``lines`` is faster in wall clock for one channel and
    for five, and spends less CPU in all (worker + database), but PostgreSQL's share is still
    2–6 × the Python path's (per row and channel: 13–39 µs against 3–8, meta 14–20) — a cost every
    shop's feed job puts on one shared database, hence not the default. Either way ``conn``'s
    transaction is ended.
    """
    delta = [c for c in channels if c.delta]
    idle = conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    with conn.transaction():
        # The feed queries are long expressions over cheap scans: JIT compiling them costs more
        # than it saves (lines, meta: 34 µs/row without, 58 with; the Python path's meta query
        # turned it on too, bench/results-feed.md).
        conn.execute("SET LOCAL jit = off")
        if method == "lines" and conn.info.encoding != "utf-8":
            method = "cursor"  # the COPY's bytes go to the files as they are: UTF-8 only
        if method == "lines":
            if idle:
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            elif conn.execute("SHOW transaction_isolation").fetchone() not in (
                ("repeatable read",), ("serializable",)
            ):
                method = "cursor"  # an outer read-committed transaction: one statement, one snapshot
        as_of = data_as_of(conn)
        since: datetime | None = None
        if delta:
            marks = [last_data_as_of(conn, shop_id, c.since_channels) for c in delta]
            since = None if None in marks else min(m for m in marks if m is not None)
        query = feed_query(
            shop_id,
            check_groups=any(c.checks_groups for c in channels),
            summary=bool(delta),
            since=since,
        )
        feeds: list[BuiltFeed] = []
        files: list[FeedFile] = []
        try:
            for channel in channels:
                gzip = channel.gzip and gzip_level is not None
                name = f"{channel.name}.{channel.extension}" + (".gz" if gzip else "")
                file = FeedFile(folder / name, gzip_level=gzip_level if gzip else None)
                files.append(file)
                feeds.append(BuiltFeed(channel=channel, shop_id=shop_id, path=file.path, gzip=gzip))
                file.write(channel.header())
            if method == "lines":
                rows_in = _copy_lines(
                    conn, shop_id, feeds, files, rejects, summary=bool(delta), since=since
                )
            else:
                rows_in = _pass(
                    stream_products(conn, query, method=method, itersize=itersize),
                    feeds, files, rejects,
                )
            for feed, file in zip(feeds, files, strict=True):
                file.write(feed.channel.footer())
                file.close()
                feed.bytes, feed.sha256 = file.bytes, file.sha256
        except BaseException:
            for file in files:
                file.abort()
            raise
    return Build(feeds=feeds, rows_in=rows_in, data_as_of=as_of, method=method)


def _copy_lines(
    conn: psycopg.Connection, shop_id: str, feeds: list[BuiltFeed], files: list[FeedFile],
    rejects: RejectRecorder, *, summary: bool, since: datetime | None,
) -> int:
    """One COPY for all channels, inside the caller's repeatable-read transaction; returns the
    rows read.

    Each output row is one product: every channel's line (or marker) as its own field, split here
    and routed to the channels' batches. The shared values are read and cleaned once per row.
    """
    row = conn.execute(count_query(shop_id, summary=summary, since=since)).fetchone()
    assert row is not None
    base = feed_query(
        shop_id, check_groups=any(f.channel.checks_groups for f in feeds), summary=summary,
        since=since, arrays=True,
    ).as_string(conn)
    specs = [(f.channel.line_sql() or LineSQL("NULL::text"), f.channel.delta) for f in feeds]
    statement = f"COPY ({lines_query(base, specs)}) TO STDOUT ({COPY_OPTIONS})"
    count = len(feeds)
    parts: list[list[bytes]] = [[] for _ in feeds]
    excluded = [0] * count
    batch = min(f.chunk_size for f in files)
    done = 0
    check_every = 256
    with conn.cursor() as cur, cur.copy(statement.encode()) as copy:
        # libpq hands COPY data over one whole row at a time (PQgetCopyData).
        for line in copy:
            done += 1
            data = bytes(line[:-1])  # without its newline
            fields = data.split(FIELD_SEP) if count > 1 else [data]
            product = None
            for i, field in enumerate(fields):
                first = field[0]
                if first > PYTHON:
                    parts[i].append(field)
                elif first == PYTHON:
                    if product is None:
                        cut = field.index(POSITION_END)
                        product = (int(field[1:cut]), normalise(json.loads(field[cut + 1:])))
                    text = _python_line(feeds[i], product[0], product[1], rejects)
                    if text is None:
                        excluded[i] += 1
                    elif text:
                        parts[i].append(text)
                elif first == EXCLUDED:
                    excluded[i] += 1
                elif first == SKIP:
                    pass
                else:  # a line starting with a control character (a summary's D row)
                    parts[i].append(field)
            if done % check_every == 0:
                for feed, file, mine in zip(feeds, files, parts, strict=True):
                    if sum(map(len, mine)) >= batch:
                        _flush(feed, file, mine)
    for i, (feed, file, mine) in enumerate(zip(feeds, files, parts, strict=True)):
        _flush(feed, file, mine)
        feed.excluded += excluded[i]
    return int(row[0])


def _flush(feed: BuiltFeed, file: FeedFile, parts: list[bytes]) -> None:
    """A channel's batch of lines (without their newlines) to its writer."""
    if parts:
        feed.rows += len(parts)
        parts.append(b"")
        file.write_bytes(b"\n".join(parts))
        parts.clear()


def _python_line(
    feed: BuiltFeed, position: int, p: FeedProduct, rejects: RejectRecorder
) -> bytes | None:
    """A row the database handed back: ``Channel.row``'s line without its newline, None when left
    out by policy, b"" when rejected (recorded)."""
    channel = feed.channel
    feed.python_rows += 1
    try:
        text = channel.row(p)
    except RejectedRecord as rejected:
        feed.rejected[rejected.reason] += 1
        rejects.add(
            rejected.reason, position=position, product_id=p.product_id,
            field=rejected.field, excerpt=rejected.excerpt, channel=channel.name,
        )
        return b""
    if text is None:
        return None
    return text.encode()[:-1]


def _pass(rows: Any, feeds: list[BuiltFeed], files: list[FeedFile], rejects: RejectRecorder) -> int:
    """The hot loop: each row to each channel that takes it; returns the rows read."""
    full = [(f.channel.row, f, w.write) for f, w in zip(feeds, files, strict=True)
            if not f.channel.delta]
    delta = [(f.channel.row, f, w.write) for f, w in zip(feeds, files, strict=True)
             if f.channel.delta]
    count = 0
    for p in rows:
        count += 1
        # A gone product ("D") is only news to a summary; a live one goes to every full channel
        # and, when it changed since the watermark, to the summaries.
        change = p.change
        if change is None:
            targets = full
        elif change == "D":
            targets = delta
        else:
            targets = full + delta
        for make_row, feed, write in targets:
            try:
                text = make_row(p)
            except RejectedRecord as rejected:
                feed.rejected[rejected.reason] += 1
                rejects.add(
                    rejected.reason, position=count, product_id=p.product_id,
                    field=rejected.field, excerpt=rejected.excerpt, channel=feed.channel.name,
                )
                continue
            if text is None:
                feed.excluded += 1
                continue
            write(text)
            feed.rows += 1
    return count


def run(ctx: TaskContext) -> TaskResult:
    """Build and publish every channel the shop lists; the router records and logs the result."""
    shop = ctx.shop
    if not shop.channels:
        return TaskResult(note="the shop lists no channels: nothing to publish")
    channels = [get_channel(name, shop_id=shop.id) for name in shop.channels]
    store = open_store(ctx.settings.output_url, endpoint_url=ctx.settings.aws_endpoint_url)
    with tempfile.TemporaryDirectory(prefix=f"feed-{shop.id}-") as tmp:
        method: Literal["lines", "cursor"] = (
            "lines" if shop.option("feed_database_lines") else "cursor"
        )
        build = build_feeds(
            ctx.conn, shop.id, channels, Path(tmp), rejects=ctx.rejects, method=method
        )
        for feed in build.feeds:
            ctx.log.info(
                "feed.built", channel=feed.channel.name, rows=feed.rows, bytes=feed.bytes,
                rejected=dict(feed.rejected), excluded=feed.excluded,
            )
        # Once publishing starts, a stop signal waits for it: every channel and its manifest, and
        # their record, or (interrupted while building) none of them.
        with shutdown.deferred():
            manifests = publish_feeds(
                store, build.feeds,
                max_drop_share=float(shop.option("max_feed_drop_share")),
                force=ctx.settings.force,
                run_id=ctx.run_id,
                task_run_id=ctx.task_run_id,
                data_as_of=build.data_as_of,
            )
            record_publications(ctx.conn, manifests, data_as_of=build.data_as_of)
    counts: dict[str, Any] = {
        "lines_made_by": "database" if build.method == "lines" else "python",
        "channels": {
            m["channel"]: {
                "rows": m["rows"], "rejected": m["rejected"], "excluded": m["excluded"],
                "bytes": m["bytes"], "unchanged": m["unchanged"],
            }
            for m in manifests
        }
    }
    return TaskResult(
        rows_in=build.rows_in,
        rows_out=sum(f.rows for f in build.feeds),
        rows_rejected=sum(sum(f.rejected.values()) for f in build.feeds),
        bytes=sum(f.bytes for f in build.feeds),
        counts=counts,
    )


def record_publications(
    conn: psycopg.Connection, manifests: list[dict[str, Any]], *, data_as_of: datetime
) -> None:
    """Keep the history and the summary EP's watermark (one short transaction)."""
    with conn.transaction():
        for m in manifests:
            conn.execute(
                """
                INSERT INTO feed_publications (shop_id, channel, run_id, task_run_id, key, rows,
                    rejected, bytes, sha256, unchanged, data_as_of)
                VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
                """,
                (
                    m["shop_id"], m["channel"], m["run_id"], m["task_run_id"], m["key"],
                    m["rows"], m["rejected_total"], m["bytes"], m["sha256"], m["unchanged"],
                    data_as_of,
                ),
            )
