"""Fetch → process → store for one image URL, and the bounded thread pool that runs many at once.

``handle(job)`` never raises for a bad image: every per-image problem becomes an ``Attempt`` with its
``Outcome``. What escapes is a failure of ours (the store, a bug), which must stop the task.
Memory is bounded by construction: at most ``fetch_workers`` bodies (each ≤ ``max_bytes``), at
most ``decode_workers`` decodes (as many as the container's CPU quota allows), and decoded pixels
within ``decode_memory`` bytes, whatever the shop's size. Each download is bounded in time as a
whole (``total_timeout``), not only per read.
"""

from __future__ import annotations

import hashlib
import math
import os
import threading
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TypeVar

from worker.common import net
from worker.common.errors import TransientError
from worker.common.settings import Network, Settings
from worker.common.stores import Store
from worker.images.process import (
    ImageRejected,
    Outcome,
    ProcessOptions,
    process_image,
)

T = TypeVar("T")
R = TypeVar("R")

# net's outcome names → ours (net names each failure class once; we record fewer, coarser ones).
_FETCH_OUTCOMES = {
    "bad_url": Outcome.BAD_URL,
    "blocked": Outcome.BLOCKED,
    "too_many_redirects": Outcome.HTTP_STATUS,
    "http_status": Outcome.HTTP_STATUS,
    "too_large": Outcome.TOO_LARGE,
    "tls": Outcome.UNREACHABLE,
    "timeout": Outcome.TIMEOUT,
    "http_transient": Outcome.HTTP_STATUS,
    "connection": Outcome.UNREACHABLE,
}


CGROUP_ROOT = Path("/sys/fs/cgroup")


def _cores() -> int:
    """The CPUs this process may run on (its affinity), not the machine's count."""
    process_cpu_count = getattr(os, "process_cpu_count", None)  # Python 3.13
    if process_cpu_count is not None:
        return max(1, process_cpu_count() or 1)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def cgroup_cpu_quota(root: Path = CGROUP_ROOT) -> float | None:
    """The CPUs the container's cgroup quota allows (``1.5`` for 150 ms per 100 ms), or None.

    cgroup v2 writes ``cpu.max`` as "QUOTA PERIOD" ("max PERIOD" when unlimited); cgroup v1
    writes ``cpu.cfs_quota_us`` (-1 when unlimited) and ``cpu.cfs_period_us`` under the cpu
    controller's folder. On Batch the host's cores are visible to the process; the quota is what
    the job may actually use.
    """
    v2 = _read(root / "cpu.max")
    if v2 is not None:
        parts = v2.split()
        if len(parts) == 2 and parts[0] != "max":
            return _ratio(parts[0], parts[1])
        return None
    for folder in (root / "cpu", root / "cpu,cpuacct", root / "cpuacct,cpu", root):
        quota, period = _read(folder / "cpu.cfs_quota_us"), _read(folder / "cpu.cfs_period_us")
        if quota is not None and period is not None:
            return _ratio(quota, period)
    return None


def _ratio(quota: str, period: str) -> float | None:
    try:
        q, p = int(quota), int(period)
    except ValueError:
        return None
    return q / p if q > 0 and p > 0 else None


def decode_concurrency(root: Path = CGROUP_ROOT, cores: int | None = None) -> int:
    """How many images to decode at once: the CPU quota (rounded down, at least 1), never more
    than the CPUs the process may run on."""
    available = cores if cores is not None else _cores()
    quota = cgroup_cpu_quota(root)
    if quota is None:
        return max(1, available)
    return max(1, min(available, math.floor(quota)))


class MemoryBudget:
    """Bytes of decoded pixels in flight: a decode reserves its share before it starts, and waits
    while the others' reservations leave too little; thread-safe."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.in_use = 0
        self.peak = 0
        self._free = threading.Condition()

    @contextmanager
    def reserve(self, nbytes: int) -> Iterator[None]:
        """Hold ``nbytes`` of the budget for the ``with`` block (``nbytes`` ≤ ``total``)."""
        if nbytes > self.total:
            raise ValueError(f"{nbytes} bytes is more than the whole budget of {self.total}")
        with self._free:
            self._free.wait_for(lambda: self.in_use + nbytes <= self.total)
            self.in_use += nbytes
            self.peak = max(self.peak, self.in_use)
        try:
            yield
        finally:
            with self._free:
                self.in_use -= nbytes
                self._free.notify_all()


@dataclass(frozen=True)
class ImagesConfig:
    """The images task's knobs; defaults are the production values."""

    allow: tuple[Network, ...] = ()
    max_bytes: int = 25 * 1024 * 1024
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    total_timeout: float = 60.0  # one image's whole download, body included (IMAGE_TOTAL_TIMEOUT)
    retries: int = 2  # per image, within one attempt (net's jittered back-off)
    backoff_base: float = 0.5
    fetch_workers: int = 8  # downloads in flight, hence source bodies in memory
    decode_workers: int = field(default_factory=decode_concurrency)  # decodes at once
    # Decoded pixels in flight (width × height × 4 of each decode), IMAGE_DECODE_MEMORY; an image
    # needing more than all of it is refused as a bomb.
    decode_memory: int = 1 << 30
    # Seconds an attempt takes new images for (IMAGES_TIME_BUDGET); then it records what it did
    # and exits 75, and the next attempt goes on. None: no budget.
    time_budget: float | None = None
    commit_seconds: float = 30.0  # progress committed at least this often (IMAGES_COMMIT_SECONDS)
    max_tries: int = 3  # consecutive nights a transiently failing URL is retried
    recheck_days: int = 7  # then: re-download URLs without validators, retry failed ones
    page_size: int = 500
    max_additional: int = 10  # the channels' limit on additional images
    max_url_length: int = 2000  # Google's limit on image_link; longer ones are not indexed
    # The shop's image host "looks down" (exit 75) past this share of transient failures...
    down_share: float = 0.5
    down_min_attempts: int = 10  # ...among at least this many attempts.
    quality: int = 85
    progressive: bool = False
    on: date = field(default_factory=lambda: datetime.now(UTC).date())
    # The public address of OUTPUT_URL's root (a CDN or bucket website), e.g.
    # https://cdn.example.com/nightly: products then get https URLs the platforms can fetch.
    # None: the store's own location (s3://… or a path), for local runs.
    public_base_url: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: object) -> ImagesConfig:
        values: dict[str, object] = {
            "allow": settings.fetch_allow_networks,
            "public_base_url": settings.public_base_url,
            "total_timeout": settings.image_total_timeout,
            "decode_memory": settings.image_decode_memory,
            "time_budget": settings.images_time_budget,
            "commit_seconds": settings.images_commit_seconds,
        }
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]

    def url_for(self, store: Store, key: str) -> str:
        """Where a processed image is read from: public when a public base is configured."""
        if self.public_base_url:
            return f"{self.public_base_url.rstrip('/')}/{key}"
        return store.url_for(key)


@dataclass(frozen=True)
class ImageJob:
    """One URL to attempt, with what the database remembers of it."""

    url: str
    status: str = "pending"
    tries: int = 0
    etag: str | None = None
    last_modified: str | None = None
    source_sha256: bytes | None = None
    has_output: bool = False


@dataclass
class Attempt:
    """What one attempt at one URL came to."""

    job: ImageJob
    outcome: Outcome
    transient: bool = False
    error: str | None = None
    http_status: int | None = None
    downloaded: bool = False  # a 200 body was read (else nothing, or a 304)
    etag: str | None = None
    last_modified: str | None = None
    source_sha256: bytes | None = None
    source_bytes: int = 0
    source_format: str | None = None
    output_key: str | None = None
    output_url: str | None = None
    width: int | None = None
    height: int | None = None
    fitness: dict[str, bool] | None = None
    bytes_written: int = 0  # 0 when the same output was already stored (another URL, another night)


class ImageHandler:
    """Fetches, processes and stores one URL at a time; safe to call from many threads."""

    def __init__(
        self, *, shop_id: str, store: Store, options: ProcessOptions, config: ImagesConfig
    ) -> None:
        self.shop_id = shop_id
        self.store = store
        self.options = options
        self.config = config
        # Downloads run fetch_workers wide; decoding only as wide as the machine has cores.
        self._decoding = threading.BoundedSemaphore(config.decode_workers)
        self.memory = MemoryBudget(config.decode_memory)
        # Keys being uploaded right now (at most one per worker), so that two URLs that give the
        # same image in the same moment upload it once.
        self._uploading: dict[str, threading.Event] = {}
        self._uploading_lock = threading.Lock()

    def _store_once(self, key: str, data: bytes) -> int:
        """Upload ``data`` under ``key`` unless it is there already; return the bytes written."""
        with self._uploading_lock:
            busy = self._uploading.get(key)
            if busy is None:
                mine = self._uploading[key] = threading.Event()
        if busy is not None:
            busy.wait()
            return 0
        try:
            if self.store.exists(key):
                return 0
            self.store.put_bytes(key, data, content_type="image/jpeg")
            return len(data)
        finally:
            with self._uploading_lock:
                del self._uploading[key]
            mine.set()

    def __call__(self, job: ImageJob) -> Attempt:
        revalidate = job.has_output and (job.etag is not None or job.last_modified is not None)
        config = self.config
        try:
            with net.fetch(
                job.url,
                allow=config.allow,
                etag=job.etag if revalidate else None,
                last_modified=job.last_modified if revalidate else None,
                max_bytes=config.max_bytes,
                connect_timeout=config.connect_timeout,
                read_timeout=config.read_timeout,
                total_timeout=config.total_timeout,
                retries=config.retries,
                backoff_base=config.backoff_base,
            ) as response:
                if response.status == 304:
                    return Attempt(
                        job, Outcome.UNCHANGED, http_status=304,
                        etag=response.etag, last_modified=response.last_modified,
                    )
                data = response.read()
                status, etag, last_modified = (
                    response.status, response.etag, response.last_modified
                )
        except net.FetchError as exc:
            return Attempt(
                job,
                _FETCH_OUTCOMES.get(exc.outcome, Outcome.UNREACHABLE),
                transient=isinstance(exc, TransientError),
                error=str(exc),
                http_status=getattr(exc, "status", None),
            )
        attempt = Attempt(
            job, Outcome.UNCHANGED, http_status=status, downloaded=True, etag=etag,
            last_modified=last_modified, source_sha256=hashlib.sha256(data).digest(),
            source_bytes=len(data),
        )
        if job.has_output and job.source_sha256 == attempt.source_sha256:
            # The server ignored our validators (or had none) but sent the same bytes.
            return attempt
        try:
            with self._decoding:
                processed = process_image(data, self.options, reserve=self.memory.reserve)
        except ImageRejected as exc:
            attempt.outcome, attempt.error = exc.outcome, str(exc)
            return attempt
        del data
        key = f"images/{self.shop_id}/{hashlib.sha256(processed.data).hexdigest()}.jpg"
        attempt.bytes_written = self._store_once(key, processed.data)
        if processed.fits_all(self.options.channels):
            attempt.outcome = Outcome.OK
        else:
            attempt.outcome = Outcome.TOO_SMALL
            attempt.error = _too_small_message(processed.fitness, self.options)
        attempt.source_format = processed.source_format
        attempt.output_key, attempt.output_url = key, self.config.url_for(self.store, key)
        attempt.width, attempt.height = processed.width, processed.height
        attempt.fitness = processed.fitness
        return attempt


def _too_small_message(fit: dict[str, bool], options: ProcessOptions) -> str:
    unfit = [c for c in options.channels if not fit.get(c, True)]
    rules = ", ".join(
        f"{c} needs {options.rules[c].min_width}×{options.rules[c].min_height}" for c in unfit
    )
    return (
        f"the image is too small for {', '.join(unfit)} ({rules}; enlarging is capped at "
        f"{options.max_upscale:g}×): ask the shop for a larger image"
    )


def bounded_map(
    fn: Callable[[T], R], items: Iterable[T], *, workers: int, max_in_flight: int
) -> Generator[R, None, None]:
    """``fn`` over ``items`` in a thread pool, in completion order, never more than
    ``max_in_flight`` items submitted and unfinished. ``items`` is consumed lazily, on the caller's
    thread (so it may use the caller's database connection)."""
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="images") as pool:
        pending: set[Future[R]] = set()
        try:
            for item in items:
                pending.add(pool.submit(fn, item))
                if len(pending) >= max_in_flight:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        yield future.result()
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    yield future.result()
        finally:
            for future in pending:
                future.cancel()
