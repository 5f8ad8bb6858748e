"""A night's plan: the run and its frozen index → bundle → shops in the database, and the jobs.

Bundles: a child's start (container, interpreter, connection) costs seconds, and an unchanged small
shop's task ends in less, so small shops are packed several to an array child, by their last
successful durations, up to a target child duration (``bundle_target_s``, 5 minutes by default);
a shop with no such history, or a big one, runs alone. ``run_shops`` keeps each shop's position in
the night (``idx``, shop id order) and the array position that runs it (``child``).

The jobs follow AWS Batch's rules, which we check because moto checks none of them: an array job
has 2 to 10,000 children (1 shop → plain jobs; more than 10,000 → balanced chunks, each worker told
its ``SHOP_INDEX_OFFSET``), ``N_TO_N`` pairs arrays of equal size, at most 20 dependencies per job,
job names of at most 128 letters, digits, ``-`` and ``_``. The shop list stays in the database, so a
payload's size does not grow with the number of shops.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import heapq
import math
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import psycopg
from psycopg.types.json import Jsonb

from worker.common.errors import ConfigError, FatalError
from worker.common.settings import TASKS

ARRAY_MIN = 2
ARRAY_MAX = 10_000
MAX_DEPENDENCIES = 20
MAX_JOB_NAME = 128
JOB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
RUN_KINDS = ("nightly", "rerun", "retry", "local")
RunKind = Literal["nightly", "rerun", "retry", "local"]
# A child's target duration: AWS advises jobs of at least a few minutes.
BUNDLE_TARGET_S = 300.0
# A shop whose estimate reaches this share of the target is big: it always runs alone.
BIG_SHARE = 0.5
# At most this many shops in one child, however tiny (its log and its retry stay readable).
BUNDLE_MAX_SHOPS = 500


@dataclass(frozen=True)
class Chunk:
    """A contiguous slice of the run's frozen list: positions ``offset`` … ``offset + size - 1``."""

    number: int
    offset: int
    size: int


@dataclass(frozen=True)
class Dependency:
    key: str  # the planned job depended on
    type: Literal["N_TO_N"] | None  # None: a plain dependency (the whole job must succeed)


@dataclass(frozen=True)
class PlannedJob:
    key: str  # "collect/0": task and chunk, the key of runs.jobs
    task: str
    chunk: Chunk
    name: str
    array_size: int | None  # None: a plain, non-array job (a chunk of one shop)
    depends_on: tuple[Dependency, ...]
    environment: tuple[tuple[str, str], ...]

    @property
    def command(self) -> tuple[str, ...]:
        # The image's entrypoint is the worker: the job definition's command becomes the task.
        return (self.task,)


@dataclass(frozen=True)
class Plan:
    run_id: str
    run_date: dt.date
    kind: str
    shop_count: int
    images_before_feed: bool
    jobs: tuple[PlannedJob, ...]
    created: bool  # False when an existing run was found (idempotency)
    rerun_of: str | None = None
    child_count: int | None = None  # array children; None: one per shop

    @property
    def children(self) -> int:
        return self.shop_count if self.child_count is None else self.child_count


def pack_bundles(
    estimates: Sequence[float | None],
    *,
    target_s: float = BUNDLE_TARGET_S,
    big_share: float = BIG_SHARE,
    max_shops: int = BUNDLE_MAX_SHOPS,
) -> list[list[int]]:
    """Shops (by their position in ``estimates``: seconds, or None when unknown) packed into
    bundles, each a list of positions in ascending order; the bundles longest first.

    Unknown and big shops (``estimate >= big_share × target_s``) are alone; the others go, largest
    first, to the least loaded bundle they fit in (``target_s`` at most), else to a new one. A
    ``target_s`` of 0 turns bundling off: every shop alone, in position order, as before bundles.
    """
    if target_s <= 0:
        return [[i] for i in range(len(estimates))]
    alone: list[tuple[float, list[int]]] = []
    small: list[tuple[float, int]] = []
    for i, estimate in enumerate(estimates):
        if estimate is None or estimate >= big_share * target_s:
            # Unknown: a new shop's first load may be its largest; plan it as a full child.
            alone.append((target_s if estimate is None else estimate, [i]))
        else:
            small.append((max(estimate, 0.0), i))
    small.sort(key=lambda item: (-item[0], item[1]))
    heap: list[tuple[float, int]] = []  # (load, bundle number): the least loaded on top
    bundles: list[list[int]] = []
    loads: list[float] = []
    for estimate, i in small:
        if heap and heap[0][0] + estimate <= target_s and len(bundles[heap[0][1]]) < max_shops:
            load, number = heapq.heappop(heap)
        else:
            number, load = len(bundles), 0.0
            bundles.append([])
            loads.append(0.0)
        bundles[number].append(i)
        loads[number] = load + estimate
        if len(bundles[number]) < max_shops:
            heapq.heappush(heap, (loads[number], number))
    packed = alone + [(loads[n], sorted(b)) for n, b in enumerate(bundles)]
    # Longest first: the night's tail is shortest when the big children start first.
    packed.sort(key=lambda item: (-item[0], item[1][0]))
    return [members for _, members in packed]


def last_durations(conn: psycopg.Connection, shop_ids: Sequence[str]) -> dict[str, float]:
    """shop → the longest of its three tasks' last successful durations, for the shops with all
    three (the others are unknown)."""
    rows = conn.execute(
        """
        WITH latest AS (
            SELECT DISTINCT ON (shop_id, task) shop_id, task, duration_s
            FROM task_runs
            WHERE status = 'succeeded' AND duration_s IS NOT NULL AND shop_id = ANY(%s)
            ORDER BY shop_id, task, started_at DESC, id DESC
        )
        SELECT shop_id, max(duration_s) FROM latest GROUP BY shop_id HAVING count(*) = %s
        """,
        (list(shop_ids), len(TASKS)),
    ).fetchall()
    return {str(shop): float(seconds) for shop, seconds in rows}


def freeze_shops(
    conn: psycopg.Connection, run_id: str, shop_ids: Sequence[str], *, target_s: float
) -> int:
    """Write the run's index → bundle → shops (``shop_ids`` in their night order); the number of
    children."""
    known = last_durations(conn, shop_ids) if target_s > 0 else {}
    bundles = pack_bundles([known.get(s) for s in shop_ids], target_s=target_s)
    with conn.cursor() as cur, cur.copy(
        "COPY run_shops (run_id, idx, child, shop_id) FROM STDIN"
    ) as copy:
        for child, members in enumerate(bundles):
            for idx in members:
                copy.write_row((run_id, idx, child, shop_ids[idx]))
    return len(bundles)


def bundle_members(
    conn: psycopg.Connection, run_id: str, children: Iterable[int] | None = None
) -> Iterator[tuple[int, list[str]]]:
    """(child, its shops in idx order) for the run's children (all, or those asked for)."""
    wanted = sorted(set(children)) if children is not None else None
    rows = conn.execute(
        """
        SELECT child, array_agg(shop_id ORDER BY idx) FROM run_shops
        WHERE run_id = %s AND (%s::int[] IS NULL OR child = ANY(%s::int[]))
        GROUP BY child ORDER BY child
        """,
        (run_id, wanted, wanted),
    ).fetchall()
    if not conn.autocommit:
        conn.commit()
    for child, shops in rows:
        yield int(child), [str(s) for s in shops]


def chunk_shops(shop_count: int) -> list[Chunk]:
    """Balanced chunks of at most 10,000, none of size 1 unless there is only one shop."""
    if shop_count < 0:
        raise ValueError(f"shop_count {shop_count} is negative")
    if shop_count == 0:
        return []
    parts = math.ceil(shop_count / ARRAY_MAX)
    base, extra = divmod(shop_count, parts)
    chunks: list[Chunk] = []
    offset = 0
    for number in range(parts):
        size = base + (1 if number < extra else 0)
        chunks.append(Chunk(number, offset, size))
        offset += size
    return chunks


def job_name(task: str, run_id: str, chunk: Chunk, chunk_count: int) -> str:
    """Batch's job name: letters, digits, '-' and '_', at most 128 characters."""
    part = f"-part{chunk.number + 1}of{chunk_count}" if chunk_count > 1 else ""
    safe_run = re.sub(r"[^A-Za-z0-9_-]", "-", run_id)
    head = f"catalog-{task}-"
    room = MAX_JOB_NAME - len(head) - len(part)
    if len(safe_run) > room:
        # Keep it unique when shortened: a short digest of the whole run id replaces the tail.
        digest = hashlib.blake2b(run_id.encode(), digest_size=4).hexdigest()
        safe_run = safe_run[: room - 9] + "-" + digest
    return head + safe_run + part


def build_jobs(
    run_id: str, shop_count: int, *, images_before_feed: bool = False
) -> tuple[PlannedJob, ...]:
    """The jobs of a run, in submission order (every job after those it depends on)."""
    chunks = chunk_shops(shop_count)
    if images_before_feed:
        chain = (("collect", None), ("images", "collect"), ("feed", "images"))
    else:
        chain = (("collect", None), ("feed", "collect"), ("images", "collect"))
    jobs: list[PlannedJob] = []
    for chunk in chunks:
        array = chunk.size if chunk.size > 1 else None
        for task, parent in chain:
            depends: tuple[Dependency, ...] = ()
            if parent is not None:
                # Shop i's task starts when shop i's parent succeeds; a plain pair for one shop.
                depends = (Dependency(f"{parent}/{chunk.number}", "N_TO_N" if array else None),)
            jobs.append(
                PlannedJob(
                    key=f"{task}/{chunk.number}",
                    task=task,
                    chunk=chunk,
                    name=job_name(task, run_id, chunk, len(chunks)),
                    array_size=array,
                    depends_on=depends,
                    environment=(("RUN_ID", run_id), ("SHOP_INDEX_OFFSET", str(chunk.offset))),
                )
            )
    jobs_tuple = tuple(jobs)
    check_jobs(jobs_tuple)
    return jobs_tuple


def check_jobs(jobs: Sequence[PlannedJob]) -> None:
    """AWS Batch's limits on a set of jobs; a violation is our bug, reported with the job's name."""
    by_key = {job.key: job for job in jobs}
    problems: list[str] = []
    for job in jobs:
        if not JOB_NAME.match(job.name):
            problems.append(
                f"job {job.name!r}: a job name must be 1–128 letters, digits, '-' or '_'"
            )
        if job.array_size is not None and not ARRAY_MIN <= job.array_size <= ARRAY_MAX:
            problems.append(
                f"job {job.name}: array size {job.array_size} is outside {ARRAY_MIN}–{ARRAY_MAX}"
            )
        if len(job.depends_on) > MAX_DEPENDENCIES:
            problems.append(
                f"job {job.name}: {len(job.depends_on)} dependencies, at most {MAX_DEPENDENCIES}"
            )
        for dep in job.depends_on:
            parent = by_key.get(dep.key)
            # ">=": a job is not planned before itself (Batch never starts a job waiting on itself).
            if parent is None or jobs.index(parent) >= jobs.index(job):
                problems.append(f"job {job.name}: depends on {dep.key}, not planned before it")
                continue
            if dep.type == "N_TO_N" and (
                job.array_size is None or parent.array_size != job.array_size
            ):
                problems.append(
                    f"job {job.name}: N_TO_N on {parent.name} pairs arrays of sizes "
                    f"{job.array_size} and {parent.array_size}; they must be equal arrays"
                )
    if problems:
        listed = "\n".join(f"  - {p}" for p in problems)
        raise FatalError(f"the plan breaks AWS Batch's limits:\n{listed}")


def _date_lock_key(run_date: dt.date) -> int:
    digest = hashlib.blake2b(f"catalog-run:{run_date.isoformat()}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") & 0x7FFFFFFFFFFFFFFF


def _plan_from_row(row: Sequence[Any], *, created: bool) -> Plan:
    run_id, run_date, kind, shop_count, options, rerun_of, child_count = row
    images_before_feed = bool((options or {}).get("images_before_feed", False))
    children = shop_count if child_count is None else child_count
    return Plan(
        run_id=run_id,
        run_date=run_date,
        kind=kind,
        shop_count=shop_count,
        images_before_feed=images_before_feed,
        jobs=build_jobs(run_id, children, images_before_feed=images_before_feed),
        created=created,
        rerun_of=rerun_of,
        child_count=child_count,
    )


_RUN_COLUMNS = "id, run_date, kind, shop_count, options, rerun_of, child_count"


def load_plan(conn: psycopg.Connection, run_id: str) -> Plan:
    """The plan of an existing run, rebuilt from its row (the jobs are a pure function of it)."""
    row = conn.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = %s", (run_id,)).fetchone()
    if row is None:
        raise FatalError(f"run {run_id!r} does not exist (catalog-submit plan creates runs)")
    return _plan_from_row(row, created=False)


def _check_shop_ids(conn: psycopg.Connection, shop_ids: Sequence[str]) -> None:
    if not shop_ids:
        raise ConfigError("--shop-ids is empty: give at least one shop id, or leave it out")
    rows = conn.execute(
        """
        SELECT wanted, s.id IS NOT NULL, coalesce(s.active, false)
        FROM unnest(%s::text[]) AS wanted LEFT JOIN shops s ON s.id = wanted
        WHERE s.id IS NULL OR NOT s.active
        """,
        (list(shop_ids),),
    ).fetchall()
    if rows:
        unknown = [r[0] for r in rows if not r[1]]
        inactive = [r[0] for r in rows if r[1] and not r[2]]
        parts = []
        if unknown:
            parts.append(f"not registered: {', '.join(unknown)} (catalog-submit shops import)")
        if inactive:
            parts.append(f"inactive: {', '.join(inactive)}")
        raise ConfigError("the requested shops cannot run: " + "; ".join(parts))


def plan_run(
    conn: psycopg.Connection,
    run_date: dt.date,
    *,
    shop_ids: Sequence[str] | None = None,
    kind: RunKind = "nightly",
    images_before_feed: bool = False,
    bundle_target_s: float = BUNDLE_TARGET_S,
) -> Plan:
    """Find the night's run or freeze a new one: active shops in id order, packed into bundles,
    as index → bundle → shops.

    A ``nightly`` run is unique per date: asking again returns the existing run (``created`` False),
    whatever the shops asked for. ``rerun`` and ``local`` always make a new run.
    """
    if kind not in ("nightly", "rerun", "local"):
        raise ValueError(f"plan_run makes nightly, rerun or local runs, not {kind!r}")
    with conn.transaction():
        # Two submitters planning the same night at once: the second waits, then finds the first's.
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_date_lock_key(run_date),))
        nightly = conn.execute(
            f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_date = %s AND kind = 'nightly'",
            (run_date,),
        ).fetchone()
        if kind == "nightly" and nightly is not None:
            return _plan_from_row(nightly, created=False)
        if shop_ids is not None:
            _check_shop_ids(conn, shop_ids)
        run_id = _new_run_id(conn, run_date, kind)
        rerun_of = nightly[0] if kind == "rerun" and nightly is not None else None
        options: dict[str, Any] = {"images_before_feed": images_before_feed,
                                   "bundle_target_s": bundle_target_s}
        if shop_ids is not None:
            options["shop_ids_requested"] = len(shop_ids)
        conn.execute(
            "INSERT INTO runs (id, run_date, kind, shop_count, rerun_of, options) "
            "VALUES (%s, %s, %s, 0, %s, %s)",
            (run_id, run_date, kind, rerun_of, Jsonb(options)),
        )
        # Packing needs each shop's history: the night's ids pass through here once (50,000 ids
        # and durations are a few MB), and go back in one COPY.
        ids = [str(r[0]) for r in conn.execute(
            "SELECT id FROM shops WHERE active AND (%(ids)s::text[] IS NULL "
            "OR id = ANY(%(ids)s::text[])) ORDER BY id",
            {"ids": list(shop_ids) if shop_ids is not None else None},
        )]
        children = freeze_shops(conn, run_id, ids, target_s=bundle_target_s)
        conn.execute("UPDATE runs SET shop_count = %s, child_count = %s WHERE id = %s",
                     (len(ids), children, run_id))
    return Plan(
        run_id=run_id, run_date=run_date, kind=kind, shop_count=len(ids),
        images_before_feed=images_before_feed,
        jobs=build_jobs(run_id, children, images_before_feed=images_before_feed),
        created=True, rerun_of=rerun_of, child_count=children,
    )


def plan_retry(
    conn: psycopg.Connection, run_id: str, *, also_positions: Iterable[int] = (),
    bundle_target_s: float = BUNDLE_TARGET_S,
) -> Plan | None:
    """A new run of the shops of ``run_id`` whose latest attempt of a task failed (None: none did).

    ``also_positions`` (array positions: children) adds the shops of children Batch saw fail
    without a task row (the container never started, the host was reclaimed on every attempt).
    The new run keeps the old run's order and options and points back at it with ``rerun_of``.
    """
    old = load_plan(conn, run_id)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_date_lock_key(old.run_date),))
        new_id = _new_run_id(conn, old.run_date, "retry")
        conn.execute(
            "INSERT INTO runs (id, run_date, kind, shop_count, rerun_of, options) "
            "VALUES (%s, %s, 'retry', 0, %s, %s)",
            (new_id, old.run_date, run_id, Jsonb({"images_before_feed": old.images_before_feed})),
        )
        ids = [str(r[0]) for r in conn.execute(
            """
            SELECT rs.shop_id
            FROM run_shops rs
            WHERE rs.run_id = %(old)s AND (rs.child = ANY(%(also)s::int[]) OR EXISTS (
                SELECT 1 FROM (
                    SELECT DISTINCT ON (t.task) t.status
                    FROM task_runs t
                    WHERE t.run_id = %(old)s AND t.shop_id = rs.shop_id
                    ORDER BY t.task, t.started_at DESC, t.id DESC
                ) latest
                WHERE latest.status IN ('failed', 'interrupted', 'lost')
            ))
            ORDER BY rs.idx
            """,
            {"old": run_id, "also": sorted(set(also_positions))},
        )]
        if not ids:
            # Nothing failed: keep no empty run behind.
            conn.execute("DELETE FROM runs WHERE id = %s", (new_id,))
            return None
        children = freeze_shops(conn, new_id, ids, target_s=bundle_target_s)
        conn.execute("UPDATE runs SET shop_count = %s, child_count = %s WHERE id = %s",
                     (len(ids), children, new_id))
    return Plan(
        run_id=new_id, run_date=old.run_date, kind="retry", shop_count=len(ids),
        images_before_feed=old.images_before_feed,
        jobs=build_jobs(new_id, children, images_before_feed=old.images_before_feed),
        created=True, rerun_of=run_id, child_count=children,
    )


def _new_run_id(conn: psycopg.Connection, run_date: dt.date, kind: str) -> str:
    """``2026-11-29`` for the nightly run; then ``2026-11-29-rerun2``, ``-retry1``, ``-local3``."""
    base = run_date.isoformat()
    if kind == "nightly":
        return base
    row = conn.execute(
        "SELECT count(*) FROM runs WHERE run_date = %s AND kind = %s", (run_date, kind)
    ).fetchone()
    number = (int(row[0]) if row else 0) + 1
    while True:
        candidate = f"{base}-{kind}{number}"
        if conn.execute("SELECT 1 FROM runs WHERE id = %s", (candidate,)).fetchone() is None:
            return candidate
        number += 1


def record_job(conn: psycopg.Connection, run_id: str, key: str, job_id: str) -> None:
    """Record one submitted job on the run at once, so a crash after it never submits it twice."""
    conn.execute(
        "UPDATE runs SET jobs = jobs || jsonb_build_object(%s::text, %s::text) WHERE id = %s",
        (key, job_id, run_id),
    )
    if not conn.autocommit:
        conn.commit()


def recorded_jobs(conn: psycopg.Connection, run_id: str) -> dict[str, str]:
    """The run's submitted jobs, key → job id (a handful per 10,000 shops)."""
    row = conn.execute("SELECT jobs FROM runs WHERE id = %s", (run_id,)).fetchone()
    if not conn.autocommit:
        conn.commit()
    return {str(k): str(v) for k, v in (row[0] if row else {}).items()}
