"""Streaming: the pass's peak Python memory does not grow with the shop's size."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import psycopg
import pytest

from tests.catalogs import generate_products
from tests.fixtures_shops import make_shop
from tests.worker.feed.helpers import CountRejects, build
from worker.feed import publish

CHANNELS = ("google", "meta", "naver")
ITERSIZE = 200  # rows per cursor batch: psycopg holds up to two batches while it fetches


def peak_bytes(conn: psycopg.Connection, folder: Path, *, line_cache: bool = False) -> int:
    tracemalloc.start()
    try:
        result, _ = build(conn, "shop-a", CHANNELS, folder, itersize=ITERSIZE,
                          rejects=CountRejects(), line_cache=line_cache)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert all(f.rows > 0 for f in result.feeds)
    return peak


@pytest.mark.slow
def test_peak_memory_is_flat_between_a_shop_and_one_eight_times_bigger(
    conn: psycopg.Connection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small chunks, so that the small shop already fills the writer queues to their bound; both
    # shops are much bigger than a cursor batch.
    monkeypatch.setattr(publish, "_CHUNK_CHARS", 8 * 1024)
    make_shop(conn, id="shop-a", channels=list(CHANNELS))
    generate_products(conn, "shop-a", 1_000)
    small = peak_bytes(conn, tmp_path / "small")
    generate_products(conn, "shop-a", 7_000, start=1_000)
    big = peak_bytes(conn, tmp_path / "big")
    # Holding the rows would cost > 4 MB more for 7,000 more products (≈ 600 bytes each, in
    # three channels); cursor batches, chunks and queues are bounded whatever the size.
    assert big < small * 1.2 + 500_000, (small, big)


@pytest.mark.slow
def test_with_the_line_cache_cold_warm_or_partly_warm_memory_is_flat(
    conn: psycopg.Connection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The misses are spooled to a file, the hits stream (COPY when warm, cursor batches when
    cold): nothing per product."""
    monkeypatch.setattr(publish, "_CHUNK_CHARS", 8 * 1024)
    make_shop(conn, id="shop-a", channels=list(CHANNELS))
    generate_products(conn, "shop-a", 1_000)
    cold = peak_bytes(conn, tmp_path / "cold", line_cache=True)
    warm = peak_bytes(conn, tmp_path / "warm", line_cache=True)
    generate_products(conn, "shop-a", 7_000, start=1_000)
    partly = peak_bytes(conn, tmp_path / "partly", line_cache=True)  # 7,000 misses
    big_warm = peak_bytes(conn, tmp_path / "big-warm", line_cache=True)
    assert partly < cold * 1.2 + 500_000, (cold, partly)
    assert big_warm < warm * 1.2 + 500_000, (warm, big_warm)
