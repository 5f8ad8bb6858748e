"""A recorded night for the report's tests: two runs of four shops, as the workers would have left
them in the database (task rows, rejects, feed publications), with hostile shop data."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import psycopg

from tests.fixtures_shops import make_shop

HOSTILE = "<script>document.title='pwned'</script><img src=x onerror=\"document.title='img'\">"
PREVIOUS, TONIGHT = "2026-11-30-local1", "2026-12-01-local1"
SHOPS = ("alpha", "bravo", "charlie", "delta")


def _task(conn: psycopg.Connection, run_id: str, shop: str, idx: int, task: str, status: str, *,
          at: dt.datetime, seconds: float, rows_in: int = 0, rows_out: int = 0,
          rejected: int = 0, counts: dict[str, Any] | None = None, error: str | None = None,
          exit_code: int | None = None, attempt: int = 1) -> int:
    row = conn.execute(
        """INSERT INTO task_runs (run_id, shop_id, task, array_index, job_id, attempt, started_at,
               finished_at, status, exit_code, rows_in, rows_out, rows_rejected, bytes,
               duration_s, counts, error)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
           RETURNING id""",
        (run_id, shop, task, idx, f"job-{run_id}-{task}:{idx}", attempt, at,
         at + dt.timedelta(seconds=seconds), status,
         exit_code if exit_code is not None else (0 if status == "succeeded" else 65),
         rows_in, rows_out, rejected, rows_out * 100, seconds, json.dumps(counts or {}), error),
    ).fetchone()
    assert row is not None
    return int(row[0])


def _publish(conn: psycopg.Connection, run_id: str, shop: str, channel: str, rows: int,
             at: dt.datetime) -> None:
    conn.execute(
        """INSERT INTO feed_publications (shop_id, channel, run_id, key, rows, bytes, sha256,
               data_as_of, published_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)""",
        (shop, channel, run_id, f"feeds/{shop}/{channel}.xml.gz", rows, rows * 90, "0" * 64, at,
         at),
    )


def make_night(conn: psycopg.Connection, log_dir: Path) -> dict[str, Any]:
    """Two local runs; tonight: alpha ok, bravo's feed shrank near its gate, charlie's collect
    failed (its log file is in ``log_dir``), delta skipped an unchanged source."""
    for shop in SHOPS:
        make_shop(conn, id=shop, name=f"{shop.title()} {HOSTILE}", channels=["google", "meta"])
    base = dt.datetime(2026, 11, 30, 18, 0, tzinfo=dt.UTC)
    for day, run_id in enumerate((PREVIOUS, TONIGHT)):
        at = base + dt.timedelta(days=day)
        conn.execute("INSERT INTO runs (id, run_date, shop_count, kind, created_at) "
                     "VALUES (%s, %s, %s, 'local', %s)", (run_id, at.date(), len(SHOPS), at))
        for idx, shop in enumerate(SHOPS):
            conn.execute("INSERT INTO run_shops (run_id, idx, shop_id, child) "
                         "VALUES (%s, %s, %s, %s)", (run_id, idx, shop, idx))
    # the previous night: everything published, a few rejects
    at = base + dt.timedelta(minutes=1)
    for idx, shop in enumerate(SHOPS):
        _task(conn, PREVIOUS, shop, idx, "collect", "succeeded", at=at, seconds=10, rows_in=100,
              rows_out=100, rejected=1, counts={"inserted": 100})
        _task(conn, PREVIOUS, shop, idx, "feed", "succeeded", at=at, seconds=3, rows_in=100,
              rows_out=200)
        _task(conn, PREVIOUS, shop, idx, "images", "succeeded", at=at, seconds=5, rows_in=100,
              rows_out=100)
        for channel in ("google", "meta"):
            _publish(conn, PREVIOUS, shop, channel, 100, at + dt.timedelta(minutes=5))
    # tonight
    at = base + dt.timedelta(days=1, minutes=1)
    feed_counts = {"channels": {"google": {"rows": 90, "excluded": 6,
                                           "rejected": {"invalid gtin check digit": 4}, "bytes": 9000,
                                           "unchanged": False},
                                "meta": {"rows": 97, "excluded": 1, "rejected": 2, "bytes": 8000,
                                         "unchanged": False}}}
    _task(conn, TONIGHT, "alpha", 0, "collect", "succeeded", at=at, seconds=40, rows_in=102,
          rows_out=100, rejected=2,
          counts={"inserted": 3, "updated": 7, "gone": 3, "unchanged": 90, "returned": 0})
    feed_id = _task(conn, TONIGHT, "alpha", 0, "feed", "succeeded", at=at, seconds=12,
                    rows_in=100, rows_out=187, rejected=6, counts=feed_counts)
    _task(conn, TONIGHT, "alpha", 0, "images", "succeeded", at=at, seconds=30, rows_in=100,
          rows_out=99, rejected=1, counts={"outcomes": {"ok": 20, "unchanged": 79, "corrupt": 1}})
    _publish(conn, TONIGHT, "alpha", "google", 90, at + dt.timedelta(minutes=5))
    _publish(conn, TONIGHT, "alpha", "meta", 97, at + dt.timedelta(minutes=5))
    for n in range(5):
        conn.execute(
            """INSERT INTO rejects (task_run_id, run_id, shop_id, task, channel, position,
                   product_id, field, reason, excerpt) VALUES (%s, %s, 'alpha', 'feed', 'google',
                   %s, %s, 'gtin', 'invalid gtin check digit', %s)""",
            (feed_id, TONIGHT, str(n), f"p{n}" if n else HOSTILE, HOSTILE),
        )
    conn.execute(
        """INSERT INTO rejects (task_run_id, run_id, shop_id, task, channel, product_id, field,
               reason) VALUES (%s, %s, 'alpha', 'feed', 'meta', 'p9', 'image_link',
               'missing image_link')""", (feed_id, TONIGHT))
    _task(conn, TONIGHT, "bravo", 1, "collect", "succeeded", at=at, seconds=25, rows_in=70,
          rows_out=70, counts={"gone": 30, "unchanged": 70})
    _task(conn, TONIGHT, "bravo", 1, "feed", "succeeded", at=at, seconds=4, rows_in=70,
          rows_out=140,
          counts={"channels": {"google": {"rows": 75, "excluded": 0, "rejected": 0, "bytes": 1},
                               "meta": {"rows": 75, "excluded": 0, "rejected": 0, "bytes": 1}}})
    _task(conn, TONIGHT, "bravo", 1, "images", "succeeded", at=at, seconds=2, rows_in=70,
          rows_out=70)
    _publish(conn, TONIGHT, "bravo", "google", 75, at + dt.timedelta(minutes=5))
    _publish(conn, TONIGHT, "bravo", "meta", 75, at + dt.timedelta(minutes=5))
    error = f"shop charlie, source https://charlie.example/export.json: {HOSTILE} is not JSON"
    _task(conn, TONIGHT, "charlie", 2, "collect", "failed", at=at, seconds=3, error=error,
          attempt=2, exit_code=65)
    log = log_dir / TONIGHT / "collect-00002-attempt2.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(json.dumps({"event": "task.failed", "error": error}) + "\n", encoding="utf-8")
    for task, seconds in (("collect", 1.0), ("feed", 2.0), ("images", 1.0)):
        _task(conn, TONIGHT, "delta", 3, task, "succeeded", at=at, seconds=seconds,
              counts={"note": "unchanged source"} if task == "collect" else {})
    conn.commit()
    return {"previous": PREVIOUS, "tonight": TONIGHT, "failed_log": log}
