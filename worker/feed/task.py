"""The feed task: one pass over a shop's products into every channel's file, then publish them whole.

``run(ctx)`` is what the router calls; ``build_feeds`` is the pass itself (also used by the bench).
Every item a channel excludes and every attribute it drops is recorded with its reason
(``ctx.rejects``: outcome ``excluded`` / ``dropped``) and counted per channel and reason.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import structlog

from worker.common import shutdown
from worker.common.accounting import RejectRecorder
from worker.common.errors import FatalError, RejectedRecord
from worker.common.stores import open_store
from worker.common.task import TaskContext, TaskResult
from worker.feed.channels import get_channel
from worker.feed.channels.base import Channel, ChannelOptions
from worker.feed.linecache import LineCache, decode_notes, encode_notes, validity
from worker.feed.product import FeedProduct, normalise
from worker.feed.publish import GZIP_LEVEL, BuiltFeed, FeedFile, publish_feeds
from worker.feed.stream import (
    CACHE_HIT,
    CACHE_KEY,
    CACHE_LINES,
    Method,
    cached_feed_query,
    data_as_of,
    feed_query,
    last_data_as_of,
    stream_products,
    stream_rows,
)

log = structlog.get_logger(__name__)
# How many reasons a failed channel's report names.
TOP_REASONS = 3


@dataclass
class Build:
    """The outcome of the pass: each channel's finished file, the rows read, the watermark."""

    feeds: list[BuiltFeed]
    rows_in: int
    data_as_of: datetime
    live: int = 0  # live products read (the rows every full channel saw)


def build_feeds(
    conn: psycopg.Connection,
    shop_id: str,
    channels: Sequence[Channel],
    folder: Path,
    *,
    rejects: RejectRecorder,
    method: Method | None = None,
    itersize: int = 2000,
    gzip_level: int | None = GZIP_LEVEL,
    line_cache: bool = False,
) -> Build:
    """Stream the shop's products once, feeding every channel; files land in ``folder``.

    One pass of FeedProduct rows through every channel's ``row``, in one transaction (one
    snapshot for every channel); ``conn``'s transaction is ended. With ``line_cache``
    (FEED_LINE_CACHE, worker/feed/linecache.py) a product's line is reused where nothing it
    depends on changed, and the lines built are stored in the same transaction. ``method``:
    how rows are fetched (None: the cursor, or with the cache warm, COPY).
    """
    delta = [c for c in channels if c.delta]
    with conn.transaction():
        # The feed query is a long expression over cheap scans: JIT compiling it costs more than
        # it saves (meta: 14–20 µs/row with it, 7–11 without; bench/results-feed.md).
        conn.execute("SET LOCAL jit = off")
        as_of = data_as_of(conn)
        since: datetime | None = None
        if delta:
            marks = [last_data_as_of(conn, shop_id, c.since_channels) for c in delta]
            since = None if None in marks else min(m for m in marks if m is not None)
        check_groups = any(c.checks_groups for c in channels)
        cache = LineCache.open(conn, shop_id, channels) if line_cache else None
        if cache is None:
            query = feed_query(shop_id, check_groups=check_groups, summary=bool(delta),
                               since=since)
        else:
            query = cached_feed_query(
                shop_id, [(c.name, c.delta, cache.cached[c.name]) for c in channels],
                now_iso=cache.now_iso, check_groups=check_groups, summary=bool(delta),
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
            # Closed whatever happens in the pass: a COPY left open (the generator suspended
            # mid-stream while an exception or a stop signal leaves the loop) would keep the
            # connection busy, and the rollback and the task's record after it would fail.
            if cache is None:
                with closing(stream_products(conn, query, method=method or "cursor",
                                             itersize=itersize)) as products:
                    rows_in, live = _pass(products, feeds, files, rejects)
            else:
                # Most rows hit (a warm night): the worker writes stored lines and the server's
                # probes set the pace, so COPY, which lets the server produce the next rows while
                # the worker writes these, is 20–30 % faster than the cursor's batches, which
                # take turns with it. Every row a miss (the first build, a deploy): the worker sets
                # the pace and the cursor's cheaper rows win (bench/results-feed.md, 2026-12-02).
                fetch = method or ("cursor" if cache.rebuild else "copy")
                with closing(stream_rows(conn, query, method=fetch,
                                         itersize=itersize)) as rows:
                    rows_in, live = _cached_pass(rows, feeds, files, rejects, cache)
            for feed, file in zip(feeds, files, strict=True):
                file.write(feed.channel.footer())
                file.close()
                feed.bytes, feed.sha256 = file.bytes, file.sha256
            if cache is not None:
                cache.flush(conn)
        except BaseException:
            for file in files:
                file.abort()
            raise
        finally:
            if cache is not None:
                cache.close()
    return Build(feeds=feeds, rows_in=rows_in, data_as_of=as_of, live=live)


def _pass(
    rows: Iterable[FeedProduct], feeds: list[BuiltFeed], files: list[FeedFile],
    rejects: RejectRecorder,
) -> tuple[int, int]:
    """The hot loop: each row to each channel that takes it; returns the rows read and the live."""
    full = [(f, w.write) for f, w in zip(feeds, files, strict=True) if not f.channel.delta]
    delta = [(f, w.write) for f, w in zip(feeds, files, strict=True) if f.channel.delta]
    count = live = 0
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
        if change != "D":
            live += 1
        for feed, write in targets:
            line, notes = _build(feed.channel, p)
            _account(feed, notes, line, count, p.product_id, feed.channel.name, rejects)
            if line is not None:
                write(line)
    return count, live


# A line's rejects as stored with it: (outcome, reason, field, excerpt).
Note = tuple[str, str, str | None, str | None]
_CHANGE = FeedProduct._fields.index("change")
_SALE_START = FeedProduct._fields.index("sale_price_start")
_SALE_END = FeedProduct._fields.index("sale_price_end")
_AVAILABILITY_DATE = FeedProduct._fields.index("availability_date")


def _cached_pass(
    rows: Iterable[tuple[Any, ...]], feeds: list[BuiltFeed], files: list[FeedFile],
    rejects: RejectRecorder, cache: LineCache,
) -> tuple[int, int]:
    """``_pass`` over ``cached_feed_query``'s rows: a channel's cached line is written and its
    rejects replayed; a miss goes through ``Channel.row`` as in ``_pass`` and is remembered.

    A row every channel hit comes without its product columns and is never normalised. Rows of
    gone products (the summary's ``D``) are built every night and not remembered.
    """
    # (column of the channel's cached notes, feed, write, name)
    slots = [(CACHE_LINES + 2 * j, f, w.write, f.channel.name)
             for j, (f, w) in enumerate(zip(feeds, files, strict=True))]
    full = [s for s in slots if not s[1].channel.delta]
    delta = [s for s in slots if s[1].channel.delta]
    both = full + delta
    now_iso = cache.now_iso
    remember = cache.remember
    count = live = 0
    for row in rows:
        count += 1
        change = row[_CHANGE]
        if change is None:
            targets = full
        elif change == "D":
            targets = delta
        else:
            targets = both
        if change != "D":
            live += 1
        product_id = row[0]
        if row[CACHE_HIT]:
            # ``_reuse`` inlined: the hot path of a warm night (one call less per row and channel).
            for at, feed, write, name in targets:
                feed.cached += 1
                notes = row[at]
                line = row[at + 1]
                if notes:
                    _account(feed, decode_notes(notes), line, count, product_id, name, rejects)
                    if line is not None:
                        write(line)
                elif line is None:
                    feed.excluded += 1
                else:
                    write(line)
                    feed.rows += 1
            continue
        p: FeedProduct | None = None
        valid: tuple[str | None, str | None] | None = None
        timed = False  # whether ``valid`` was computed for this row
        for at, feed, write, name in targets:
            if row[at] is not None:  # this channel's line holds
                _reuse(feed, write, row[at], row[at + 1], count, product_id, name, rejects)
                continue
            if p is None:
                p = normalise(row[:CACHE_HIT])
            line, built = _build(feed.channel, p)
            _account(feed, built, line, count, product_id, name, rejects)
            if line is not None:
                write(line)
            if change != "D":
                if not timed:
                    valid = validity(row[_SALE_START], row[_SALE_END], row[_AVAILABILITY_DATE],
                                     now_iso)
                    timed = True
                if valid is not None:
                    remember(name, product_id, row[CACHE_KEY], valid, line, encode_notes(built))
    return count, live


def _reuse(
    feed: BuiltFeed, write: Callable[[str], object], notes: str, line: str | None,
    position: int, product_id: str, channel: str, rejects: RejectRecorder,
) -> None:
    """A cached line (``notes``: its stored rejects, '' for none) written and accounted."""
    feed.cached += 1
    _account(feed, decode_notes(notes) if notes else (), line, position, product_id, channel,
             rejects)
    if line is not None:
        write(line)


def _build(channel: Channel, p: FeedProduct) -> tuple[str | None, list[Note]]:
    """One channel's line for the product and its rejects, as ``_pass`` makes them."""
    try:
        text = channel.row(p)
    except RejectedRecord as rejected:
        channel.dropped.clear()  # the item is out: what it would have lost is moot
        return None, [("excluded", rejected.reason, rejected.field, rejected.excerpt)]
    notes: list[Note] = []
    if channel.dropped:
        notes = [("dropped", d.reason, d.field, d.excerpt) for d in channel.dropped]
        channel.dropped.clear()
    return text, notes


def _account(
    feed: BuiltFeed, notes: Iterable[Sequence[Any]], line: str | None, position: int,
    product_id: str, channel: str, rejects: RejectRecorder,
) -> None:
    """Count and record a line's rejects as ``_pass`` does, and the line itself (not written)."""
    excluded = False
    for outcome, reason, field, excerpt in notes:
        if outcome == "excluded":
            excluded = True
            feed.rejected[reason] += 1
        else:
            feed.dropped[reason] += 1
        rejects.add(
            reason, position=position, product_id=product_id, field=field, excerpt=excerpt,
            channel=channel, outcome=outcome,
        )
    if line is not None:
        feed.rows += 1
    elif not excluded:
        feed.excluded += 1


def empty_channel_problem(feed: BuiltFeed, live: int) -> str | None:
    """Why a full channel's file must not replace the published one: the shop has live products
    and the channel excluded every one of them (a broken mapping, not an empty shop)."""
    if feed.channel.delta or feed.rows or not live or not feed.rejected:
        return None
    top = "; ".join(f"{reason} ({n})" for reason, n in top_reasons(feed.rejected))
    return (
        f"{feed.channel.name}: every one of the shop's {live} live products was excluded; "
        f"top reasons: {top}"
    )


def top_reasons(counts: Counter[str], n: int = TOP_REASONS) -> list[tuple[str, int]]:
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:n]


def run(ctx: TaskContext) -> TaskResult:
    """Build and publish every channel the shop lists; the router records and logs the result."""
    shop = ctx.shop
    if not shop.channels:
        return TaskResult(note="the shop lists no channels: nothing to publish")
    options = ChannelOptions.for_shop(ctx.shop, ctx.settings)
    channels = [get_channel(name, shop_id=shop.id, options=options) for name in shop.channels]
    store = open_store(ctx.settings.output_url, endpoint_url=ctx.settings.aws_endpoint_url)
    with tempfile.TemporaryDirectory(prefix=f"feed-{shop.id}-") as tmp:
        build = build_feeds(ctx.conn, shop.id, channels, Path(tmp), rejects=ctx.rejects,
                            line_cache=ctx.settings.feed_line_cache)
        failed: dict[str, str] = {}
        for feed in build.feeds:
            ctx.log.info(
                "feed.built", channel=feed.channel.name, rows=feed.rows, bytes=feed.bytes,
                excluded_by_reason=dict(feed.rejected), dropped_by_reason=dict(feed.dropped),
                left_out=feed.excluded, cached=feed.cached,
            )
            problem = empty_channel_problem(feed, build.live)
            if problem:
                failed[feed.channel.name] = problem
                ctx.log.error("feed.channel_failed", channel=feed.channel.name, problem=problem)
        publishable = [f for f in build.feeds if f.channel.name not in failed]
        # A summary EP alone is no published feed: it only tells Naver what changed since the
        # full EP, which is held back.
        if failed and not any(not f.channel.delta for f in publishable):
            raise FatalError(
                f"shop {shop.id}: no channel could be published, the previous feeds stay: "
                + " | ".join(failed.values())
                + ". Check the shop's mapping against the reasons (catalog-submit status RUN "
                "--reasons)"
            )
        # Once publishing starts, a stop signal waits for it: every channel and its manifest, and
        # their record, or (interrupted while building) none of them.
        with shutdown.deferred():
            manifests = publish_feeds(
                store, publishable,
                max_drop_share=float(shop.option("max_feed_drop_share")),
                force=ctx.settings.force,
                run_id=ctx.run_id,
                task_run_id=ctx.task_run_id,
                data_as_of=build.data_as_of,
            )
            record_publications(ctx.conn, manifests, data_as_of=build.data_as_of)
    counts: dict[str, Any] = {
        "channels": {
            m["channel"]: {
                "rows": m["rows"], "rejected": m["rejected"], "dropped": m["dropped"],
                "excluded": m["excluded"], "bytes": m["bytes"], "unchanged": m["unchanged"],
            }
            for m in manifests
        },
    }
    if failed:
        counts["failed_channels"] = {
            f.channel.name: {"problem": failed[f.channel.name], "rows": 0,
                             "rejected": dict(top_reasons(f.rejected))}
            for f in build.feeds if f.channel.name in failed
        }
    return TaskResult(
        rows_in=build.rows_in,
        rows_out=sum(f.rows for f in publishable),
        rows_rejected=sum(sum(f.rejected.values()) for f in build.feeds),
        bytes=sum(f.bytes for f in publishable),
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
