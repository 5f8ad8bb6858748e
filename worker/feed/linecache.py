"""The feed's line cache: each channel's line for a product, reused while nothing it depends on changed.

Why: on a night most of a shop's products did not change, yet every row went through normalise,
~30 rules and the formatting of every channel (16–23 µs per row and channel, bench/results-feed.md).
A line depends on exactly three things, and each is part of the key under which it is kept:

- **the row**: the server hashes the feed query's whole row (``hash_record_extended``, 64 bits,
  over every column: the product's, its group's ``group_is_id``/``group_varies``, the summary's
  ``change`` and ``update_time``) — ``stream.cached_feed_query``; the worker pays nothing for
  it. (md5 of the row's text was measured too: the query with it cost the server 6.2 µs a row
  against 3.6 with the hash and 2.0 without a key, bench/results-feed.md; a 64-bit key only errs
  when a changed row hashes as its old self, 2⁻⁶⁴ per change);
- **the rule book and the channel**: ``channel_fingerprint`` hashes the source of every module a
  line is made by (``worker/feed/**``, ``worker/common/{product,errors,net}.py``), the Python and
  python-stdnum versions, the channel's name and its options but the build time; a changed
  fingerprint drops the (shop, channel)'s lines, so no rule change needs a manual version bump;
- **the build time**: the only rules reading ``ChannelOptions.now`` compare it with the sale
  window's ends (``Channel.sale``, Naver's ``window_open``) and availability_date − 1 year
  (Google); ``validity`` gives the interval of build times around now in which all of them answer
  as they did, and a line is only reused inside it.

Rejects are part of a line: what a channel excluded or dropped is stored with it as ``notes`` and
replayed, so a hit records the same rejects and counts as a build. The misses are spooled to a
temporary file (constant memory) and written by ``flush``, in the build's own transaction: a
build that fails rolls its lines back with it. A build takes a transaction-scoped advisory lock on
the shop's cache, or (another build of the shop holds it) runs without the cache.
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import fields
from datetime import datetime
from functools import cache
from hashlib import sha256
from pathlib import Path
from typing import IO, Any

import psycopg
import stdnum
import structlog
from psycopg.copy import Copy, FileWriter

import worker
from worker.common.db import shop_lock_key
from worker.feed.channels.base import YEAR_AHEAD, Channel
from worker.feed.rules import iso_utc

log = structlog.get_logger(__name__)

# The modules outside worker/feed whose code a line depends on (rules.py imports them).
COMMON_MODULES = ("product.py", "errors.py", "net.py")
_ISO_UTC = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z\Z")
_COPY_CHUNK = 1 << 16  # bytes per COPY write: bounded memory, few calls
# What a row's lines hold for (validity): unbounded on both sides.
ALWAYS: tuple[str | None, str | None] = (None, None)


@cache
def code_fingerprint() -> str:
    """sha256 of the rule book's source and what it runs on, once per process."""
    root = Path(worker.__file__).parent
    files = sorted((root / "feed").rglob("*.py")) + [root / "common" / n for n in COMMON_MODULES]
    if not (root / "feed" / "task.py").is_file():
        # Installed without its source (byte code only): nothing to tell one rule book from
        # another, so this process's lines are its own and no other process reuses them.
        log.warning("feed.line_cache_no_source", folder=str(root))
        return f"no source {uuid.uuid4()}"
    digest = sha256()
    for path in files:
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    digest.update(f"python {sys.version}\0stdnum {stdnum.__version__}".encode())
    return digest.hexdigest()


def channel_fingerprint(channel: Channel) -> str:
    """What a (shop, channel)'s lines were made with: the code, the channel, its options (not now)."""
    options = channel.options
    described = [(f.name, getattr(options, f.name)) for f in fields(options) if f.name != "now"]
    text = f"{code_fingerprint()}\0{channel.name}\0{type(channel).__qualname__}\0{described!r}"
    return sha256(text.encode()).hexdigest()


def validity(
    start: str | None, end: str | None, availability_date: str | None, now_iso: str
) -> tuple[str | None, str | None] | None:
    """[from, until) of build times (``now_iso`` strings) in which every rule that reads the build
    time answers for this row as it does at ``now_iso``; None when that cannot be told (the row is
    then built every night).

    Each such rule is ``now >= b`` or ``now < b`` for a breakpoint b: the sale window's start and
    end (``window_open``, ``Channel.sale``) and, for Google's one year ahead, availability_date −
    ``YEAR_AHEAD`` (``availability_date > iso_utc(now + YEAR_AHEAD)`` ⟺ ``now < that``; the
    build time is compared to the second, as ``iso_utc`` formats it). Between two neighbouring
    breakpoints every answer is the same.
    """
    if start is None and end is None and availability_date is None:
        return ALWAYS
    points = []
    for value in (start, end):
        if value is not None:
            if not _ISO_UTC.match(value):
                return None
            points.append(value)
    if availability_date is not None:
        if not _ISO_UTC.match(availability_date):
            return None
        try:
            point = iso_utc(datetime.fromisoformat(availability_date) - YEAR_AHEAD)
        except (ValueError, OverflowError):
            return None
        if not _ISO_UTC.match(point):  # a year before 1000 formats with fewer digits
            return None
        points.append(point)
    return (
        max((b for b in points if b <= now_iso), default=None),
        min((b for b in points if b > now_iso), default=None),
    )


def encode_notes(notes: Sequence[tuple[str, str, str | None, str | None]]) -> str:
    """A line's rejects (outcome, reason, field, excerpt) as stored: '' for none."""
    return json.dumps(notes, ensure_ascii=False, separators=(",", ":")) if notes else ""


decode_notes = json.loads


class LineCache:
    """One build's use of the cache: which channels' lines hold, and the lines it made, to store."""

    def __init__(
        self, conn: psycopg.Connection, shop_id: str, channels: Sequence[Channel], now_iso: str,
        stored: dict[str, str],
    ) -> None:
        self.shop_id = shop_id
        self.now_iso = now_iso
        self.fingerprints = {c.name: channel_fingerprint(c) for c in channels}
        # A channel whose stored fingerprint is another (or none) reuses nothing tonight.
        self.cached = {name: stored.get(name) == fp for name, fp in self.fingerprints.items()}
        self.misses = 0
        # Every channel rebuilt (the first build, a deploy): the lines go straight into
        # feed_lines after its old ones are deleted, no temporary table and no upsert; each
        # spooled line then carries the shop.
        self.rebuild = not any(self.cached.values())
        self._spool: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 -- closed by close()
        # The lines as COPY text, made by psycopg's C formatter through a cursor that never
        # talks to the server (as collect's first load does, worker/collect/load.py): 1.8 µs a
        # line against 3.6 for escaping by hand.
        self._formatting = conn.cursor()
        self._copy = Copy(self._formatting, writer=FileWriter(self._spool))
        self._write_row = self._copy.write_row

    @classmethod
    def open(
        cls, conn: psycopg.Connection, shop_id: str, channels: Sequence[Channel]
    ) -> LineCache | None:
        """The cache for this build, inside its transaction; None when it cannot be used."""
        names = [c.name for c in channels]
        nows = {c.options.now_iso for c in channels}
        if not channels or len(set(names)) != len(names) or len(nows) != 1:
            log.info("feed.line_cache_off", shop_id=shop_id,
                     reason="channels repeat or differ in build time")
            return None
        row = conn.execute(
            "SELECT pg_try_advisory_xact_lock(%s)", (shop_lock_key(shop_id, "feed_lines"),)
        ).fetchone()
        if not (row and row[0]):
            log.warning("feed.line_cache_off", shop_id=shop_id,
                        reason="another build of the shop holds its line cache")
            return None
        stored: dict[str, str] = dict(conn.execute(
            "SELECT channel, fingerprint FROM feed_line_sets WHERE shop_id = %s"
            " AND channel = ANY(%s)", (shop_id, names),
        ).fetchall())
        return cls(conn, shop_id, channels, nows.pop(), stored)

    def remember(
        self, channel: str, product_id: str, key: int | str, valid: tuple[str | None, str | None],
        line: str | None, notes: str,
    ) -> None:
        """Spool one line the pass built, to be stored by ``flush``."""
        self.misses += 1
        start, until = valid
        if self.rebuild:
            self._write_row((self.shop_id, channel, product_id, key, start, until, line, notes))
        else:
            self._write_row((channel, product_id, key, start, until, line, notes))

    def flush(self, conn: psycopg.Connection) -> None:
        """Store the spooled lines in the build's transaction (COPY to a temporary table, one
        upsert; or, every channel rebuilt, COPY straight in); drop the lines of changed
        fingerprints and of gone products.

        In a savepoint: when storing fails the build goes on without it (the next night builds
        those lines again), and when the build's transaction rolls back, so do they.
        """
        self._copy.finish(None)
        self._spool.seek(0)
        changed = [name for name, ok in self.cached.items() if not ok]
        started = time.perf_counter()
        try:
            with conn.transaction(), conn.cursor() as cur:
                if changed:
                    cur.execute("DELETE FROM feed_lines WHERE shop_id = %s AND channel = ANY(%s)",
                                (self.shop_id, changed))
                cur.execute(
                    "DELETE FROM feed_lines l USING products p WHERE p.shop_id = %s"
                    " AND p.gone_at IS NOT NULL AND l.shop_id = p.shop_id"
                    " AND l.product_id = p.product_id", (self.shop_id,),
                )
                if self.rebuild:
                    with cur.copy(
                        "COPY feed_lines (shop_id, channel, product_id, input_key, valid_from,"
                        " valid_until, line, notes) FROM STDIN"
                    ) as copy:
                        while chunk := self._spool.read(_COPY_CHUNK):
                            copy.write(chunk)
                else:
                    self._upsert(cur)
                for name in changed:
                    cur.execute(
                        "INSERT INTO feed_line_sets (shop_id, channel, fingerprint)"
                        " VALUES (%s, %s, %s) ON CONFLICT (shop_id, channel)"
                        " DO UPDATE SET fingerprint = EXCLUDED.fingerprint",
                        (self.shop_id, name, self.fingerprints[name]),
                    )
        except psycopg.Error as exc:
            log.warning("feed.line_cache_not_stored", shop_id=self.shop_id, lines=self.misses,
                        error=str(exc))
            return
        log.info("feed.line_cache_stored", shop_id=self.shop_id, lines=self.misses,
                 new_fingerprint=changed, seconds=round(time.perf_counter() - started, 3))

    def _upsert(self, cur: psycopg.Cursor[Any]) -> None:
        """The spooled lines into feed_lines through a temporary table: one upsert."""
        cur.execute(
            "CREATE TEMP TABLE feed_lines_new (channel text, product_id text,"
            " input_key bigint, valid_from timestamptz, valid_until timestamptz, line text,"
            " notes text) ON COMMIT DROP"
        )
        with cur.copy("COPY feed_lines_new FROM STDIN") as copy:
            while chunk := self._spool.read(_COPY_CHUNK):
                copy.write(chunk)
        cur.execute(
            "INSERT INTO feed_lines (shop_id, product_id, channel, input_key, valid_from,"
            " valid_until, line, notes)"
            " SELECT %s, product_id, channel, input_key, valid_from, valid_until, line,"
            " notes FROM feed_lines_new"
            " ON CONFLICT (shop_id, product_id, channel) DO UPDATE SET"
            " input_key = EXCLUDED.input_key, valid_from = EXCLUDED.valid_from,"
            " valid_until = EXCLUDED.valid_until, line = EXCLUDED.line,"
            " notes = EXCLUDED.notes", (self.shop_id,),
        )
        cur.execute("DROP TABLE feed_lines_new")

    def close(self) -> None:
        self._formatting.close()
        self._spool.close()

