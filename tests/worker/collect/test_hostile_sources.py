"""Hostile shop entries against the real worker (``python -m worker collect`` in a subprocess, a real
HTTP server on 127.0.0.1, a real PostgreSQL): local files it must not read, bombs it must refuse
under a 1 GB address-space limit, and a record whose shape breaks an encoder. Each ends the way the
contract says — exit 65 with a message naming the shop, the source and the rule, or a reject —
with the shop's products as they were and no secret anywhere."""

from __future__ import annotations

import contextlib
import resource
import subprocess
import sys
import zlib
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import psycopg
import psycopg.conninfo
import pytest

from tests import catalogs as catalog_gen
from tests.fixtures_http import Route, Server, serve
from tests.worker.collect.conftest import products_table, register, rejects_table

ADDRESS_SPACE = 1 << 30
SECRET = "hunter2-canary-Zq8"
GOOD = 20
FILLER_BLOCK = 64 << 20  # one gzip member's worth of filler
BOMB_INFLATED = 1100 << 20  # past the address-space limit: held whole, it could not fit


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


@pytest.fixture
def worker(database_url: str, settings_env: dict[str, str]) -> Callable[..., tuple[int, str]]:
    """Run collect for the synthetic shop in a subprocess under the address-space limit; its exit
    code and everything it wrote. The database URL carries a password (trust auth ignores it) and
    the environment a canary: neither may come out anywhere."""
    url = psycopg.conninfo.make_conninfo(database_url, password=SECRET)

    def run(**env: str) -> tuple[int, str]:
        full = {**settings_env, "DATABASE_URL": url, "SHOP_ID": "synthetic",
                "FETCH_ALLOW_NETWORKS": "127.0.0.0/8", "CATALOG_CANARY": SECRET, **env}
        full = {k: v for k, v in full.items() if v}
        done = subprocess.run(
            [sys.executable, "-m", "worker", "collect"], env=full, preexec_fn=_limit_memory,
            capture_output=True, timeout=300, check=False,
        )
        return done.returncode, (done.stdout + done.stderr).decode("utf-8", "replace")

    return run


def _no_secret_anywhere(conn: psycopg.Connection, output: str) -> None:
    conn.commit()
    assert SECRET not in output
    assert "root:x:0:0" not in output
    tables = conn.execute(
        "SELECT (SELECT coalesce(string_agg(t::text, ' '), '') FROM task_runs t),"
        " (SELECT coalesce(string_agg(r::text, ' '), '') FROM rejects r),"
        " (SELECT coalesce(string_agg(p::text, ' '), '') FROM products p)"
    ).fetchone()
    conn.commit()
    assert tables is not None
    for text in tables:
        assert SECRET not in text and "root:x:0:0" not in text


def _last_task(conn: psycopg.Connection) -> tuple[str, int, str]:
    conn.commit()
    row = conn.execute(
        "SELECT status, exit_code, error FROM task_runs ORDER BY id DESC LIMIT 1").fetchone()
    conn.commit()
    assert row is not None
    return row[0], row[1], row[2] or ""


# ---- local files ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "root", "rule"),
    [
        ("file:///proc/self/environ", False, "a local file is not an allowed source here "
                                             "(SOURCE_FILE_ROOT is not set)"),
        ("file:///proc/self/environ", True, "may never be under /proc, /sys or /dev"),
        ("/etc/passwd", True, "must be a file inside SOURCE_FILE_ROOT"),
        ("link-to-environ", True, "may never be under /proc, /sys or /dev"),
        ("link-to-passwd", True, "symbolic links included: this one resolves outside it"),
        ("../../../../../../etc/passwd", True, "must be a file inside SOURCE_FILE_ROOT"),
    ],
)
def test_the_workers_own_files_are_refused_and_never_quoted(
    conn: psycopg.Connection, worker: Callable[..., tuple[int, str]], tmp_path: Path,
    source: str, root: bool, rule: str,
) -> None:
    catalogs = tmp_path / "catalogs"
    catalogs.mkdir()
    (catalogs / "link-to-environ").symlink_to("/proc/self/environ")
    (catalogs / "link-to-passwd").symlink_to("/etc/passwd")
    url = str(catalogs / source) if source.startswith(("link", "..")) else source
    register(conn, "csv", url, format_options={"delimiter": ":",
                                              "fieldnames": ["sku", "name", "x", "y", "z", "url", "price"]},
             mapping={"product_id": "sku", "title": "name", "link": "url", "price": "price"})
    code, output = worker(SOURCE_FILE_ROOT=str(catalogs) if root else "")
    assert code == 65, output
    status, exit_code, error = _last_task(conn)
    assert (status, exit_code) == ("failed", 65)
    assert rule in error and error.startswith("shop synthetic, source ")
    assert rule in output
    _no_secret_anywhere(conn, output)
    assert products_table(conn) == {}


# ---- bombs ---------------------------------------------------------------------------------


@cache
def _filler_member(unit: bytes) -> bytes:
    """One gzip member of FILLER_BLOCK bytes of ``unit`` repeated, streamed through zlib."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = unit * ((1 << 20) // len(unit))
    parts = [packer.compress(block) for _ in range(FILLER_BLOCK // len(block))]
    return b"".join(parts) + packer.flush()


def _gzip_member(data: bytes) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


def gzip_bomb(head: bytes, unit: bytes, tail: bytes, inflated: int = BOMB_INFLATED) -> bytes:
    """``head``, then ``unit`` repeated to about ``inflated`` bytes, then ``tail``: concatenated
    gzip members (one stream to any gzip reader), built from one compressed filler member."""
    return (_gzip_member(head) + _filler_member(unit) * (inflated // FILLER_BLOCK)
            + _gzip_member(tail))


def _good_catalog(fmt: str, tmp_path: Path) -> bytes:
    path = tmp_path / f"good.{fmt}"
    catalog_gen.write(path, fmt, catalog_gen.products(GOOD))
    return path.read_bytes()


@pytest.fixture
def loaded(conn: psycopg.Connection, worker: Callable[..., tuple[int, str]],
           tmp_path: Path) -> Iterator[Callable[..., tuple[Server, dict[str, Any]]]]:
    """A shop of ``fmt`` served from 127.0.0.1, collected once for real: the server (whose route
    the test then swaps for a bomb) and the products as they were."""
    with contextlib.ExitStack() as servers:

        def load(fmt: str, **overrides: Any) -> tuple[Server, dict[str, Any]]:
            srv = servers.enter_context(serve({"/catalog": Route(_good_catalog(fmt, tmp_path))}))
            register(conn, fmt, srv.url("/catalog"), **overrides)
            code, output = worker()
            assert code == 0, output
            before = products_table(conn)
            assert len(before) == GOOD
            return srv, before

        yield load


# The generator's own columns, so that the shop's mapping fits the bomb's header.
CSV_HEAD = ",".join(catalog_gen.CSV_COLUMNS).encode() + b"\r\n"
_ROW = {"sku": "P1", "name": "Shirt", "brand": "ACME", "desc": "d", "url": "https://shop.example/p1",
        "price": "1000", "stock": "Y"}
CSV_ROW = ",".join(_ROW.get(c, "") for c in catalog_gen.CSV_COLUMNS).encode() + b"\r\n"
BOMBS: dict[str, tuple[str, Callable[[], bytes], str]] = {
    # format, body, what the message names
    "100,000 nested arrays": (
        "json", lambda: b'{"products": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        "nesting deeper than 64 levels (format_options.max_depth)"),
    "one JSON string of a gigabyte": (
        "json", lambda: gzip_bomb(b'{"products": [{"sku": "P1", "desc": "', b"x", b'"}]}'),
        "longer than 4 MiB (format_options.max_record_bytes)"),
    "one CSV line of a gigabyte": (
        "csv", lambda: gzip_bomb(CSV_HEAD + b"P1,", b"x", b"\r\n"),
        "format_options.max_inflate_ratio"),
    "one XML text node of a gigabyte": (
        "xml", lambda: gzip_bomb(b"<catalog><product id='P1'><desc>", b"x",
                                 b"</desc></product></catalog>"),
        "format_options.max_inflate_ratio"),
    # Past the shop's own total (2 MiB here: under the default, the ratio's 16 MiB floor would
    # first send ~300,000 rows through mapping and validation, half a minute of a test).
    "a rows bomb": (
        "csv", lambda: gzip_bomb(CSV_HEAD, CSV_ROW, b""),
        "format_options.max_total_bytes (2 MiB)"),
}
OPTIONS = {"a rows bomb": {"max_total_bytes": 2 << 20}}


@pytest.mark.parametrize("bomb", sorted(BOMBS))
def test_a_bomb_ends_in_exit_65_naming_the_limit_with_the_products_unchanged(
    conn: psycopg.Connection, worker: Callable[..., tuple[int, str]],
    loaded: Callable[..., tuple[Server, dict[str, Any]]], bomb: str,
) -> None:
    fmt, body, limit = BOMBS[bomb]
    srv, before = loaded(fmt, format_options={**catalog_gen.FORMAT_OPTIONS[fmt],
                                              **OPTIONS.get(bomb, {})})
    srv.routes["/catalog"] = Route(body())
    code, output = worker()
    assert code == 65, output[-3000:]
    status, exit_code, error = _last_task(conn)
    assert (status, exit_code) == ("failed", 65)
    assert limit in error and error.startswith(f"shop synthetic, source {srv.url('/catalog')}")
    assert "(uncompressed)" in error  # the position it got to
    assert limit in output
    assert products_table(conn) == before
    _no_secret_anywhere(conn, output)
    if bomb in ("one CSV line of a gigabyte", "one XML text node of a gigabyte"):
        # Before the total stopped it, the record itself was rejected with its position.
        [reject] = [r for r in rejects_table(conn) if r["position"] in ("line 2", "item 1")]
        assert "format_options.max_" in reject["reason"]


def test_a_gigabyte_csv_line_is_skipped_in_constant_memory_when_the_total_allows_it(
    conn: psycopg.Connection, worker: Callable[..., tuple[int, str]],
    loaded: Callable[..., tuple[Server, dict[str, Any]]], tmp_path: Path,
) -> None:
    srv, before = loaded("csv", format_options={"max_inflate_ratio": 100_000})
    good = _good_catalog("csv", tmp_path)
    rows = good.split(b"\r\n", 1)[1]
    srv.routes["/catalog"] = Route(gzip_bomb(good + b"Q1,", b"x", b"\r\n" + rows.replace(
        b"P0", b"R0")))
    code, output = worker()
    assert code == 0, output[-3000:]
    after = products_table(conn)
    assert len(after) == 2 * GOOD and set(before) < set(after)
    [reject] = rejects_table(conn)
    assert reject["position"] == f"line {GOOD + 2}"
    assert reject["reason"].startswith("the row is longer than 4 MiB "
                                       "(format_options.max_record_bytes)")
    _no_secret_anywhere(conn, output)


# ---- one record's exception ----------------------------------------------------------------


DEEP = 1000


def _deep_json_catalog(tmp_path: Path) -> bytes:
    text = _good_catalog("json", tmp_path)
    # The fourth product gains an unmapped field nested DEEP levels (written by hand: the
    # standard library's encoder itself would stop at its recursion limit).
    return text.replace(b'{"sku": "P00000003"',
                        b'{"deep": ' + b"[" * DEEP + b"1" + b"]" * DEEP + b', "sku": "P00000003"')


def _deep_xml_catalog(tmp_path: Path) -> bytes:
    text = _good_catalog("xml", tmp_path)
    return text.replace(b"<product id=\"P00000003\">",
                        b"<product id=\"P00000003\">" + b"<d>" * DEEP + b"1" + b"</d>" * DEEP)


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_a_record_nested_1000_deep_in_an_unmapped_field_is_that_records_reject(
    conn: psycopg.Connection, worker: Callable[..., tuple[int, str]], tmp_path: Path, fmt: str,
) -> None:
    body = (_deep_json_catalog if fmt == "json" else _deep_xml_catalog)(tmp_path)
    assert body.count(b"[" * DEEP) + body.count(b"<d>" * DEEP) == 1
    with serve({"/c": Route(body)}) as srv:
        # The shop raised its depth limit, so the record reaches the jsonb encoder of extra.
        register(conn, fmt, srv.url("/c"),
                 format_options={**catalog_gen.FORMAT_OPTIONS[fmt], "max_depth": 1024})
        code, output = worker()
    assert code == 0, output[-3000:]
    assert len(products_table(conn)) == GOOD - 1
    [reject] = rejects_table(conn)
    assert reject["position"] == "item 4" and reject["product_id"] == "P00000003"
    assert reject["reason"].startswith("the record could not be processed: RecursionError")
    _no_secret_anywhere(conn, output)
