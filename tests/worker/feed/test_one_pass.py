"""Every channel in one pass writes what it writes alone: what channels share per product (URL
answers, Google's values for google and google_tsv) never leaks one channel's answer into another's."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import psycopg

from tests.catalogs import WATERMARK, edge_catalog, insert_products, product
from tests.fixtures_shops import make_shop
from tests.worker.feed.helpers import GOLDEN_OPTIONS, build, read_text
from worker.feed.channels import registry

GOLDEN = Path(__file__).parent / "golden"
ALL = sorted(registry())


def _watermark(conn: psycopg.Connection) -> None:
    conn.execute(
        "INSERT INTO feed_publications (shop_id, channel, key, rows, bytes, sha256, data_as_of)"
        " VALUES ('shop-a', 'naver', 'k', 1, 1, 'x', %s)", (WATERMARK,),
    )
    conn.commit()


def test_all_channels_in_one_pass_write_their_golden_files(
    conn: psycopg.Connection, tmp_path: Path
) -> None:
    make_shop(conn, id="shop-a", channels=ALL)
    insert_products(conn, "shop-a", edge_catalog())
    _watermark(conn)
    result, _ = build(conn, "shop-a", ALL, tmp_path, options=GOLDEN_OPTIONS)
    for feed in result.feeds:
        name = f"{feed.channel.name}.{feed.channel.extension}"
        assert read_text(feed.path) == (GOLDEN / name).read_text(encoding="utf-8"), name


def _reasons(records: list[dict[str, object]], channel: str) -> Counter[tuple[object, ...]]:
    return Counter(
        (r["product_id"], r["reason"], r["field"], r["excerpt"], r["outcome"])
        for r in records if r["channel"] == channel
    )


def test_a_channel_built_with_the_others_equals_it_built_alone(
    conn: psycopg.Connection, tmp_path: Path
) -> None:
    extras = [
        # Meta spells "all ages", Google drops it with a reason naming the channel.
        product("B-001", age_group="all ages", link="https://shop.example/p/b,1"),
        product("B-002", mobile_link="https://m.shop.example/p/b,2", age_group="teen"),
        product("B-003", image_url="https://cdn.example/b3.jpg",
                image_fitness={"google": False, "google_tsv": True, "meta": True,
                               "naver": True, "naver_summary": True},
                additional_image_urls=["https://cdn.example/b3-2.jpg"]),
        product("B-004", link="https://shop.example/p/b,4", gtin="8801234567890"),
        product("B-005", image_link="https://shop.example/img/b 5.jpg", gender="unknown"),
    ]
    make_shop(conn, id="shop-a", channels=ALL)
    insert_products(conn, "shop-a", [*edge_catalog(), *extras])
    _watermark(conn)
    together, together_rejects = build(conn, "shop-a", ALL, tmp_path / "all",
                                       options=GOLDEN_OPTIONS)
    # In both orders: google before google_tsv and after it.
    reverse, reverse_rejects = build(conn, "shop-a", ALL[::-1], tmp_path / "reverse",
                                     options=GOLDEN_OPTIONS)
    for name in ALL:
        alone, alone_rejects = build(conn, "shop-a", [name], tmp_path / name,
                                     options=GOLDEN_OPTIONS)
        text = read_text(alone.feeds[0].path)
        assert text, name
        for built, rejects in ((together, together_rejects), (reverse, reverse_rejects)):
            feed = next(f for f in built.feeds if f.channel.name == name)
            assert read_text(feed.path) == text, name
            assert _reasons(rejects.records, name) == _reasons(alone_rejects.records, name), name
            assert feed.rows == alone.feeds[0].rows
    dropped = _reasons(together_rejects.records, "google")
    assert any(key[0] == "B-001" and "google" in str(key[1]) for key in dropped)
