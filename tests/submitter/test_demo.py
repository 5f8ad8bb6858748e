"""The demo end to end with the real worker: the sample shops, served from 127.0.0.1, the broken
one failing alone; a second run finds every source unchanged. And the README's command itself,
with its embedded PostgreSQL."""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from submitter.config import SubmitterConfig
from submitter.demo import BROKEN_SHOP, render_samples, run_demo
from submitter.shopfile import read_shop_file

SAMPLES = ("seoul-fashion", "busan-market", "daegu-books", "pangyo-tech", "seongsu-apparel",
           BROKEN_SHOP)


def latest(conn: psycopg.Connection, run_id: str) -> dict[tuple[str, str], tuple]:
    rows = conn.execute(
        """SELECT DISTINCT ON (shop_id, task) shop_id, task, status, exit_code, rows_in,
                  counts->>'note', attempt
           FROM task_runs WHERE run_id = %s ORDER BY shop_id, task, started_at DESC, id DESC""",
        (run_id,),
    ).fetchall()
    conn.commit()
    return {(r[0], r[1]): r[2:] for r in rows}


def test_the_samples_render_to_valid_shops_and_stable_bytes(tmp_path: Path) -> None:
    shops_file = render_samples(tmp_path / "www", "http://127.0.0.1:1234")
    shops = read_shop_file(shops_file)
    assert [s.id for s in shops] == list(SAMPLES)
    assert {s.format for s in shops} == {"json", "jsonl", "csv", "xml"}
    catalog = tmp_path / "www" / "catalogs" / "seoul-fashion.json.gz"
    assert catalog.read_bytes()[:2] == b"\x1f\x8b"
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in (tmp_path / "www").rglob("*")
              if p.is_file()}
    render_samples(tmp_path / "www", "http://127.0.0.1:1234")
    after = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in before}
    assert after == before  # unchanged files are not rewritten: Last-Modified stays, a 304 follows
    csv = (tmp_path / "www" / "catalogs" / "daegu-books.csv").read_bytes()
    assert "상품코드".encode("cp949") in csv and b"http://127.0.0.1:1234/images/book.png" in csv


def test_the_demo_runs_the_night_and_the_broken_shop_fails_alone(
    database_url: str, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    out = io.StringIO()
    code = run_demo(SubmitterConfig(database_url=database_url), home=home, parallel=2, out=out)
    text = out.getvalue()
    with psycopg.connect(database_url) as conn:
        run_id = conn.execute("SELECT id FROM runs ORDER BY created_at DESC LIMIT 1").fetchone()[0]
        first = latest(conn, run_id)
        frozen = [r[0] for r in conn.execute(
            "SELECT shop_id FROM run_shops WHERE run_id = %s ORDER BY idx", (run_id,))]
    assert frozen == sorted(SAMPLES)
    assert first[(BROKEN_SHOP, "collect")][:2] == ("failed", 65)
    assert (BROKEN_SHOP, "feed") not in first and (BROKEN_SHOP, "images") not in first
    for shop in SAMPLES[:-1]:
        for task in ("collect", "feed", "images"):
            assert first[(shop, task)][0] == "succeeded", (shop, task, text)
    assert first[("busan-market", "collect")][2] == 4  # its bad row is rejected, the rest loaded
    assert "as intended: shop 'broken-export' serves an HTML error page" in text
    assert "the response is not json but an HTML page" in text
    assert list((home / "out" / "images").rglob("*.jpg"))
    assert f"feeds ({len([p for p in (home / 'out' / 'feeds').rglob('*') if p.is_file()])} files)" \
        in text
    assert code == 0 and "UNEXPECTED" not in text

    # The second night: the same port, so the same URLs; every source answers 304.
    port = json.loads((home / "demo.json").read_text())["port"]
    out2 = io.StringIO()
    code2 = run_demo(SubmitterConfig(database_url=database_url), home=home, parallel=2, out=out2)
    assert code2 == 0 and "UNEXPECTED" not in out2.getvalue(), out2.getvalue()
    assert f"served from http://127.0.0.1:{port}" in out2.getvalue()
    # The first night gave the five good shops a history: tonight they share one child, while
    # the broken one (no success yet) runs alone.
    assert "6 shops in 2 children" in out2.getvalue()
    assert ("bundle of 5: busan-market+daegu-books+pangyo-tech+seongsu-apparel +1 more"
            in out2.getvalue())
    with psycopg.connect(database_url) as conn:
        run2 = conn.execute("SELECT id FROM runs ORDER BY created_at DESC LIMIT 1").fetchone()[0]
        second = latest(conn, run2)
    assert run2 != run_id
    for shop in SAMPLES[:-1]:
        assert second[(shop, "collect")][0] == "succeeded"
        assert second[(shop, "collect")][3] == "unchanged source", shop
        assert second[(shop, "feed")][0] == "succeeded", (shop, out2.getvalue())
    # processed images are linked at the demo server's public address of the output folder
    feed_text = b"".join(
        gzip.decompress(p.read_bytes()) if p.suffix == ".gz" else p.read_bytes()
        for p in (home / "out" / "feeds").rglob("google.*") if "manifest" not in p.name
    )
    assert f"http://127.0.0.1:{port}/out/images/".encode() in feed_text
    assert second[(BROKEN_SHOP, "collect")][:2] == ("failed", 65)


@pytest.mark.slow
def test_the_readme_command_brings_its_own_database(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DATABASE_SECRET_ARN")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    proc = subprocess.run(
        [sys.executable, "-m", "submitter", "demo", "--dir", str(tmp_path / "cb"), "--parallel", "2"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240,
    )
    assert f"database: embedded PostgreSQL in {tmp_path / 'cb' / 'pgdata'}" in proc.stdout, \
        proc.stderr[-2000:]
    assert "shop broken-export: exit 65" in proc.stdout
    assert (tmp_path / "cb" / "pgdata" / "PG_VERSION").exists()
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "UNEXPECTED" not in proc.stdout
    assert list((tmp_path / "out" / "feeds").rglob("*.manifest.json"))  # ./out by default
