"""Writing a channel's file and publishing it whole: temp file, gzip in a writer thread, manifest, gate.

A channel's text is encoded and handed in chunks to a writer thread that compresses, hashes and
writes it (zlib and hashlib release the GIL, so this runs beside the row-building thread). Only when
every channel's file is complete and has passed the publish gate is anything published: the feed
through the store (temporary object, then replace), then its manifest, the platforms' "trigger".
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import queue
import threading
import zlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from worker.common.errors import FatalError, TransientError
from worker.common.stores import Store
from worker.feed.channels.base import Channel

log = structlog.get_logger(__name__)

# gzip level 1 in the writer thread: measured in bench/results-feed.md (higher levels cost the
# writer thread more than the row builder can hide, for a few percent of size).
GZIP_LEVEL = 1
# A .gz object is a gzip file, served as one: a "Content-Encoding: gzip" header would make HTTP
# clients decompress it on the fly and store plain text under a .gz name.
GZIP_CONTENT_TYPE = "application/gzip"
MANIFEST_CONTENT_TYPE = "application/json"
_CHUNK_CHARS = 256 * 1024
_QUEUE_CHUNKS = 4


class FeedFile:
    """A file written through a writer thread: optional gzip, sha256 and size of the bytes on disk."""

    def __init__(self, path: Path, *, gzip_level: int | None) -> None:
        self.path = path
        self.bytes = 0
        self.sha256 = ""
        self._hash = hashlib.sha256()
        # wbits 31: a gzip member with mtime 0 and no name, so equal content gives equal bytes.
        self._compress = (
            zlib.compressobj(gzip_level, zlib.DEFLATED, 31) if gzip_level is not None else None
        )
        self._parts: list[str] = []
        # What a writer of bytes batches before write_bytes (a chunk of the queue).
        self.chunk_size = _CHUNK_CHARS
        self._size = 0
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=_QUEUE_CHUNKS)
        self._error: BaseException | None = None
        self._file = path.open("wb")
        self._thread = threading.Thread(target=self._drain, name=f"feed-{path.name}", daemon=True)
        self._thread.start()

    def write(self, text: str) -> None:
        self._parts.append(text)
        self._size += len(text)
        if self._size >= _CHUNK_CHARS:
            self._hand_over()

    def write_bytes(self, data: bytes) -> None:
        """Hand UTF-8 bytes (a batch of whole lines) to the writer thread, after any text."""
        self._hand_over()
        if data:
            self._put(data)

    def close(self) -> None:
        """Finish the file; raise if the writer thread failed."""
        self._hand_over()
        self._put(None)
        self._thread.join()
        self._raise_if_failed()
        self.sha256 = self._hash.hexdigest()

    def abort(self) -> None:
        """Stop the writer thread after a failure elsewhere (the temp folder goes with the task)."""
        if self._thread.is_alive():
            self._parts.clear()
            with contextlib.suppress(TransientError):
                self._put(None)
            self._thread.join()

    def _hand_over(self) -> None:
        if self._parts:
            data = "".join(self._parts).encode("utf-8")
            self._parts.clear()
            self._size = 0
            self._put(data)

    def _put(self, item: bytes | None) -> None:
        # A timeout, so that a writer thread that died (disk full) cannot block us forever.
        while True:
            self._raise_if_failed()
            try:
                self._queue.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise TransientError(
                f"cannot write the feed's temporary file {self.path}: {self._error}; nothing was "
                "published, the previous feed stays; check the free space of the task's disk"
            ) from self._error

    def _drain(self) -> None:
        try:
            with self._file:
                while (data := self._queue.get()) is not None:
                    self._emit(self._compress.compress(data) if self._compress else data)
                if self._compress:
                    self._emit(self._compress.flush())
        except BaseException as exc:  # handed to the producer thread, which raises it
            self._error = exc

    def _emit(self, data: bytes) -> None:
        if data:
            self._hash.update(data)
            self._file.write(data)
            self.bytes += len(data)


@dataclass
class BuiltFeed:
    """One channel's finished file and what went into it."""

    channel: Channel
    shop_id: str
    path: Path
    gzip: bool
    rows: int = 0
    excluded: int = 0
    rejected: Counter[str] = field(default_factory=Counter)  # items excluded, by reason
    dropped: Counter[str] = field(default_factory=Counter)  # attributes left out, by reason
    bytes: int = 0
    sha256: str = ""
    cached: int = 0  # items whose line (or exclusion) came from the line cache

    @property
    def key(self) -> str:
        return feed_key(self.shop_id, self.channel, gzip=self.gzip)

    @property
    def manifest_key(self) -> str:
        return manifest_key(self.shop_id, self.channel.name)


def feed_key(shop_id: str, channel: Channel, *, gzip: bool) -> str:
    return f"feeds/{shop_id}/{channel.name}.{channel.extension}" + (".gz" if gzip else "")


def manifest_key(shop_id: str, channel_name: str) -> str:
    return f"feeds/{shop_id}/{channel_name}.manifest.json"


def read_manifest(store: Store, key: str) -> dict[str, Any] | None:
    """The last published manifest, or None when there is none or it cannot be read as one."""
    data = store.get_bytes(key)
    if data is None:
        return None
    try:
        manifest = json.loads(data)
    except ValueError:
        log.warning("feed.manifest_unreadable", key=key, url=store.url_for(key))
        return None
    return manifest if isinstance(manifest, dict) else None


def gate_problem(previous_rows: int | None, rows: int, max_drop_share: float) -> str | None:
    """Why a feed of ``rows`` may not replace one of ``previous_rows``, or None when it may."""
    if not previous_rows or previous_rows <= 0:
        return None
    drop = (previous_rows - rows) / previous_rows
    if drop > max_drop_share:
        return (
            f"{rows} rows against {previous_rows} last published: a drop of {drop:.1%} is past "
            f"max_feed_drop_share {max_drop_share:.0%}"
        )
    return None


def make_manifest(
    feed: BuiltFeed, *, run_id: str | None, task_run_id: int | None, data_as_of: datetime,
    unchanged: bool,
) -> dict[str, Any]:
    return {
        "shop_id": feed.shop_id,
        "channel": feed.channel.name,
        "key": feed.key,
        "run_id": run_id,
        "task_run_id": task_run_id,
        "rows": feed.rows,
        "rejected": dict(sorted(feed.rejected.items())),
        "rejected_total": sum(feed.rejected.values()),
        "dropped": dict(sorted(feed.dropped.items())),
        "excluded": feed.excluded,
        "bytes": feed.bytes,
        "sha256": feed.sha256,
        "content_type": GZIP_CONTENT_TYPE if feed.gzip else feed.channel.content_type,
        "compression": "gzip" if feed.gzip else None,
        "unchanged": unchanged,
        "data_as_of": data_as_of.isoformat(),
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def publish_feeds(
    store: Store,
    feeds: list[BuiltFeed],
    *,
    max_drop_share: float,
    force: bool,
    run_id: str | None,
    task_run_id: int | None,
    data_as_of: datetime,
) -> list[dict[str, Any]]:
    """Gate every channel, then publish each feed and after it its manifest; return the manifests.

    When any full channel's rows dropped past ``max_drop_share`` against its last published
    manifest, nothing at all is published (exit 65), unless ``force``.
    """
    previous = {f.channel.name: read_manifest(store, f.manifest_key) for f in feeds}
    problems = []
    for feed in feeds:
        if feed.channel.delta:
            continue  # a summary holds the changes only: its size says nothing of the catalog
        last = previous[feed.channel.name]
        last_rows = last.get("rows") if last else None
        problem = gate_problem(last_rows if isinstance(last_rows, int) else None, feed.rows,
                               max_drop_share)
        if problem:
            problems.append(f"{feed.channel.name}: {problem}")
    if problems:
        if not force:
            raise FatalError(
                f"shop {feeds[0].shop_id}: publish gate: "
                + "; ".join(problems)
                + ". Nothing was published; the previous feeds stay. Check the shop's export "
                "(collect's counts for this run); if the drop is real, rerun with CATALOG_FORCE=1"
            )
        log.warning("feed.gate_forced", problems=problems)
    manifests = []
    for feed in feeds:
        last = previous[feed.channel.name]
        unchanged = bool(
            last and last.get("sha256") == feed.sha256 and last.get("key") == feed.key
            and store.exists(feed.key)
        )
        if not unchanged:
            # Left untouched when identical, so that its ETag and Last-Modified hold and a
            # platform's conditional fetch (Meta's If-None-Match) gets a 304.
            store.publish_file(
                feed.key, feed.path,
                content_type=GZIP_CONTENT_TYPE if feed.gzip else feed.channel.content_type,
            )
        manifest = make_manifest(
            feed, run_id=run_id, task_run_id=task_run_id, data_as_of=data_as_of,
            unchanged=unchanged,
        )
        store.put_bytes(
            feed.manifest_key,
            json.dumps(manifest, ensure_ascii=False, indent=1).encode("utf-8"),
            content_type=MANIFEST_CONTENT_TYPE,
        )
        log.info(
            "feed.published", channel=feed.channel.name, url=store.url_for(feed.key),
            rows=feed.rows, bytes=feed.bytes, rejected=manifest["rejected_total"],
            unchanged=unchanged,
        )
        manifests.append(manifest)
    return manifests
