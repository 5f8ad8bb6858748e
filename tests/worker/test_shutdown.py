"""Clean shutdown and lost rows: a real worker given SIGTERM mid-collect or mid-feed rolls back,
records its row 'interrupted' with the signal, frees the shop's lock and exits 75; a row whose
process died without a word is marked 'lost' by the next attempt."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg

from tests.fixtures_http import Route, serve
from tests.fixtures_shops import make_shop
from worker.common import db

ROOT = Path(__file__).resolve().parents[2]


def _catalog(count: int, price: int) -> bytes:
    return b"".join(
        json.dumps({"product_id": f"p{i:05d}", "title": f"Tea {i}", "price": str(price),
                    "link": f"https://shop.example/p{i}",
                    "image_link": f"https://shop.example/p{i}.jpg"}).encode() + b"\n"
        for i in range(count)
    )


def _start(env: dict[str, str], task: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "worker", task], env={**env, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def _wait_for(predicate, what: str, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"never saw {what}"
        time.sleep(0.005)


def _products(conn: psycopg.Connection) -> list[tuple]:
    rows = conn.execute("SELECT * FROM products ORDER BY shop_id, product_id").fetchall()
    conn.commit()
    return rows


def _latest_row(conn: psycopg.Connection, task: str) -> tuple:
    row = conn.execute(
        "SELECT status, exit_code, counts->>'signal', error FROM task_runs WHERE task = %s "
        "ORDER BY id DESC LIMIT 1", (task,)).fetchone()
    conn.commit()
    assert row is not None
    return row


def _advisory_locks(conn: psycopg.Connection) -> int:
    (n,) = conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'").fetchone()
    conn.commit()
    return int(n)


def test_sigterm_mid_collect_rolls_back_and_records_interrupted(conn, settings_env):
    stall = threading.Event()
    route = Route(body=_catalog(50, 1000))
    with serve({"/catalog.jsonl": route}) as server:
        make_shop(conn, id="s1", source_url=server.url("/catalog.jsonl"))
        conn.commit()
        env = {**settings_env, "SHOP_ID": "s1"}
        first = _start(env, "collect")
        assert first.communicate(timeout=120) and first.returncode == 0
        before = _products(conn)
        assert len(before) == 50
        # Tonight's export: other prices, many more products, and the server stalls half-way.
        body = _catalog(40_000, 2000)
        route.body, route.stall_after, route.stall = body, len(body) // 2, stall
        worker = _start(env, "collect")
        try:
            def copying() -> bool:
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                    "'catalog-batch' AND query ILIKE 'COPY%%' AND state = 'active'").fetchone()
                conn.commit()
                return bool(row and row[0])

            _wait_for(copying, "the collect's COPY into staging")
            worker.send_signal(signal.SIGTERM)
            output, _ = worker.communicate(timeout=5)
            assert worker.returncode == 75
        finally:
            stall.set()
            if worker.poll() is None:
                worker.kill()
                worker.communicate()
    assert _products(conn) == before
    status, code, signame, error = _latest_row(conn, "collect")
    assert (status, code, signame) == ("interrupted", 75, "SIGTERM")
    assert "interrupted by SIGTERM" in error
    assert _advisory_locks(conn) == 0
    summary = [json.loads(line) for line in output.splitlines() if '"task.summary"' in line]
    assert [s["status"] for s in summary] == ["interrupted"]


def _insert_products(conn: psycopg.Connection, shop_id: str, count: int) -> None:
    conn.execute(
        """
        INSERT INTO products (shop_id, product_id, title, description, link, image_link, price,
                              currency, brand, content_hash)
        SELECT %s, 'p' || i, 'Green tea ' || i, 'Leaves from Jeju, batch ' || i,
               'https://shop.example/p' || i, 'https://shop.example/p' || i || '.jpg',
               1000 + i, 'KRW', 'Jeju', '\\x00'::bytea
        FROM generate_series(1, %s) AS i
        """,
        (shop_id, count),
    )
    conn.commit()


def _published(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_sigterm_mid_feed_publishes_nothing_and_leaves_no_temp_files(conn, settings_env, tmp_path):
    make_shop(conn, id="s1", channels=["google", "meta"])
    conn.commit()
    _insert_products(conn, "s1", 40_000)
    env = {**settings_env, "SHOP_ID": "s1"}
    first = _start(env, "feed")
    assert first.communicate(timeout=300) and first.returncode == 0
    out = Path(settings_env["OUTPUT_URL"])
    before = _published(out)
    assert any(key.endswith("google.xml.gz") or "google" in key for key in before)
    conn.execute("UPDATE products SET title = title || ' (new season)', changed_at = now()")
    conn.commit()
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    worker = _start({**env, "TMPDIR": str(scratch)}, "feed")
    try:
        _wait_for(lambda: any(p.is_file() for p in scratch.glob("feed-*/*")),
                  "the feed's files being written")
        worker.send_signal(signal.SIGTERM)
        worker.communicate(timeout=5)
        assert worker.returncode == 75
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.communicate()
    assert _published(out) == before
    assert list(scratch.iterdir()) == []
    status, code, signame, _ = _latest_row(conn, "feed")
    assert (status, code, signame) == ("interrupted", 75, "SIGTERM")
    assert _advisory_locks(conn) == 0


def test_the_next_attempt_marks_a_dead_attempts_running_row_lost(conn, settings_env):
    make_shop(conn, id="s1", channels=[])
    conn.execute("INSERT INTO task_runs (shop_id, task, attempt) VALUES ('s1', 'feed', 1)")
    conn.commit()
    proc = subprocess.run([sys.executable, "-m", "worker", "feed"],
                          env={**settings_env, "SHOP_ID": "s1", "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout
    rows = conn.execute("SELECT attempt, status, error FROM task_runs ORDER BY id").fetchall()
    assert [(a, s) for a, s, _ in rows] == [(1, "lost"), (1, "succeeded")]
    assert "found by the next attempt" in rows[0][2]


def test_a_running_row_whose_lock_is_held_is_left_alone(conn, settings_env, database_url):
    make_shop(conn, id="s1", channels=[])
    conn.execute("INSERT INTO task_runs (shop_id, task) VALUES ('s1', 'feed')")
    conn.commit()
    with psycopg.connect(database_url, autocommit=True) as holder:
        # a live attempt holds the shop's feed lock for as long as its row is running
        holder.execute("SELECT pg_advisory_lock(%s)", (db.shop_lock_key("s1", "feed"),))
        proc = subprocess.run(
            [sys.executable, "-m", "worker", "feed"],
            env={**settings_env, "SHOP_ID": "s1", "SHOP_LOCK_TIMEOUT": "1",
                 "PYTHONPATH": str(ROOT)},
            capture_output=True, text=True, timeout=120)
    assert proc.returncode == 75
    rows = conn.execute("SELECT status, exit_code FROM task_runs ORDER BY id").fetchall()
    assert rows == [("running", None), ("failed", 75)]
