"""Benchmark of the collect task (not in CI): our collect end to end, first load and unchanged
re-run, against the limits measured in the same run on the same catalog: the raw parse (ijson
for JSON, orjson per line for JSON Lines, the csv module for CSV), ``psql \\copy`` of the
equivalent CSV, and a naive peer (the whole file in memory + ``executemany``).

    python -m bench.collect --sizes 100,300 [--formats json,jsonl,csv] [--database-url URL]
                            [--workdir DIR] [--no-naive]

Without ``--database-url`` it starts a throw-away PostgreSQL from the machine's initdb/pg_ctl (the
tests' provider). Each measurement runs in a fresh subprocess, so its peak RSS is its own.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BYTES_PER_PRODUCT = 1570  # catalog_gen's JSON, measured (every optional field since issue 18; 1100 before)

# ---- the measured children -------------------------------------------------------------------


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_collect(database_url: str, shop_id: str, file_root: str) -> dict[str, Any]:
    from structlog.testing import capture_logs

    from worker.common.settings import Settings
    from worker.router import run_task

    settings = Settings.from_env({"DATABASE_URL": database_url, "SHOP_ID": shop_id,
                                  "LOG_FORMAT": "json", "SOURCE_FILE_ROOT": file_root})
    started, cpu = time.perf_counter(), time.process_time()
    with capture_logs() as logs:
        code = run_task("collect", settings)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    summary = next(e for e in logs if e["event"] == "task.summary")
    if code != 0:
        raise SystemExit(f"collect failed with exit {code}: {logs}")
    return {"seconds": elapsed, "cpu_seconds": cpu, "rows": summary["rows_in"],
            "counts": summary["counts"], "bytes": summary["bytes"], "peak_rss_mb": _peak_rss_mb()}


def child_ijson(path: str, item_path: str) -> dict[str, Any]:
    """ijson's C backend alone, read the way collect reads (small reads that grow for a long
    value): faster than one 4 MiB read at a time, so the limit is the stricter of the two.
    Since 2026-12-02 collect reads the common paths with the standard library's scanner
    instead; the limit stays ijson's (``scanner=False``), the issue's yardstick."""
    from worker.collect.formats import json as json_format

    started, cpu = time.perf_counter(), time.process_time()
    with open(path, "rb") as handle:
        rows = sum(1 for _ in json_format.read_records(
            handle, {"item_path": item_path}, path, scanner=False))  # type: ignore[arg-type]
    return {"seconds": time.perf_counter() - started, "cpu_seconds": time.process_time() - cpu,
            "rows": rows, "peak_rss_mb": _peak_rss_mb()}


def child_orjson(path: str) -> dict[str, Any]:
    """JSON Lines' parse limit: orjson, one line at a time (no limits, no positions)."""
    import orjson

    started, cpu = time.perf_counter(), time.process_time()
    rows = 0
    with open(path, "rb") as handle:
        for line in handle:
            orjson.loads(line)
            rows += 1
    return {"seconds": time.perf_counter() - started, "cpu_seconds": time.process_time() - cpu,
            "rows": rows, "peak_rss_mb": _peak_rss_mb()}


def child_csv(path: str) -> dict[str, Any]:
    """CSV's parse limit: the csv module's DictReader over the decoded file."""
    import csv

    started, cpu = time.perf_counter(), time.process_time()
    with open(path, encoding="utf-8", newline="") as handle:
        rows = sum(1 for _ in csv.DictReader(handle))
    return {"seconds": time.perf_counter() - started, "cpu_seconds": time.process_time() - cpu,
            "rows": rows, "peak_rss_mb": _peak_rss_mb()}


def _peer_row(p: dict[str, Any]) -> tuple[Any, ...]:
    """The few columns the peers (plain stream, naive) load, read straight from a product."""
    if isinstance(p["price"], str):  # a CSV row: "12,900원", options as JSON text
        return (p["sku"], f"{p['brand']} {p['name']}", p["desc"], p["url"],
                int(p["price"].rstrip("원").replace(",", "")), p["options"])
    return (p["sku"], f"{p['brand']} {p['name']}", p["desc"], p["url"], p["price"]["amount"],
            json.dumps(p.get("options"), ensure_ascii=False))


def _naive_items(path: str) -> list[dict[str, Any]]:
    """The whole catalog in memory, read the obvious way for its format."""
    if path.endswith(".jsonl"):
        with open(path, encoding="utf-8") as handle:
            return [json.loads(line) for line in handle]
    if path.endswith(".csv"):
        import csv

        with open(path, encoding="utf-8", newline="") as handle:
            return list(csv.DictReader(handle))
    with open(path, encoding="utf-8") as handle:
        items: list[dict[str, Any]] = json.load(handle)["products"]
        return items


def child_plain(database_url: str, path: str, item_path: str) -> dict[str, Any]:
    """The floor of any one-thread Python collect: ijson's items straight into ``copy.write_row``
    of a temporary table (no WAL, no index) — no mapping, validation, rejects, hash or delta. The
    issue quotes this stream at 32–42k rows/s on this machine."""
    import psycopg

    from worker.collect.formats import json as json_format

    started, cpu = time.perf_counter(), time.process_time()
    rows = 0
    with psycopg.connect(database_url) as conn, open(path, "rb") as handle:
        conn.execute("CREATE TEMP TABLE bench_plain (product_id text, title text, "
                     "description text, link text, price numeric(20,4), extra jsonb)")
        with conn.cursor() as cur, cur.copy("COPY bench_plain FROM STDIN") as copy:
            write = copy.write_row
            for _, p in json_format.read_records(handle, {"item_path": item_path}, path,  # type: ignore[arg-type]
                                                 scanner=False):
                write(_peer_row(p))
                rows += 1
    return {"seconds": time.perf_counter() - started, "cpu_seconds": time.process_time() - cpu,
            "rows": rows, "peak_rss_mb": _peak_rss_mb()}


def child_naive(database_url: str, path: str) -> dict[str, Any]:
    """What a first version often is: the whole document in memory, then executemany."""
    import psycopg

    started, cpu = time.perf_counter(), time.process_time()
    rows = [_peer_row(p) for p in _naive_items(path)]
    with psycopg.connect(database_url) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_naive")
        conn.execute("CREATE TABLE bench_naive (product_id text PRIMARY KEY, title text, "
                     "description text, link text, price numeric(20,4), extra jsonb)")
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO bench_naive VALUES (%s, %s, %s, %s, %s, %s)", rows)
    return {"seconds": time.perf_counter() - started, "cpu_seconds": time.process_time() - cpu,
            "rows": len(rows), "peak_rss_mb": _peak_rss_mb()}


def _run_child(*args: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.collect", "--child", *args],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout
    line = next(line for line in reversed(out.splitlines()) if line.startswith("BENCH "))
    result: dict[str, Any] = json.loads(line[6:])
    return result


# ---- the run -------------------------------------------------------------------------------


def psql_copy(database_url: str, shop_id: str, workdir: Path) -> dict[str, Any]:
    """\\copy of the same rows as CSV into a table shaped like products (same indexes)."""
    from worker.collect.load import ROW_COLUMNS

    csv_path = workdir / f"{shop_id}.csv"
    columns = ", ".join(("shop_id", *ROW_COLUMNS, "content_hash"))
    subprocess.run(["psql", database_url, "-q", "-v", "ON_ERROR_STOP=1", "-c",
                    f"\\copy (SELECT {columns} FROM products WHERE shop_id = '{shop_id}') "
                    f"TO '{csv_path}' CSV"], check=True)
    subprocess.run(["psql", database_url, "-q", "-v", "ON_ERROR_STOP=1", "-c",
                    "DROP TABLE IF EXISTS bench_copy; "
                    "CREATE TABLE bench_copy (LIKE products INCLUDING ALL)"], check=True)
    started = time.perf_counter()
    subprocess.run(["psql", database_url, "-q", "-v", "ON_ERROR_STOP=1", "-c",
                    f"\\copy bench_copy ({columns}) FROM '{csv_path}' CSV"], check=True)
    seconds = time.perf_counter() - started
    rows = int(subprocess.run(["psql", database_url, "-At", "-c",
                               "SELECT count(*) FROM bench_copy"],
                              check=True, capture_output=True, text=True).stdout)
    size = csv_path.stat().st_size
    csv_path.unlink()
    return {"seconds": seconds, "rows": rows, "csv_bytes": size}


def measure(database_url: str, size_mb: int, fmt: str, workdir: Path,
            naive: bool) -> dict[str, Any]:
    import psycopg

    from submitter.shopfile import parse_shop
    from tests import catalogs as catalog_gen
    from worker.common.shops import upsert_shops

    # The same products in every format (sized by their JSON), so the formats compare.
    count = size_mb * 1_000_000 // BYTES_PER_PRODUCT
    path = workdir / f"catalog-{size_mb}mb.{fmt}"
    print(f"[{size_mb} MB {fmt}] generating {count} products → {path}", file=sys.stderr)
    size = catalog_gen.write(path, fmt, catalog_gen.products(count, seed=size_mb))
    shop_id = f"bench-{size_mb}-{fmt}"
    with psycopg.connect(database_url) as conn:
        upsert_shops(conn, [parse_shop(catalog_gen.shop(fmt, str(path), id=shop_id), "bench")])
    results: dict[str, Any] = {"size_mb": size_mb, "format": fmt, "file_bytes": size,
                               "products": count}
    print(f"[{size_mb} MB {fmt}] raw parse", file=sys.stderr)
    if fmt == "json":
        results["ijson"] = _run_child("ijson", str(path), "products.item")
        print(f"[{size_mb} MB] plain ijson → COPY stream", file=sys.stderr)
        results["plain"] = _run_child("plain", database_url, str(path), "products.item")
    else:
        results["ijson"] = _run_child("orjson" if fmt == "jsonl" else "csv", str(path))
    print(f"[{size_mb} MB] collect, first load", file=sys.stderr)
    results["first"] = _run_child("collect", database_url, shop_id, str(workdir))
    print(f"[{size_mb} MB] collect, unchanged re-run (file digest)", file=sys.stderr)
    results["rerun"] = _run_child("collect", database_url, shop_id, str(workdir))
    print(f"[{size_mb} MB] collect, unchanged re-run, read in full", file=sys.stderr)
    with psycopg.connect(database_url) as conn:
        conn.execute("UPDATE shops SET source_etag = NULL WHERE id = %s", (shop_id,))
    results["rerun_full"] = _run_child("collect", database_url, shop_id, str(workdir))
    print(f"[{size_mb} MB] psql \\copy", file=sys.stderr)
    results["copy"] = psql_copy(database_url, shop_id, workdir)
    if naive:
        print(f"[{size_mb} MB] naive json.load + executemany", file=sys.stderr)
        results["naive"] = _run_child("naive", database_url, str(path))
    path.unlink()
    return results


PARSE_LIMIT = {"json": "raw ijson parse (parse limit)",
               "jsonl": "raw orjson parse per line (parse limit)",
               "csv": "raw csv.DictReader parse (parse limit)"}
NAIVE = {"json": "naive json.load + executemany",
         "jsonl": "naive json.loads per line into a list + executemany",
         "csv": "naive list(csv.DictReader) + executemany"}


def table(all_results: list[dict[str, Any]]) -> str:
    lines = [
        "| catalog | measurement | rows | seconds | rows/s | MB/s | CPU µs/row | peak RSS MB |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in all_results:
        mb = r["file_bytes"] / 1e6
        fmt = r.get("format", "json")
        for key, name in (("first", "our collect, first load"),
                          ("rerun", "our collect, unchanged re-run (same file: digest)"),
                          ("rerun_full", "our collect, unchanged re-run, read in full"),
                          ("ijson", PARSE_LIMIT[fmt]),
                          ("copy", "psql \\copy of the same rows (database limit)"),
                          ("plain", "plain ijson → COPY stream, no mapping/validation/delta"),
                          ("naive", NAIVE[fmt])):
            m = r.get(key)
            if m is None:
                continue
            rss = f"{m['peak_rss_mb']:.0f}" if "peak_rss_mb" in m else "–"
            # The Python process's own CPU (not the server's): what a row costs us.
            cpu = (f"{m['cpu_seconds'] / m['rows'] * 1e6:.0f}"
                   if "cpu_seconds" in m and m["rows"] else "–")
            lines.append(
                f"| {fmt} {mb:.0f} MB, {r['products']} products | {name} | {m['rows']} | "
                f"{m['seconds']:.1f} | {m['rows'] / m['seconds']:,.0f} | "
                f"{mb / m['seconds']:.1f} | {cpu} | {rss} |"
            )
    lines.append("")
    lines.append("| catalog | first load ÷ naive (≥ 1.0) | first load ÷ min(parse, database) "
                 "(≥ 0.4) | CPU per product ÷ parse's (≤ 2.5) | plain stream ÷ min(parse, "
                 "database) | re-run speed-up (digest) | re-run speed-up (in full) | "
                 "rows written by re-runs | RSS vs smallest |")
    lines.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    smallest = min(r["first"]["peak_rss_mb"] for r in all_results)
    for r in all_results:
        first = r["first"]["rows"] / r["first"]["seconds"]
        limit = min(r["ijson"]["rows"] / r["ijson"]["seconds"],
                    r["copy"]["rows"] / r["copy"]["seconds"])
        written = sum(r[k]["counts"][c] for k in ("rerun", "rerun_full")
                      for c in ("inserted", "updated", "gone"))
        plain = (f"{r['plain']['rows'] / r['plain']['seconds'] / limit:.2f}"
                 if "plain" in r else "–")
        naive = (f"{first / (r['naive']['rows'] / r['naive']['seconds']):.2f}"
                 if "naive" in r else "–")
        cpu = r["first"]["cpu_seconds"] / r["ijson"]["cpu_seconds"]
        lines.append(
            f"| {r.get('format', 'json')} {r['file_bytes'] / 1e6:.0f} MB | {naive} | "
            f"{first / limit:.2f} | {cpu:.2f} | {plain} | "
            f"{r['first']['seconds'] / r['rerun']['seconds']:.1f}× | "
            f"{r['first']['seconds'] / r['rerun_full']['seconds']:.2f}× | {written} | "
            f"{r['first']['peak_rss_mb'] / smallest:.2f}× |"
        )
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        kind, *args = sys.argv[2:]
        fn = {"collect": child_collect, "ijson": child_ijson, "naive": child_naive,
              "plain": child_plain, "orjson": child_orjson, "csv": child_csv}[kind]
        print("BENCH " + json.dumps(fn(*args)))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="100,300", help="catalog sizes in MB, comma-separated")
    parser.add_argument("--formats", default="json,jsonl,csv",
                        help="catalog formats, comma-separated (json, jsonl, csv)")
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--no-naive", action="store_true")
    parser.add_argument("--naive-max-mb", type=int, default=100,
                        help="run the naive peer only up to this size (it holds everything)")
    args = parser.parse_args()
    with ExitStack() as stack:
        url = args.database_url
        if url is None:
            from tests import fixtures_db

            folder = fixtures_db.find_pg_binaries(os.environ)
            if folder is None:
                raise SystemExit("no initdb/pg_ctl found: pass --database-url")
            url = stack.enter_context(fixtures_db.binaries_server(folder))
        from worker.common.db import migrate

        migrate(url)
        workdir = args.workdir or Path(stack.enter_context(tempfile.TemporaryDirectory(
            prefix="bench-collect-", dir="/tmp")))
        results = [
            measure(url, int(size), fmt, workdir,
                    naive=not args.no_naive and int(size) <= args.naive_max_mb)
            for size in args.sizes.split(",") for fmt in args.formats.split(",")
        ]
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, load average {os.getloadavg()}")
    print(table(results))
    print(json.dumps(results, indent=1), file=sys.stderr)


if __name__ == "__main__":
    main()
