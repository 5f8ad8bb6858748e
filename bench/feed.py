"""Feed benchmark: rows/s, MB/s and peak RSS per channel against COPY … TO STDOUT + gzip-1 (the limit).

    .venv/bin/python bench/feed.py --rows 100000 300000 [--database-url URL] [--out FILE]
    .venv/bin/python bench/feed.py --rows 50000 --breakdown   # µs per row of each step
    .venv/bin/python bench/feed.py --profile channel:google:1 --database-url URL   # cProfile
    .venv/bin/python bench/feed.py --rules --database-url URL   # µs per row of each rule
    .venv/bin/python bench/feed.py --rows 100000 --cache   # the line cache: cold, warm, a night

Without --database-url it starts a throw-away PostgreSQL from the machine's initdb/pg_ctl (the
tests' own helper). Each measurement runs in a fresh process so that its peak RSS is its own; all
measurements of one size run against the same rows in the same run, so the ratios hold even on a
busy machine where the absolute numbers wander. Not part of CI.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from psycopg import sql  # noqa: E402

SHOP = "bench"
CHANNELS = ("google", "google_tsv", "meta", "naver", "naver_summary")
# (label, kind): what each child process measures.
# kind: channel:NAME:GZIP[:METHOD] or all[:METHOD], METHOD "cursor" (the default) or "copy": how
# the rows reach Python; every row goes through Channel.row (the one feed path).
MEASUREMENTS = [
    ("COPY TO STDOUT, raw", "copy_raw"),
    ("COPY TO STDOUT + gzip-1 (the limit)", "copy_gzip1"),
    ("google (XML), gzip-1 thread", "channel:google:1"),
    ("google (XML), gzip-6 thread", "channel:google:6"),
    ("google_tsv, gzip-1 thread", "channel:google_tsv:1"),
    ("meta (CSV), gzip-1 thread", "channel:meta:1"),
    ("naver (TSV), plain", "channel:naver:none"),
    ("naver_summary (all rows new)", "channel:naver_summary:none"),
    ("all five channels, one pass", "all"),
]


# --cache: the line cache (worker/feed/linecache.py), per channel and for all five in one pass:
# "off" (FEED_LINE_CACHE=0), "cold" (cache empty: every line built and stored), "warm" (the second
# build, nothing changed), "night" (5 % of the products updated since: TOUCH), "deploy" (the code's
# fingerprint changed: every line rebuilt, the old ones replaced). (label, kind, what the parent
# does to the database first.)
TOUCH = 20  # every 20th product: 5 %
CACHE_SETS = (*CHANNELS, "all")
# The limit is measured again before each set: on a shared machine it wanders by 2 × within a
# run, and each line's ratio is taken against the limit measured last before it.
CACHE_MEASUREMENTS: list[tuple[str, str, str | None]] = [
    *[
        step
        for name in CACHE_SETS
        for step in (
            ("COPY TO STDOUT + gzip-1 (the limit)", "copy_gzip1", None),
            (f"{name}: off", f"cache:{name}:off", "clear"),
            (f"{name}: cold", f"cache:{name}:on", None),
            (f"{name}: warm", f"cache:{name}:on", None),
            (f"{name}: night (5 % updated)", f"cache:{name}:on", "touch"),
            (f"{name}: night after a deploy", f"cache:{name}:on", "deploy"),
        )
    ],
]


def before(url: str, action: str | None) -> None:
    """What the parent does to the database before a --cache measurement."""
    if action is None:
        return
    with psycopg.connect(url) as conn:
        if action == "clear":
            conn.execute("DELETE FROM feed_lines WHERE shop_id = %s", (SHOP,))
            conn.execute("DELETE FROM feed_line_sets WHERE shop_id = %s", (SHOP,))
        elif action == "touch":
            # As collect records an update: new content, changed_at now.
            conn.execute(
                "UPDATE products SET title = title || ' *', changed_at = now()"
                " WHERE shop_id = %s AND substr(product_id, 2)::int %% %s = 0", (SHOP, TOUCH),
            )
        elif action == "deploy":
            conn.execute("UPDATE feed_line_sets SET fingerprint = 'the code before the deploy'"
                         " WHERE shop_id = %s", (SHOP,))
        conn.commit()


# --breakdown: each step added in turn, so that the differences are the steps' costs per row.
BREAKDOWN = [
    ("COPY TO STDOUT + gzip-1 (the limit)", "copy_gzip1"),
    ("fetch (server-side cursor, 2000 a batch)", "fetch"),
    ("fetch: COPY text, psycopg's rows()", "fetch_copy_text"),
    ("fetch: COPY binary, psycopg's rows()", "fetch_copy_binary"),
    ("fetch + normalise", "stream:cursor"),
    *[(f"{n}: + rules and formatting (row())", f"rows:{n}") for n in CHANNELS],
    *[(f"{n}: + write, no gzip", f"channel:{n}:none") for n in CHANNELS],
    *[(f"{n}: + gzip-1 thread", f"channel:{n}:1") for n in CHANNELS if n != "naver"],
]


def backend_cpu(conn: psycopg.Connection) -> float:
    """The CPU seconds the connection's PostgreSQL backend has used (a local server: /proc)."""
    try:
        fields = Path(f"/proc/{conn.info.backend_pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(url: str, kind: str) -> dict[str, Any]:
    """One measurement in this process: rows, output bytes, wall and CPU seconds, peak RSS."""
    from tests.worker.feed.helpers import CountRejects
    from worker.common.errors import RejectedRecord
    from worker.feed.channels import get_channel
    from worker.feed.channels.base import ChannelOptions
    from worker.feed.product import FeedProduct
    from worker.feed.stream import feed_query, stream_products
    from worker.feed.task import build_feeds

    rows = out_bytes = 0
    python_rows = 0
    wall, cpu = time.perf_counter(), time.process_time()
    with psycopg.connect(url) as conn, tempfile.TemporaryDirectory() as tmp:
        pg_cpu = backend_cpu(conn)
        query = feed_query(SHOP)
        if kind in ("copy_raw", "copy_gzip1"):
            compress = zlib.compressobj(1, zlib.DEFLATED, 31) if kind == "copy_gzip1" else None
            with open(Path(tmp) / "out", "wb") as sink, conn.cursor() as cur, cur.copy(
                sql.SQL("COPY ({}) TO STDOUT").format(query)
            ) as copy:
                for chunk in copy:
                    rows += bytes(chunk).count(b"\n")
                    data = compress.compress(chunk) if compress else bytes(chunk)
                    sink.write(data)
                    out_bytes += len(data)
                if compress:
                    out_bytes += sink.write(compress.flush())
        elif kind == "fetch":
            # The rows as psycopg hands them over, nothing else: the stream's own cost.
            with conn.transaction(), conn.cursor(name="bench_fetch") as cur:
                cur.itersize = 2000
                cur.execute(query)
                for _ in cur:
                    rows += 1
        elif kind in ("fetch_copy_text", "fetch_copy_binary"):
            # The same rows through COPY … TO STDOUT, parsed by psycopg row by row (text or binary).
            binary = kind.endswith("binary")
            statement = sql.SQL("COPY ({}) TO STDOUT" + (" (FORMAT BINARY)" if binary else ""))
            with conn.transaction(), conn.cursor() as cur, cur.copy(
                statement.format(query)
            ) as copy:
                if binary:
                    copy.set_types(["text"] * len(FeedProduct._fields))
                for _ in copy.rows():
                    rows += 1
        elif kind.startswith("rows:"):
            # Stream + normalise + one channel's row(), no file: the rules and the formatting.
            channel = get_channel(kind.split(":")[1])
            with conn.transaction():
                conn.execute("SET LOCAL jit = off")  # as build_feeds does
                for p in stream_products(conn, feed_query(SHOP, check_groups=channel.checks_groups,
                                                          summary=channel.delta)):
                    rows += 1
                    with contextlib.suppress(RejectedRecord):
                        channel.row(p)
                    channel.dropped.clear()
        elif kind.startswith("stream:"):
            with conn.transaction():
                for _ in stream_products(conn, query, method=kind.split(":")[1]):  # type: ignore[arg-type]
                    rows += 1
        elif kind.startswith("cache:"):
            _, which, switch, *how = kind.split(":")
            options = ChannelOptions()
            channels = [get_channel(n, options=options)
                        for n in (CHANNELS if which == "all" else (which,))]
            built = build_feeds(conn, SHOP, channels, Path(tmp), rejects=CountRejects(),
                                gzip_level=1, line_cache=switch == "on",
                                method=how[0] if how else None)  # type: ignore[arg-type]
            rows = built.rows_in
            python_rows = rows - min(f.cached for f in built.feeds)
            out_bytes = sum(f.bytes for f in built.feeds)
        else:
            names: tuple[str, ...]
            level: int | None
            method = "cursor"
            if kind.startswith("all"):
                names, level = CHANNELS, 1
                method = kind.partition(":")[2] or method
            else:
                _, name, level_text, *rest = kind.split(":")
                names, level = (name,), None if level_text == "none" else int(level_text)
                method = rest[0] if rest else method
            # One options object for the shop's channels, as the task makes (worker/feed/task.py).
            options = ChannelOptions()
            channels = [get_channel(n, options=options) for n in names]
            built = build_feeds(
                conn, SHOP, channels, Path(tmp), rejects=CountRejects(), gzip_level=level,
                method=method,  # type: ignore[arg-type]
            )
            rows = built.rows_in
            out_bytes = sum(f.bytes for f in built.feeds)
            conn.rollback()
        pg_cpu = backend_cpu(conn) - pg_cpu
    return {
        "rows": rows,
        "bytes": out_bytes,
        "wall_s": time.perf_counter() - wall,
        "cpu_s": time.process_time() - cpu,
        "pg_cpu_s": pg_cpu,
        "python_rows": python_rows,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def rule_costs(url: str, count: int = 20_000) -> str:
    """µs per row of each step of one channel's row, timed (no profiler) over the bench's rows."""
    from worker.common.errors import RejectedRecord
    from worker.feed import rules
    from worker.feed.channels import get_channel
    from worker.feed.channels.base import ChannelOptions
    from worker.feed.channels.google import google_fields
    from worker.feed.channels.naver import naver_values
    from worker.feed.product import normalise
    from worker.feed.stream import feed_query

    with psycopg.connect(url) as conn, conn.transaction():
        conn.execute("SET LOCAL jit = off")
        with conn.cursor(name="bench_rules") as cur:
            cur.itersize = 2000
            cur.execute(feed_query(SHOP, check_groups=True, summary=True))
            raw = [row for _, row in zip(range(count), cur, strict=False)]
    products = [normalise(row) for row in raw]
    options = ChannelOptions(country="KR")
    google = get_channel("google", options=options)
    lines = ["| step (Google's values unless named) | µs per row |", "| --- | ---: |"]

    def timed(label: str, step: Any, over: list[Any] = products) -> None:
        best = float("inf")
        for _ in range(3):  # the best of three: the machine is shared
            start = time.process_time()
            for item in over:
                with contextlib.suppress(RejectedRecord):
                    step(item)
            best = min(best, time.process_time() - start)
        google.dropped.clear()
        lines.append(f"| {label} | {best / len(over) * 1e6:.2f} |")

    timed("(the timing loop itself, a step doing nothing: included in every line below)",
          lambda p: None)
    timed("normalise (the whole row)", normalise, raw)
    timed("  of which the description: clean_text(html=True)",
          lambda row: rules.clean_text(row[2], html=True), raw)
    timed("check_id", lambda p: rules.check_id(p.product_id, 50))
    timed("title and description: trim_at_word",
          lambda p: (rules.trim_at_word(p.title, 150), rules.trim_at_word(p.description, 5000)))
    def link_missing_the_memo(p: Any) -> str:
        rules._NORMALISED.clear()
        return google.url(p.link, "link", limit=2000, required=True)

    timed("link: url(), first channel (memo miss)", link_missing_the_memo)
    timed("link: url(), another channel (memo hit)",
          lambda p: google.url(p.link, "link", limit=2000, required=True))
    timed("additional_urls (one extra image)",
          lambda p: google.additional_urls(p, "additional_image_link", limit=2000))
    timed("sale (a quarter of the rows have one)", google.sale)
    timed("shipping_price", google.shipping_price)
    timed("google_fields (all of Google's rules, TSV form)",
          lambda p: google_fields(google, p, text=True))
    timed("naver_values (all of Naver's rules)", lambda p: naver_values(google, p))
    for name in CHANNELS:
        channel = get_channel(name, options=options)
        timed(f"{name}: row() (rules + formatting)", channel.row)
    return "\n".join(lines)


def prepare(url: str, count: int) -> None:
    from submitter.shopfile import parse_shop
    from tests.catalogs import generate_products
    from worker.common.db import migrate
    from worker.common.shops import upsert_shops

    migrate(url)
    with psycopg.connect(url) as conn:
        conn.execute("DELETE FROM products WHERE shop_id = %s", (SHOP,))
        upsert_shops(conn, [parse_shop({
            "id": SHOP, "name": SHOP, "source_url": "file:///dev/null", "format": "jsonl",
            "currency": "KRW", "channels": list(CHANNELS),
        }, "bench")])
        for start in range(0, count, 100_000):
            generate_products(conn, SHOP, min(100_000, count - start), start=start)
        conn.execute("ANALYZE products")
        conn.commit()


def run_size(url: str, count: int, measurements: list[Any] = MEASUREMENTS,
             ) -> list[dict[str, Any]]:
    prepare(url, count)
    results = []
    for label, kind, *pre in measurements:
        before(url, pre[0] if pre else None)
        child = subprocess.run(
            [sys.executable, __file__, "--one", kind, "--database-url", url],
            check=True, capture_output=True, text=True, cwd=ROOT,
        )
        result = json.loads(child.stdout.strip().splitlines()[-1])
        result.update(label=label, kind=kind, size=count)
        print(json.dumps(result), file=sys.stderr)
        results.append(result)
    return results


def table(results: list[dict[str, Any]]) -> str:
    """Wall-clock rates and ratios, and the same by this process's CPU time (stable under load)."""
    lines = [
        "| rows | what | rows/s (wall) | × limit (wall) | MB/s out (wall) | CPU µs/row "
        "| × limit (CPU) | PostgreSQL CPU µs/row | rows to Python | peak RSS MB |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for size in sorted({r["size"] for r in results}):
        group = [r for r in results if r["size"] == size]
        limit = next((r for r in group if r["kind"] == "copy_gzip1"), group[0])
        for r in group:
            if r["kind"] == "copy_gzip1":
                limit = r  # each line against the limit measured last before it
            limit_rate = limit["rows"] / limit["wall_s"]
            limit_cpu = limit["cpu_s"] / limit["rows"]
            rate = r["rows"] / r["wall_s"]
            mbs = r["bytes"] / 1e6 / r["wall_s"] if r["bytes"] else 0.0
            cpu = r["cpu_s"] / r["rows"]
            lines.append(
                f"| {size:,} | {r['label']} | {rate:,.0f} | {rate / limit_rate:.2f} | "
                f"{mbs:.1f} | {cpu * 1e6:.1f} | {limit_cpu / cpu:.2f} | "
                f"{r.get('pg_cpu_s', float('nan')) / r['rows'] * 1e6:.1f} | "
                f"{r.get('python_rows', 0):,} | {r['peak_rss_mb']:.0f} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 300_000])
    parser.add_argument("--database-url")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--render", type=Path, help="print the table of a saved run's JSON lines")
    parser.add_argument("--breakdown", action="store_true",
                        help="measure each step in turn (fetch, normalise, rules, write, gzip)")
    parser.add_argument("--cache", action="store_true",
                        help="the line cache: off, cold, warm, a night, after a deploy")
    parser.add_argument("--rules", action="store_true",
                        help="µs per row of each rule and channel row() over existing rows")
    parser.add_argument("--profile", metavar="KIND",
                        help="cProfile one measurement (e.g. channel:google:1) over existing rows")
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.database_url, args.one)))
        return
    if args.rules:
        if not args.database_url:
            sys.exit("--rules needs --database-url (a database a run has filled)")
        print(rule_costs(args.database_url))
        return
    if args.profile:
        import cProfile
        import pstats

        if not args.database_url:
            sys.exit("--profile needs --database-url (a database a run has filled)")
        profile = cProfile.Profile()
        result = profile.runcall(measure, args.database_url, args.profile)
        print(json.dumps(result))
        pstats.Stats(profile).sort_stats("tottime").print_stats(30)
        return
    if args.render:
        lines = args.render.read_text().splitlines()
        print(table([json.loads(x) for x in lines if x.startswith('{"rows"')]))
        return

    start = os.getloadavg()

    def run_all(url: str) -> list[dict[str, Any]]:
        chosen: list[Any] = (
            BREAKDOWN if args.breakdown else CACHE_MEASUREMENTS if args.cache else MEASUREMENTS
        )
        return [r for n in args.rows for r in run_size(url, n, chosen)]

    if args.database_url:
        results = run_all(args.database_url)
    else:
        from tests import fixtures_db

        folder = fixtures_db.find_pg_binaries(os.environ)
        if folder is None:
            sys.exit("no initdb/pg_ctl found: pass --database-url")
        with fixtures_db.binaries_server(folder) as admin:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute("CREATE DATABASE bench")
            results = run_all(fixtures_db.with_database(admin, "bench"))
    load = os.getloadavg()
    report = (
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()},"
        f" load average at the start {start[0]:.1f} / {start[1]:.1f} / {start[2]:.1f},"
        f" at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}\n\n"
        + table(results) + "\n"
    )
    print(report)
    if args.out:
        args.out.write_text(report, encoding="utf-8")


if __name__ == "__main__":
    main()
