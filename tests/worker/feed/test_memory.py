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


def peak_bytes(conn: psycopg.Connection, folder: Path) -> int:
    tracemalloc.start()
    try:
        result, _ = build(conn, "shop-a", CHANNELS, folder, itersize=ITERSIZE,
                          rejects=CountRejects())
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
