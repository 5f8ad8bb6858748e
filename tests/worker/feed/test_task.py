"""The feed task through the router: publish to a folder, manifests, the publish gate, the summary EP
across runs, an unchanged feed left alone, and a process killed mid-feed."""

from __future__ import annotations

import gzip
import hashlib
import json
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.catalogs import edge_catalog, generate_products, insert_products, product
from tests.fixtures_shops import make_shop
from worker.common.errors import EXIT_DATAERR, EXIT_OK
from worker.common.settings import Settings
from worker.router import run_task


def run_feed(settings_env: dict[str, str], **extra: str) -> int:
    return run_task("feed", Settings.from_env({**settings_env, "SHOP_ID": "shop-a", **extra}))


def manifest(out: Path, channel: str) -> dict[str, Any]:
    return json.loads((out / "feeds" / "shop-a" / f"{channel}.manifest.json").read_text())


def last_task_run(conn: psycopg.Connection) -> tuple[Any, ...]:
    row = conn.execute(
        "SELECT status, exit_code, rows_in, rows_out, rows_rejected, bytes, counts, error"
        " FROM task_runs WHERE task = 'feed' ORDER BY id DESC LIMIT 1"
    ).fetchone()
    conn.commit()
    assert row is not None
    return row


def test_feed_publishes_every_channel_with_a_manifest_and_records_rejects(
    conn: psycopg.Connection, settings_env: dict[str, str]
) -> None:
    channels = ["google", "google_tsv", "meta", "naver", "naver_summary"]
    make_shop(conn, id="shop-a", channels=channels)
    insert_products(conn, "shop-a", edge_catalog())
    assert run_feed(settings_env, RUN_ID="") == EXIT_OK
    out = Path(settings_env["OUTPUT_URL"]) / "feeds" / "shop-a"
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["google.xml.gz", "google_tsv.tsv.gz", "meta.csv.gz", "naver.tsv", "naver_summary.tsv"]
        + [f"{c}.manifest.json" for c in channels]
    )
    google = manifest(out.parent.parent, "google")
    data = (out / "google.xml.gz").read_bytes()
    assert google["sha256"] == hashlib.sha256(data).hexdigest()
    assert google["bytes"] == len(data)
    assert google["key"] == "feeds/shop-a/google.xml.gz" and google["compression"] == "gzip"
    assert gzip.decompress(data).count(b"<item>") == google["rows"] == 33
    assert google["rejected"]["price is zero"] == 1 and google["rejected_total"] == 5
    assert google["dropped"] == {
        "gtin check digit is wrong": 1, "gtin has a restricted-circulation or coupon prefix": 1,
        "shipping_cost is negative (paid on delivery): no price to send": 1,
    }
    assert google["generated_at"] and google["data_as_of"]
    naver = manifest(out.parent.parent, "naver")
    assert naver["compression"] is None and naver["excluded"] == 2
    status, code, rows_in, rows_out, rejected, nbytes, counts, error = last_task_run(conn)
    assert (status, code, error) == ("succeeded", 0, None)
    assert rows_in == len(edge_catalog()) - 2  # the two gone ones are news to nobody yet
    assert rows_out == sum(manifest(out.parent.parent, c)["rows"] for c in channels)
    assert counts["channels"]["meta"]["rejected"]["none of brand, gtin, mpn is given"] == 1
    assert nbytes == sum(manifest(out.parent.parent, c)["bytes"] for c in channels)
    recorded = conn.execute(
        "SELECT channel, reason, product_id FROM rejects WHERE task = 'feed' AND channel = 'naver'"
        " AND outcome = 'excluded' ORDER BY product_id"
    ).fetchall()
    excluded = conn.execute("SELECT count(*) FROM rejects WHERE outcome = 'excluded'").fetchone()
    assert (rejected,) == excluded
    assert [r[2] for r in recorded] == ["A-007", "A-020", "A-021", "A-023", "A-026", "A-039",
                                        "상품-040"]
    assert recorded[0][1] == "price is in USD, Naver takes KRW only"
    published = conn.execute(
        "SELECT channel, rows FROM feed_publications WHERE shop_id = 'shop-a' ORDER BY channel"
    ).fetchall()
    assert [c for c, _ in published] == sorted(channels)


def test_publish_gate_refuses_a_big_drop_keeps_the_old_feed_and_yields_to_force(
    conn: psycopg.Connection, settings_env: dict[str, str]
) -> None:
    make_shop(conn, id="shop-a", channels=["google", "naver"])
    insert_products(conn, "shop-a", [product(f"P{i}") for i in range(10)])
    assert run_feed(settings_env) == EXIT_OK
    root = Path(settings_env["OUTPUT_URL"])
    feed = root / "feeds" / "shop-a" / "google.xml.gz"
    before = (feed.read_bytes(), manifest(root, "google"), manifest(root, "naver"))
    assert before[1]["rows"] == 10

    conn.execute("UPDATE products SET gone_at = now() WHERE product_id IN ('P0','P1','P2','P3')")
    conn.commit()
    assert run_feed(settings_env) == EXIT_DATAERR
    status, code, *_, error = last_task_run(conn)
    assert (status, code) == ("failed", 65)
    assert "publish gate" in error and "6 rows against 10" in error and "CATALOG_FORCE" in error
    assert "google:" in error and "naver:" in error
    assert (feed.read_bytes(), manifest(root, "google"), manifest(root, "naver")) == before

    # A drop within the share (10 → 7 would be fine); a forced run publishes the 6.
    assert run_feed(settings_env, CATALOG_FORCE="1") == EXIT_OK
    assert manifest(root, "google")["rows"] == 6
    assert gzip.decompress(feed.read_bytes()).count(b"<item>") == 6


def test_an_unchanged_feed_is_not_rewritten_but_its_manifest_is(
    conn: psycopg.Connection, settings_env: dict[str, str]
) -> None:
    make_shop(conn, id="shop-a", channels=["meta"])
    insert_products(conn, "shop-a", [product(f"P{i}") for i in range(3)])
    assert run_feed(settings_env, RUN_ID="") == EXIT_OK
    root = Path(settings_env["OUTPUT_URL"])
    feed = root / "feeds" / "shop-a" / "meta.csv.gz"
    first = (feed.stat().st_ino, manifest(root, "meta"))
    assert first[1]["unchanged"] is False
    assert run_feed(settings_env) == EXIT_OK
    second = manifest(root, "meta")
    assert feed.stat().st_ino == first[0]  # not replaced: its ETag / Last-Modified hold
    assert second["unchanged"] is True and second["sha256"] == first[1]["sha256"]
    conn.execute("UPDATE products SET title = 'New title' WHERE product_id = 'P1'")
    conn.commit()
    assert run_feed(settings_env) == EXIT_OK
    assert manifest(root, "meta")["unchanged"] is False
    assert b"New title" in gzip.decompress(feed.read_bytes())


def summary_rows(root: Path) -> dict[str, str]:
    lines = (root / "feeds" / "shop-a" / "naver_summary.tsv").read_text().splitlines()[1:]
    return {line.split("\t")[0]: line.split("\t")[-2] for line in lines}


def test_summary_ep_follows_inserts_updates_and_deletions_between_runs(
    conn: psycopg.Connection, settings_env: dict[str, str]
) -> None:
    make_shop(conn, id="shop-a", channels=["naver", "naver_summary"])
    now = datetime.now(UTC)
    insert_products(
        conn, "shop-a",
        [product(f"P{i}", first_seen_at=now, changed_at=now) for i in range(1, 6)],
    )
    root = Path(settings_env["OUTPUT_URL"])
    assert run_feed(settings_env) == EXIT_OK
    # Nothing published before: every live product is new.
    assert summary_rows(root) == {f"P{i}": "I" for i in range(1, 6)}

    # Between two nights, as collect records it: one new, one changed, one gone, one sold out.
    conn.execute("UPDATE products SET price = 15000, changed_at = now() WHERE product_id = 'P2'")
    conn.execute("UPDATE products SET gone_at = now() WHERE product_id = 'P3'")
    conn.execute(
        "UPDATE products SET availability = 'out_of_stock', changed_at = now()"
        " WHERE product_id = 'P4'"
    )
    conn.commit()
    later = datetime.now(UTC)
    insert_products(conn, "shop-a", [product("P6", first_seen_at=later, changed_at=later)])
    assert run_feed(settings_env) == EXIT_OK
    assert summary_rows(root) == {"P2": "U", "P3": "D", "P4": "D", "P6": "I"}
    full = (root / "feeds" / "shop-a" / "naver.tsv").read_text()
    assert "P3\t" not in full and "P4\t" not in full and "P6\t" in full

    # A night without changes: an empty summary (a header), and no publish gate on it.
    assert run_feed(settings_env) == EXIT_OK
    assert summary_rows(root) == {}
    assert manifest(root, "naver_summary")["rows"] == 0


@pytest.mark.slow
def test_a_process_killed_mid_feed_leaves_the_previous_feed_and_manifest(
    conn: psycopg.Connection, settings_env: dict[str, str], tmp_path: Path
) -> None:
    make_shop(conn, id="shop-a", channels=["google", "naver"])
    insert_products(conn, "shop-a", [product(f"A{i}") for i in range(5)])
    assert run_feed(settings_env) == EXIT_OK
    root = Path(settings_env["OUTPUT_URL"])
    folder = root / "feeds" / "shop-a"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}

    generate_products(conn, "shop-a", 60_000)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    env = {**settings_env, "SHOP_ID": "shop-a", "TMPDIR": str(scratch)}
    process = subprocess.Popen(
        [sys.executable, "-m", "worker", "feed"], env=env, cwd=Path(__file__).parents[3],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        # Kill it once it has written part of a new feed to its temporary folder.
        deadline = time.monotonic() + 120
        while not any(p.is_file() and p.stat().st_size > 0 for p in scratch.rglob("*.tsv")):
            assert process.poll() is None, process.stderr.read().decode()  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "the feed never started writing"
            time.sleep(0.005)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
        process.stderr.close()  # type: ignore[union-attr]
    assert process.returncode == -signal.SIGKILL
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]
    assert manifest(root, "google")["rows"] == 5
    # The killed attempt published nothing and recorded no publication.
    assert conn.execute("SELECT count(*) FROM feed_publications").fetchone() == (2,)
    # A later attempt finishes the job (the gate sees growth, not a drop).
    assert run_feed(settings_env) == EXIT_OK
    assert manifest(root, "google")["rows"] == 60_005


def test_a_channel_that_excluded_every_item_is_not_published_the_others_are(
    conn: psycopg.Connection, settings_env: dict[str, str]
) -> None:
    make_shop(conn, id="shop-a", channels=["google", "naver"])
    insert_products(conn, "shop-a", [product(f"P{i}") for i in range(3)])
    assert run_feed(settings_env) == EXIT_OK
    root = Path(settings_env["OUTPUT_URL"])
    naver_before = (manifest(root, "naver"), (root / "feeds/shop-a/naver.tsv").read_bytes())
    # Every product now in dollars: Naver takes KRW only, so it would publish an empty EP.
    conn.execute("UPDATE products SET currency = 'USD'")
    conn.commit()
    assert run_feed(settings_env) == EXIT_OK
    assert (manifest(root, "naver"), (root / "feeds/shop-a/naver.tsv").read_bytes()) == naver_before
    assert manifest(root, "google")["rows"] == 3 and "USD" in str(
        gzip.decompress((root / "feeds/shop-a/google.xml.gz").read_bytes()))
    status, code, *_, counts, error = last_task_run(conn)
    assert (status, code, error) == ("succeeded", 0, None)
    failed = counts["failed_channels"]["naver"]
    assert failed["rejected"] == {"price is in USD, Naver takes KRW only": 3}
    assert "every one of the shop's 3 live products was excluded" in failed["problem"]
    assert "naver" not in counts["channels"]


def test_no_channel_publishable_exits_65_naming_the_top_reasons_and_keeps_the_feeds(
    conn: psycopg.Connection, settings_env: dict[str, str]
) -> None:
    make_shop(conn, id="shop-a", channels=["google", "meta"])
    insert_products(conn, "shop-a", [product(f"P{i}") for i in range(4)])
    assert run_feed(settings_env) == EXIT_OK
    root = Path(settings_env["OUTPUT_URL"])
    folder = root / "feeds" / "shop-a"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    # A broken mapping: every link points at the shop's private network.
    conn.execute("UPDATE products SET link = 'http://10.0.0.7/p/' || product_id")
    conn.commit()
    assert run_feed(settings_env) == EXIT_DATAERR
    status, code, *_, error = last_task_run(conn)
    assert (status, code) == ("failed", 65)
    assert "no channel could be published" in error and "google:" in error and "meta:" in error
    assert "link host is a private address, which a platform cannot fetch (4)" in error
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    # Each excluded item is on record, with its channel, field and reason.
    rows = conn.execute(
        "SELECT channel, product_id, field, outcome FROM rejects WHERE task = 'feed'"
        " ORDER BY channel, product_id"
    ).fetchall()
    assert rows == [(c, f"P{i}", "link", "excluded") for c in ("google", "meta") for i in range(4)]


def test_the_summary_counts_excluded_items_and_dropped_attributes_by_reason(
    conn: psycopg.Connection, settings_env: dict[str, str]
) -> None:
    make_shop(conn, id="shop-a", channels=["google", "naver"])
    insert_products(conn, "shop-a", [
        product("P1", gtin="4006381333932"),  # wrong check digit: dropped everywhere
        product("P2", naver_category="12"),  # Naver: dropped
        product("P3", price=Decimal("0")),  # excluded everywhere
        product("P4"),
    ])
    assert run_feed(settings_env, RUN_ID="") == EXIT_OK
    *_, counts, _ = last_task_run(conn)
    assert counts["channels"]["google"]["dropped"] == {"gtin check digit is wrong": 1}
    assert counts["channels"]["naver"]["dropped"] == {
        "gtin check digit is wrong": 1, "naver_category is not an 8-digit Naver category id": 1,
    }
    assert counts["channels"]["naver"]["rejected"] == {"price is zero": 1}
    assert counts["dropped_by_channel"]["naver"]["gtin check digit is wrong"] == 1
    assert counts["rejected_by_channel"]["google"] == {"price is zero": 1}
    recorded = conn.execute(
        "SELECT channel, product_id, field, outcome, reason FROM rejects WHERE task = 'feed'"
        " ORDER BY channel, outcome, product_id"
    ).fetchall()
    assert [r[:4] for r in recorded] == [
        ("google", "P1", "gtin", "dropped"), ("google", "P3", "price", "excluded"),
        ("naver", "P1", "gtin", "dropped"), ("naver", "P2", "naver_category", "dropped"),
        ("naver", "P3", "price", "excluded"),
    ]


def test_a_summary_alone_is_no_published_feed(
    conn: psycopg.Connection, settings_env: dict[str, str]
) -> None:
    make_shop(conn, id="shop-a", channels=["naver", "naver_summary"])
    insert_products(conn, "shop-a", [product(f"P{i}", currency="USD") for i in range(2)])
    assert run_feed(settings_env) == EXIT_DATAERR
    status, code, *_, error = last_task_run(conn)
    assert (status, code) == ("failed", 65) and "naver: every one" in error
    assert not (Path(settings_env["OUTPUT_URL"]) / "feeds" / "shop-a").exists()
