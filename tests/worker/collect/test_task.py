"""The collect task end to end against a real PostgreSQL: every format, the delta and its counts,
the gates, the lock, conditional GET, and failures that must leave the shop's products untouched."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from structlog.testing import capture_logs

from tests import catalogs as catalog_gen
from tests.fixtures_http import Route, serve
from tests.worker.collect.conftest import (
    products_table,
    register,
    rejects_table,
    write_catalog,
)
from worker.common.db import shop_lock_key
from worker.common.errors import ConfigError, FatalError, TransientError
from worker.common.settings import Settings
from worker.router import run_task

N = 30


@pytest.mark.parametrize(
    ("fmt", "write_options"),
    [("json", {}), ("json", {"gzip": True}), ("jsonl", {}), ("jsonl", {"gzip": True}),
     ("csv", {}), ("csv", {"encoding": "cp949"}), ("csv", {"bom": True}), ("xml", {}),
     ("xml", {"gzip": True})],
)
def test_every_format_loads_the_same_products(
    conn: psycopg.Connection, run_collect: Any, tmp_path: Path, fmt: str,
    write_options: dict[str, Any],
) -> None:
    path = write_catalog(tmp_path / "catalog", fmt, count=N, **write_options)
    options = {"encoding": "cp949"} if write_options.get("encoding") else {}
    register(conn, fmt, path, format_options={**catalog_gen.FORMAT_OPTIONS[fmt], **options})
    result, sink = run_collect()
    assert sink.count == 0, sink.summary()
    assert (result.rows_in, result.rows_out, result.rows_rejected) == (N, N, 0)
    assert result.bytes == path.stat().st_size
    assert result.counts["inserted"] == N and result.counts["compressed"] is bool(
        write_options.get("gzip"))
    rows = products_table(conn)
    source = list(catalog_gen.products(N))[1]
    row = rows[source["sku"]]
    assert row["title"] == f"{source['brand']} {source['name']}"
    assert row["price"] == source["price"]["amount"] and row["currency"] == "KRW"
    assert row["link"] == source["url"] and row["image_link"] == source["images"][0]
    assert row["additional_image_links"] == source["images"][1:]
    assert row["product_type"] == " > ".join(source["category"])
    assert row["availability"] == ("in_stock" if source["stock"] == "Y" else "out_of_stock")
    assert row["gtin"] == source["gtin"]
    assert "options" in row["extra"]  # unmapped, kept
    assert row["gone_at"] is None and row["changed_at"] == row["first_seen_at"]
    # Every optional field, on every product, stored exactly as the source said.
    for item in catalog_gen.products(N):
        stored = rows[item["sku"]]
        assert stored["description"] == item["desc"] and stored["brand"] == item["brand"]
        assert stored["sale_price"] == item["sale_price"]
        assert {f: stored[f] for f in catalog_gen.OPTIONAL_SOURCES} == expected_optional(item)


CONDITIONS = {"new": "new", "신상품": "new", "중고": "used", "리퍼": "refurbished"}


def expected_optional(item: dict[str, Any]) -> dict[str, Any]:
    """What collect must store for the generator's optional fields, written out by hand."""
    def moment(text: str) -> datetime | None:
        return datetime.fromisoformat(text) if text else None

    return {
        "mobile_link": item["mobile_url"], "mpn": item["model_no"],
        "shipping_cost": Decimal(item["ship_fee"]), "condition": CONDITIONS[item["state"]],
        "availability_date": moment(item["release"]), "google_product_category": item["gpc"],
        "naver_category": item["naver_cat"], "item_group_id": item["group_code"],
        "color": item["colour"], "size": item["size_label"], "gender": item["sex"],
        "age_group": item["age"], "material": item["fabric"], "pattern": item["motif"],
        "size_system": item["sizing"], "size_type": item["fit"],
        "sale_price_start": moment(item["sale_from"]), "sale_price_end": moment(item["sale_until"]),
    }


def test_identical_second_run_writes_nothing(
    conn: psycopg.Connection, run_collect: Any, tmp_path: Path
) -> None:
    register(conn, "json", write_catalog(tmp_path / "c.json", "json", count=N))
    run_collect()
    before = products_table(conn)
    xmin_before = dict(conn.execute("SELECT product_id, xmin::text FROM products").fetchall())
    # Forget the file's validator, so that the whole snapshot is read, mapped and compared.
    conn.execute("UPDATE shops SET source_etag = NULL")
    conn.commit()
    result, _ = run_collect()
    assert result.counts == {"inserted": 0, "updated": 0, "returned": 0, "unchanged": N,
                             "gone": 0, "duplicates": 0, "compressed": False}
    assert products_table(conn) == before
    xmin_after = dict(conn.execute("SELECT product_id, xmin::text FROM products").fetchall())
    assert xmin_after == xmin_before  # not one tuple rewritten


# The hash expressions stored products carried before migrations 0006 and 0010.
HASH_BEFORE = {
    6: "decode(md5(ROW(title, description, link, mobile_link, image_link, additional_image_links, "
       "price, sale_price, currency, availability, availability_date, condition, brand, gtin, mpn, "
       "item_group_id, product_type, google_product_category, naver_category, shipping_cost, "
       "extra)::text), 'hex')",
    10: "int8send(hash_record_extended(ROW(title, description, link, mobile_link, image_link, "
        "additional_image_links, price, sale_price, currency, availability, availability_date, "
        "condition, brand, gtin, mpn, item_group_id, product_type, google_product_category, "
        "naver_category, shipping_cost, extra), 0))",
}
# The fields that code before migration 0007 did not collect (its columns stay NULL).
SINCE_0007 = ("color", "size", "gender", "age_group", "material", "pattern", "size_system",
              "size_type", "sale_price_start", "sale_price_end")


@pytest.mark.parametrize("upgrade_from", [6, 10])
def test_the_rehash_migrations_make_an_upgrade_announce_no_false_updates(
    conn: psycopg.Connection, run_collect: Any, tmp_path: Path, upgrade_from: int
) -> None:
    """Products stored under an older hash, re-hashed by the migrations since, stay unchanged:
    an identical re-run after the upgrade reports 0 updated (the summary EP announces no U)."""
    from worker.common.db import migrations

    mapping = {k: v for k, v in catalog_gen.MAPPINGS["json"].items() if k not in SINCE_0007}
    register(conn, "json", write_catalog(tmp_path / "c.json", "json", count=N), mapping=mapping)
    run_collect()
    new_hashes = dict(conn.execute("SELECT product_id, content_hash FROM products").fetchall())
    # The products as the older code stored them: its hash of the same content.
    conn.execute(f"UPDATE products SET content_hash = {HASH_BEFORE[upgrade_from]}")
    assert dict(conn.execute("SELECT product_id, content_hash FROM products").fetchall()) != (
        new_hashes)
    for migration in migrations():
        if upgrade_from <= migration.version and "content_hash" in migration.sql:
            conn.execute(migration.sql)
    assert dict(conn.execute("SELECT product_id, content_hash FROM products").fetchall()) == (
        new_hashes)
    assert all(len(h) == 8 for h in new_hashes.values())
    conn.execute("UPDATE shops SET source_etag = NULL")
    conn.commit()
    result, _ = run_collect()
    assert result.counts["unchanged"] == N and result.counts["updated"] == 0


def test_migration_0010_hashes_every_column_as_collect_does(
    conn: psycopg.Connection, run_collect: Any, tmp_path: Path
) -> None:
    """With every optional column filled, 0010's expression is the load's, column for column."""
    from worker.common.db import migrations

    register(conn, "json", write_catalog(tmp_path / "c.json", "json", count=N))
    run_collect()
    assert conn.execute("SELECT count(*) FROM products WHERE color IS NOT NULL AND "
                        "size_type IS NOT NULL AND shipping_cost IS NOT NULL").fetchone() == (N,)
    hashes = dict(conn.execute("SELECT product_id, content_hash FROM products").fetchall())
    conn.execute("UPDATE products SET content_hash = '\\x00'")
    (rehash,) = [m for m in migrations() if m.version == 10]
    conn.execute(rehash.sql)
    assert dict(conn.execute("SELECT product_id, content_hash FROM products").fetchall()) == hashes
    conn.rollback()


def test_an_identical_local_file_is_skipped_unless_the_mapping_changed(
    conn: psycopg.Connection, run_collect: Any, tmp_path: Path
) -> None:
    path = write_catalog(tmp_path / "c.json", "json", count=N)
    register(conn, "json", path)
    first, _ = run_collect()
    etag = conn.execute("SELECT source_etag FROM shops").fetchone()[0]
    conn.commit()
    assert etag.startswith("sha256:") and first.counts["inserted"] == N
    before = products_table(conn)
    again, _ = run_collect()
    assert again.note == "unchanged source" and again.rows_in == 0
    assert products_table(conn) == before
    # Same bytes, another mapping: a different snapshot, so it is collected again.
    register(conn, "json", path, mapping={**catalog_gen.MAPPINGS["json"], "title": "name"})
    remapped, _ = run_collect()
    assert remapped.note is None and remapped.counts["updated"] == N
    # Other bytes under the same mapping: collected again.
    write_catalog(path, "json", count=N + 1)
    grown, _ = run_collect()
    assert grown.counts["inserted"] == 1


def test_delta_counts_are_exact_and_changed_at_moves_only_for_changes(
    conn: psycopg.Connection, run_collect: Any, tmp_path: Path
) -> None:
    path = tmp_path / "c.jsonl"
    first = list(catalog_gen.products(N))
    register(conn, "jsonl", write_catalog(path, "jsonl", first))
    run_collect()
    before = products_table(conn)
    second = [dict(p) for p in first]
    for p in second[:3]:
        p["price"] = {"amount": p["price"]["amount"] + 100, "currency": "KRW"}
    second[3]["options"] = [{"color": "new", "size": "S", "stock": 1}]  # extra changes too
    gone_ids = [second[10]["sku"], second[11]["sku"]]
    second = [p for p in second if p["sku"] not in gone_ids]
    second += list(catalog_gen.products(4, start=1000))
    write_catalog(path, "jsonl", second)
    result, _ = run_collect()
    assert {k: result.counts[k] for k in ("inserted", "updated", "unchanged", "gone")} == {
        "inserted": 4, "updated": 4, "unchanged": N - 6, "gone": 2}
    assert (result.rows_in, result.rows_out) == (N + 2, N + 2)
    after = products_table(conn)
    changed = {pid for pid in after if after[pid]["changed_at"] != before.get(pid, {}).get(
        "changed_at")}
    assert changed == {p["sku"] for p in second[:4]} | set(gone_ids) | {
        p["sku"] for p in second[-4:]}
    for pid in gone_ids:
        assert after[pid]["gone_at"] is not None and after[pid]["gone_at"] == after[pid][
            "changed_at"]
    assert after[second[0]["sku"]]["price"] == first[0]["price"]["amount"] + 100

    # The two gone products come back: they are updated ("returned"), gone_at cleared.
    write_catalog(path, "jsonl", first)
    result, _ = run_collect()
    assert result.counts["returned"] == 2 and result.counts["gone"] == 4
    back = products_table(conn)
    assert all(back[pid]["gone_at"] is None for pid in gone_ids)
    assert all(back[pid]["changed_at"] > after[pid]["changed_at"] for pid in gone_ids)


def test_shrink_gate_refuses_a_collapsed_snapshot_unless_forced(
    conn: psycopg.Connection, run_collect: Any, tmp_path: Path
) -> None:
    path = tmp_path / "c.json"
    register(conn, "json", write_catalog(path, "json", count=N))
    run_collect()
    before = products_table(conn)
    write_catalog(path, "json", count=N // 3)
    with pytest.raises(FatalError) as caught:
        run_collect()
    message = str(caught.value)
    assert f"remove {N - N // 3} of the shop's {N} products" in message
    assert "CATALOG_FORCE=1" in message and "shop synthetic" in message
    assert products_table(conn) == before
    result, _ = run_collect(CATALOG_FORCE="1")
    assert result.counts["gone"] == N - N // 3


def test_reject_gate_fails_and_leaves_the_shop_untouched_but_keeps_the_rejects(
    conn: psycopg.Connection, run_collect: Any, tmp_path: Path
) -> None:
    path = tmp_path / "c.jsonl"
    register(conn, "jsonl", write_catalog(path, "jsonl", count=N))
    run_collect()
    before = products_table(conn)
    bad = list(catalog_gen.products(N))
    for p in bad[:4]:  # 4 of 30 = 13 % > 10 %
        p["url"] = "not a url"
    write_catalog(path, "jsonl", bad)
    with pytest.raises(FatalError, match=r"4 of 30 records were rejected \(13.3%\)"):
        run_collect()
    assert products_table(conn) == before
    rejects = rejects_table(conn)
    assert len(rejects) == 4
    assert rejects[0]["position"] == "line 1" and rejects[0]["product_id"] == bad[0]["sku"]
    assert rejects[0]["field"] == "link" and "not an http(s) URL" in rejects[0]["reason"]


def test_rejects_below_the_gate_are_recorded_and_the_rest_loads(
    conn: psycopg.Connection, run_collect: Any, tmp_path: Path
) -> None:
    catalog = list(catalog_gen.products(N))
    catalog[2]["price"] = {"amount": "무료", "currency": "KRW"}
    catalog[5] = dict(catalog[4])  # duplicate id: the first wins
    catalog[5]["name"] = "the duplicate"
    del catalog[7]["url"]
    register(conn, "json", write_catalog(tmp_path / "c.json", "json", catalog))
    result, _ = run_collect()
    assert (result.rows_in, result.rows_out, result.rows_rejected) == (N, N - 3, 3)
    rejects = {r["position"]: r for r in rejects_table(conn)}
    assert set(rejects) == {"item 3", "item 6", "item 8"}
    assert rejects["item 3"]["reason"] == (
        "price cannot be read: '무료' is not one number with an optional currency")
    assert rejects["item 6"]["reason"] == "duplicate product id: the first, at item 5, wins"
    assert rejects["item 8"]["reason"] == "missing required field link"
    assert rejects["item 8"]["excerpt"].startswith("{'sku': ")
    assert products_table(conn)[catalog[4]["sku"]]["title"].endswith(catalog[4]["name"])


def test_a_failure_mid_stream_leaves_the_products_exactly_as_they_were(
    conn: psycopg.Connection, run_collect: Any, tmp_path: Path
) -> None:
    path = tmp_path / "c.json"
    register(conn, "json", write_catalog(path, "json", count=N))
    run_collect()
    before = products_table(conn)
    changed = list(catalog_gen.products(N * 3, seed=7))
    write_catalog(path, "json", changed, gzip=True)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])  # a truncated download
    with pytest.raises(FatalError, match="gzip stream ends early"):
        run_collect()
    assert products_table(conn) == before
    assert conn.execute("SELECT to_regclass('collect_staging')").fetchone() == (None,)


def test_a_broken_http_download_is_transient_and_changes_nothing(
    conn: psycopg.Connection, run_collect: Any, tmp_path: Path
) -> None:
    path = write_catalog(tmp_path / "c.jsonl", "jsonl", count=N)
    body = path.read_bytes()
    with serve({"/c.jsonl": Route(body, etag='"e1"')}) as srv:
        register(conn, "jsonl", srv.url("/c.jsonl"))
        run_collect()
        before = products_table(conn)
        srv.routes["/c.jsonl"] = Route(body.replace(b"shop.example", b"shop.example2") * 2,
                                       cut_after=len(body))
        with pytest.raises(TransientError, match="broke off"):
            run_collect()
    assert products_table(conn) == before


def test_conditional_get_304_ends_at_once_with_nothing_changed(
    conn: psycopg.Connection, run_collect: Any, tmp_path: Path
) -> None:
    body = write_catalog(tmp_path / "c.json", "json", count=N).read_bytes()
    with serve({"/c.json": Route(body, etag='"v1"', headers={
            "Last-Modified": "Sat, 28 Nov 2026 01:00:00 GMT"})}) as srv:
        register(conn, "json", srv.url("/c.json"))
        first, _ = run_collect()
        assert first.counts["inserted"] == N
        validators = conn.execute(
            "SELECT source_etag, source_last_modified FROM shops WHERE id = 'synthetic'"
        ).fetchone()
        conn.commit()
        assert validators == ('"v1"', "Sat, 28 Nov 2026 01:00:00 GMT")
        before = products_table(conn)
        second, _ = run_collect()
        assert second.note == "unchanged source" and second.bytes == 0 and second.rows_in == 0
        assert srv.requests[-1][1]["If-None-Match"] == '"v1"'
    assert products_table(conn) == before


def test_s3_source_end_to_end_with_its_etag(
    conn: psycopg.Connection, run_collect: Any, tmp_path: Path, s3: Any, moto_endpoint: str
) -> None:
    bucket = f"catalogs-{os.getpid()}"
    path = write_catalog(tmp_path / "c.csv", "csv", count=N, gzip=True)
    s3.put_object(Bucket=bucket, Key="acme/catalog.csv", Body=path.read_bytes())
    register(conn, "csv", f"s3://{bucket}/acme/catalog.csv")
    first, _ = run_collect(AWS_ENDPOINT_URL=moto_endpoint)
    assert first.counts["inserted"] == N and first.counts["compressed"] is True
    assert first.bytes == path.stat().st_size
    etag = conn.execute("SELECT source_etag FROM shops").fetchone()[0]
    conn.commit()
    assert etag == s3.head_object(Bucket=bucket, Key="acme/catalog.csv")["ETag"]
    second, _ = run_collect(AWS_ENDPOINT_URL=moto_endpoint)
    assert second.note == "unchanged source" and second.rows_in == 0
    write_catalog(path, "csv", count=N + 2, gzip=True)
    s3.put_object(Bucket=bucket, Key="acme/catalog.csv", Body=path.read_bytes())
    third, _ = run_collect(AWS_ENDPOINT_URL=moto_endpoint)
    assert third.counts["inserted"] == 2 and third.counts["unchanged"] == N


def test_an_invalid_mapping_fails_before_a_byte_is_read(
    conn: psycopg.Connection, run_collect: Any, tmp_path: Path
) -> None:
    with serve({}) as srv:
        register(conn, "json", srv.url("/c.json"))
        conn.execute(
            "UPDATE shops SET mapping = %s WHERE id = 'synthetic'",
            (json.dumps({"price": {"path": "p", "parse": "cash"}}),),
        )
        conn.commit()
        with pytest.raises(ConfigError, match="parse 'cash' is not known") as caught:
            run_collect()
        assert srv.requests == []
    assert caught.value.exit_code == 65


def test_a_mapping_that_names_csv_columns_the_header_lacks_fails(
    conn: psycopg.Connection, run_collect: Any, tmp_path: Path
) -> None:
    mapping = {**catalog_gen.MAPPINGS["csv"], "description": "descr"}
    register(conn, "csv", write_catalog(tmp_path / "c.csv", "csv", count=5), mapping=mapping)
    with pytest.raises(ConfigError, match=r"reads column 'descr'.*did you mean 'desc'"):
        run_collect()
    assert products_table(conn) == {}


@pytest.mark.parametrize(
    ("body", "fmt", "message"),
    [
        (b"", "json", "the catalog is empty"),
        (gzip.compress(b"", mtime=0), "jsonl", "the catalog is empty (nothing once decompressed"),
        (b" \n\n", "csv", "the catalog is empty (3 bytes, blank)"),
        (b"<!DOCTYPE html><html><body>502 Bad Gateway</body></html>", "json",
         "not json but an HTML page; it begins '<!DOCTYPE html><html><body>502 Bad Gateway"),
        (b"<html><body>Login</body></html>", "xml", "not xml but an HTML page"),
        (b"<html><body>Login</body></html>", "csv", "not csv but an HTML page"),
        (b"id,title\n", "jsonl", "not jsonl; it begins 'id,title"),
        (b'{"products": []}', "json", "found no products in the json catalog"),
    ],
)
def test_a_body_that_is_not_the_format_fails_quoting_its_first_bytes(
    conn: psycopg.Connection, run_collect: Any, tmp_path: Path, body: bytes, fmt: str,
    message: str,
) -> None:
    # A remote response is quoted: it is what the shop's server said.
    with serve({"/c": Route(body)}) as srv:
        register(conn, fmt, srv.url("/c"))
        with pytest.raises(FatalError) as caught:
            run_collect()
    assert message in str(caught.value)
    assert f"shop synthetic, source {srv.url('/c')}" in str(caught.value)
    # A local file never is: a message must not carry the worker's own files anywhere.
    path = tmp_path / "c"
    path.write_bytes(body)
    register(conn, fmt, path)
    with pytest.raises(FatalError) as caught:
        run_collect()
    assert message.split("; it begins")[0] in str(caught.value)
    assert "it begins" not in str(caught.value)


def test_a_second_attempt_waits_for_the_lock_then_exits_75(
    conn: psycopg.Connection, database_url: str, run_collect: Any, tmp_path: Path
) -> None:
    path = write_catalog(tmp_path / "c.json", "json", count=5)
    register(conn, "json", path)
    register(conn, "json", path, id="other-shop")
    with psycopg.connect(database_url, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", (shop_lock_key("synthetic", "collect"),))
        with pytest.raises(TransientError, match="holds the shop's lock") as caught:
            run_collect(SHOP_LOCK_TIMEOUT="0")
        assert caught.value.exit_code == 75
        # Another shop's collect is not blocked by this shop's lock.
        result, _ = run_collect("other-shop", SHOP_LOCK_TIMEOUT="0")
        assert result.counts["inserted"] == 5
    assert products_table(conn) == {}
    assert len(products_table(conn, "other-shop")) == 5


def test_a_killed_process_leaves_the_products_exactly_as_they_were(
    conn: psycopg.Connection, settings_env: dict[str, str], tmp_path: Path
) -> None:
    """kill -9 of a real worker in the middle of its COPY: the server rolls everything back."""
    body = write_catalog(tmp_path / "c.jsonl", "jsonl", count=N).read_bytes()
    release = threading.Event()
    with serve({"/c.jsonl": Route(body)}) as srv:
        register(conn, "jsonl", srv.url("/c.jsonl"))
        env = {**settings_env, "SHOP_ID": "synthetic"}
        subprocess.run([sys.executable, "-m", "worker", "collect"], env=env, check=True,
                       capture_output=True, timeout=120)
        before = products_table(conn)
        changed = body.replace(b"shop.example", b"shop.example.kr")
        # Stall past the worker's 1 MiB read buffer, so that its COPY is under way.
        srv.routes["/c.jsonl"] = Route(changed + changed.replace(b'"P0', b'"Q0') * 200,
                                       stall_after=3 << 20, stall=release)
        worker = subprocess.Popen([sys.executable, "-m", "worker", "collect"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:  # wait until its COPY is under way
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'COPY %%collect_staging%%'"
                ).fetchone()
                conn.commit()
                if row and row[0]:
                    break
                time.sleep(0.05)
            else:
                raise AssertionError("the worker never started its COPY")
            worker.send_signal(signal.SIGKILL)
            worker.wait(timeout=30)
        finally:
            release.set()
            if worker.poll() is None:
                worker.kill()
    assert worker.returncode == -signal.SIGKILL
    assert products_table(conn) == before


def test_through_the_router_exit_codes_and_the_task_row(
    conn: psycopg.Connection, settings_env: dict[str, str], tmp_path: Path
) -> None:
    path = write_catalog(tmp_path / "c.json", "json", count=N)
    register(conn, "json", path)
    env = {**settings_env, "SHOP_ID": "synthetic"}
    with capture_logs() as logs:
        assert run_task("collect", Settings.from_env(env)) == 0
    summary = next(e for e in logs if e["event"] == "task.summary")
    assert summary["rows_in"] == N and summary["counts"]["inserted"] == N
    assert summary["bytes"] == path.stat().st_size
    path.write_bytes(b'{"products": [{"sku": 1}, ')
    assert run_task("collect", Settings.from_env(env)) == 65
    rows = conn.execute(
        "SELECT status, exit_code, rows_in, error FROM task_runs ORDER BY id"
    ).fetchall()
    assert rows[0][:3] == ("succeeded", 0, N)
    assert rows[1][:2] == ("failed", 65) and "malformed JSON after item 1" in rows[1][3]
    assert len(products_table(conn)) == N
