"""A simulated night: N shops with a realistic size distribution through the planner.

Most shops are tiny (an unchanged source ends in seconds), a few are huge; a few are new (no
history). The planner (``submitter.plan.pack_bundles`` and ``build_jobs``, the code
``catalog-submit submit`` runs) packs them; this script then plays the night on the compute
environment's slots and prints, per strategy: array children, the longest child, the night's
length per task, database connections at peak, container starts (and log streams), and SubmitJob
calls. ``python -m bench.night [--shops 10000] [--vcpus 320] [--seed 7]``; with
``--database-url URL`` (a scratch database, migrated; its shops and task rows are replaced) it also
times ``plan_run`` itself on the first size, with 30 nights of history in ``task_runs``.

The model, stated once: a child costs ``CHILD_START_S`` before its first shop (container start
5–10 s, Python imports 1.0–1.5 s: issue 14's numbers) and ``SHOP_START_S`` per shop inside it (its
lock, row and summary); a shop's task takes its history's longest task (the planner's own
estimate; a new shop, unknown, a full load of ``NEW_SHOP_S``); every task of a child takes the same
time (conservative); children start in array-index order on ``vcpus / JOB_VCPUS`` slots.
"""

from __future__ import annotations

import argparse
import heapq
import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass

from submitter.plan import ARRAY_MAX, BUNDLE_TARGET_S, build_jobs, pack_bundles

CHILD_START_S = 8.75
SHOP_START_S = 0.3
NEW_SHOP_S = 900.0
JOB_VCPUS = 1
CONNECTIONS_PER_CHILD_BEFORE = 2  # the task's and the accounting's, before issue 14
CONNECTIONS_PER_CHILD = 1
# (share of shops, median seconds, sigma of the log): an unchanged night's longest task per shop.
SIZES = ((0.80, 2.0, 0.8), (0.15, 30.0, 0.7), (0.045, 240.0, 0.5), (0.005, 1800.0, 0.4))
NEW_SHARE = 0.03


def shop_estimates(count: int, seed: int) -> list[float | None]:
    """Each shop's history (seconds), or None for a new shop: the planner's input."""
    rng = random.Random(seed)
    out: list[float | None] = []
    for _ in range(count):
        if rng.random() < NEW_SHARE:
            out.append(None)
            continue
        pick = rng.random()
        size = SIZES[-1]
        for candidate in SIZES:
            if pick < candidate[0]:
                size = candidate
                break
            pick -= candidate[0]
        out.append(rng.lognormvariate(math.log(size[1]), size[2]))
    return out


@dataclass
class Night:
    strategy: str
    children: int
    longest_child_s: float
    night_s: float  # one task's array on the slots (collect; feed and images follow per index)
    peak_connections: int
    container_starts: int
    submit_calls: int
    plan_ms: float


def play(strategy: str, estimates: Sequence[float | None], *, target_s: float, vcpus: int,
         per_child_connections: int) -> Night:
    started = time.perf_counter()
    bundles = pack_bundles(estimates, target_s=target_s)
    jobs = build_jobs("2026-11-29", len(bundles))
    plan_ms = (time.perf_counter() - started) * 1000
    durations = [
        CHILD_START_S + sum(SHOP_START_S + (NEW_SHOP_S if estimates[i] is None
                                            else float(estimates[i] or 0.0)) for i in members)
        for members in bundles
    ]
    slots = max(1, vcpus // JOB_VCPUS)
    free = [0.0] * min(slots, len(durations))
    heapq.heapify(free)
    end = 0.0
    for seconds in durations:  # Batch starts children roughly in index order
        start = heapq.heappop(free)
        heapq.heappush(free, start + seconds)
        end = max(end, start + seconds)
    return Night(
        strategy=strategy, children=len(bundles), longest_child_s=max(durations),
        night_s=end, peak_connections=min(slots, len(bundles)) * per_child_connections,
        container_starts=3 * len(bundles), submit_calls=len(jobs), plan_ms=plan_ms,
    )


def table(nights: Sequence[Night], shops: int, vcpus: int) -> str:
    lines = [
        f"{shops:,} shops, {vcpus} vCPUs ({vcpus // JOB_VCPUS} children at once), "
        f"child start {CHILD_START_S} s, per shop in a bundle {SHOP_START_S} s",
        "",
        "| strategy | array children | longest child | collect array on the slots | "
        "connections at peak | containers (= log streams) | SubmitJob calls | planning |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for n in nights:
        lines.append(
            f"| {n.strategy} | {n.children:,} | {n.longest_child_s / 60:.1f} min | "
            f"{n.night_s / 60:.1f} min | {n.peak_connections:,} | {n.container_starts:,} | "
            f"{n.submit_calls} | {n.plan_ms:.0f} ms |"
        )
    return "\n".join(lines)


def time_plan_run(database_url: str, estimates: Sequence[float | None], nights: int = 30) -> str:
    """``plan_run`` against PostgreSQL, with ``nights`` of history for every known shop."""
    import datetime as dt

    import psycopg

    from submitter.plan import plan_run
    from worker.common import db

    db.migrate(database_url)
    with psycopg.connect(database_url) as conn:
        conn.execute("TRUNCATE shops, task_runs, rejects, runs, run_shops CASCADE")
        with conn.cursor() as cur, cur.copy(
            "COPY shops (id, name, source_url, format, currency) FROM STDIN"
        ) as copy:
            for i in range(len(estimates)):
                copy.write_row((f"s{i:06d}", "bench", "https://shop.example/x.jsonl", "jsonl",
                                "KRW"))
        rows = 0
        with conn.cursor() as cur, cur.copy(
            "COPY task_runs (shop_id, task, status, duration_s, started_at) FROM STDIN"
        ) as copy:
            for night in range(nights):
                when = dt.datetime(2026, 10, 1, tzinfo=dt.UTC) + dt.timedelta(days=night)
                for i, estimate in enumerate(estimates):
                    if estimate is None:
                        continue
                    for task in ("collect", "feed", "images"):
                        copy.write_row((f"s{i:06d}", task, "succeeded", estimate, when))
                        rows += 1
        conn.commit()
        conn.execute("ANALYZE")
        conn.commit()
        started = time.perf_counter()
        plan = plan_run(conn, dt.date(2026, 11, 29))
        seconds = time.perf_counter() - started
    return (f"plan_run against PostgreSQL: {len(estimates):,} shops, {rows:,} task rows of "
            f"history: {seconds:.2f} s, {plan.children:,} children")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shops", type=int, nargs="+", default=[10_000, 50_000])
    parser.add_argument("--vcpus", type=int, default=320)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--database-url", help="a scratch database: also time plan_run itself")
    args = parser.parse_args()
    if args.database_url:
        print(time_plan_run(args.database_url, shop_estimates(args.shops[0], args.seed)))
    for shops in args.shops:
        estimates = shop_estimates(shops, args.seed)
        known = [e for e in estimates if e is not None]
        tiny = sum(1 for e in known if e < 10)
        huge = sum(1 for e in known if e >= 1200)
        print(f"\nshops: {shops:,}; tiny (< 10 s) {tiny:,}, huge (≥ 20 min) {huge:,}, "
              f"new {shops - len(known):,}; sum of estimates {sum(known) / 3600:.1f} h")
        nights = [
            play("one shop per child, 2 connections (before)", estimates, target_s=0,
                 vcpus=args.vcpus, per_child_connections=CONNECTIONS_PER_CHILD_BEFORE),
            play("one shop per child, 1 connection", estimates, target_s=0,
                 vcpus=args.vcpus, per_child_connections=CONNECTIONS_PER_CHILD),
            play(f"bundled, target {BUNDLE_TARGET_S / 60:.0f} min (default)", estimates,
                 target_s=BUNDLE_TARGET_S, vcpus=args.vcpus,
                 per_child_connections=CONNECTIONS_PER_CHILD),
            play("bundled, target 10 min", estimates, target_s=600, vcpus=args.vcpus,
                 per_child_connections=CONNECTIONS_PER_CHILD),
        ]
        print(table(nights, shops, args.vcpus))
    print(f"\n(an array holds at most {ARRAY_MAX:,} children: more shops than that are chunked, "
          "3 SubmitJob calls per chunk)")


if __name__ == "__main__":
    main()
