"""Golden files: the edge-case catalog in, each channel's exact file out (reviewed like code).

Set CATALOG_UPDATE_GOLDEN=1 to rewrite them after a deliberate change, then review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import psycopg
import pytest

from tests.catalogs import WATERMARK, edge_catalog, insert_products
from tests.fixtures_shops import make_shop
from tests.worker.feed.helpers import GOLDEN_OPTIONS, build, read_text
from worker.feed.channels import registry

GOLDEN = Path(__file__).parent / "golden"


def _golden_name(channel: str) -> str:
    cls = registry()[channel]
    return f"{channel}.{cls.extension}"


@pytest.mark.parametrize("channel", sorted(registry()))
def test_channel_output_matches_its_golden_file(
    conn: psycopg.Connection, tmp_path: Path, channel: str
) -> None:
    make_shop(conn, id="shop-a", channels=[channel])
    insert_products(conn, "shop-a", edge_catalog())
    # The summary EP's watermark: products changed after it are news (see the catalog's dates).
    conn.execute(
        "INSERT INTO feed_publications (shop_id, channel, key, rows, bytes, sha256, data_as_of)"
        " VALUES ('shop-a', 'naver', 'k', 1, 1, 'x', %s)", (WATERMARK,),
    )
    conn.commit()
    result, _ = build(conn, "shop-a", [channel], tmp_path, options=GOLDEN_OPTIONS)
    text = read_text(result.feeds[0].path)
    golden = GOLDEN / _golden_name(channel)
    if os.environ.get("CATALOG_UPDATE_GOLDEN") == "1":
        golden.write_text(text, encoding="utf-8")
    assert golden.exists(), f"no golden file {golden}: run with CATALOG_UPDATE_GOLDEN=1, review it"
    assert text == golden.read_text(encoding="utf-8")


def test_every_registered_channel_has_a_golden_file() -> None:
    missing = [c for c in registry() if not (GOLDEN / _golden_name(c)).exists()]
    assert not missing
