"""The lines PostgreSQL builds (worker/feed/lines.py) against the Python path: the same bytes.

Every channel, on the golden catalog and on a seeded catalog of awkward values, is built twice —
``method="lines"`` (COPY of the database's lines, Python for the rows handed back) and
``method="cursor"`` (every row through ``Channel.row``) — and must give the same file, counts and
rejects. A plain generated catalog must not be handed back to Python at all (that is the speed).
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.catalogs import (
    T0,
    T1,
    WATERMARK,
    edge_catalog,
    generate_products,
    insert_products,
    product,
)
from tests.fixtures_shops import make_shop
from tests.worker.feed.helpers import build, read_text
from worker.feed.channels import registry

CHANNELS = sorted(registry())

# Pieces of values the rules treat specially: controls, Unicode spaces, HTML, entities, commas,
# pipes, non-ASCII, quotes, limits' edges.
PIECES = [
    "a", "Word", "한국어", "🎉", " ", "  ", "\t", "\n", "\r\n", "\x01", "\x0b", "\x1c", "\x1f", "\x7f",
    "\x85", "\xa0", "\u2003", "\u3000", "\u200b", "\ufeff", "&", "&amp;", "&nbsp;", "&#1;", "&x",
    "& ", "<", ">", "<b>", "</p>", "<br/>", "<script>x</script>", "<!-- c -->", "<Deluxe>",
    '"', "'", ",", "|", ">", " > ", "\\", "ſ", "<s>", "<Style>", "\x02", "\x1e", "\x1d",
    " | ", "| ", ">>", "> >", "< b>", "<1>", "<p >", "\x1c",
]
URLS = [
    "https://shop.example/p/1", "http://shop.example/a,b?x=1&y=2", "HTTPS://shop.example/x|y",
    " https://shop.example/trail ", "https://shop.example/한국", "javascript:alert(1)", "",
    "https://shop.example/" + "x" * 1990, "https://shop.example/" + "x" * 1975,
    "https://shop.example/sp ace", "s3://bucket/key", "https://shop.example/\x1fsep",
    "HTTP://Shop.example/UP", "hTtPs://shop.example/mixed", "https://", "http://", "http://x",
    "https://shop.example/a&b<c>", "https://shop.example/" + "y" * 1980,
]


def _text(rng: random.Random, most: int) -> str:
    return "".join(rng.choice(PIECES) for _ in range(rng.randint(0, most)))


def _maybe(rng: random.Random, value: Any, share: float = 0.7) -> Any:
    return value if rng.random() < share else None


def awkward_catalog(seed: int, count: int, *, fields: int | None = None) -> list[dict[str, Any]]:
    """Products with awkward values: all of them, or ``fields`` at most per product (the rest
    plain, so that most rows are written and the database's lines are compared too)."""
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        pid = f"X-{i:04d}"
        if rng.random() < 0.1:
            pid += rng.choice(["\t", " ", "\x1e", "한", "x" * 60, "\x01"])
        long_title = " ".join(["word"] * rng.randint(20, 45))
        rows.append(product(
            pid,
            title=rng.choice([_text(rng, 6), long_title, f"Plain title {i}", " ", "T" * 151]),
            description=_maybe(rng, rng.choice([
                _text(rng, 12), f"Plain description {i}", "<p>Some <b>bold</b> & more</p>",
                "x" * 5001, "word " * 1100, "",
            ])),
            link=rng.choice([*URLS[:6], "https://shop.example/p/" + str(i)]),
            mobile_link=_maybe(rng, rng.choice(URLS), 0.3),
            image_link=_maybe(rng, rng.choice(URLS), 0.95),
            additional_image_links=rng.sample(URLS, rng.randint(0, 4)) + (
                [f"https://shop.example/e/{k}.jpg" for k in range(12)] if rng.random() < 0.1 else []
            ),
            price=rng.choice([Decimal("0"), Decimal("12900"), Decimal("19.995"), Decimal("0.004")]),
            sale_price=_maybe(rng, rng.choice([Decimal("0"), Decimal("9900"), Decimal("20000")]), 0.4),
            currency=rng.choice(["KRW", "KRW", "USD", "JPY", "KWD"]),
            availability=rng.choice(["in_stock", "out_of_stock", "preorder", "backorder",
                                     "discontinued"]),
            availability_date=_maybe(rng, datetime(2027, 1, 15, 9, 30, tzinfo=UTC), 0.5),
            condition=rng.choice(["new", "used", "refurbished"]),
            brand=_maybe(rng, rng.choice([_text(rng, 4), "Acme", "B" * 61, "B" * 71, "Q&A <Co>"])),
            gtin=_maybe(rng, rng.choice(["0 12345-67890 5", "12345678", "abc", "١٢٣٤٥٦٧٨", "123",
                                         "", " - "]), 0.5),
            mpn=_maybe(rng, rng.choice(["M-1", "M" * 61, "M" * 71, "M" * 101, _text(rng, 3)])),
            item_group_id=_maybe(rng, rng.choice(["G-1", "X-0001", "G" * 51, _text(rng, 3)]), 0.4),
            product_type=_maybe(rng, rng.choice([
                "Home > Kitchen", " > > ", ">a>b>c>d>e", "디지털 > 음향기기", _text(rng, 5),
                "P" * 751, "",
            ]), 0.9),
            google_product_category=_maybe(rng, _text(rng, 3), 0.3),
            naver_category=_maybe(rng, rng.choice(["50000204", _text(rng, 2)]), 0.3),
            shipping_cost=_maybe(rng, rng.choice([Decimal("0"), Decimal("2500"), Decimal("-1"),
                                                  Decimal("3.5"), Decimal("1000001")]), 0.9),
            image_url=_maybe(rng, rng.choice([*URLS[:3], "s3://b/k.jpg"]), 0.3),
            image_fitness=_maybe(rng, {c: rng.random() < 0.7 for c in CHANNELS}, 0.5),
            additional_image_urls=_maybe(rng, rng.sample(URLS, rng.randint(0, 2)), 0.3),
            first_seen_at=rng.choice([T0, T1]),
            changed_at=rng.choice([T0, T1]),
            gone_at=_maybe(rng, rng.choice([T0, T1]), 0.15),
        ))
        if fields is not None:
            plain = product(pid.split("\t")[0][:12], first_seen_at=T0, changed_at=T0)
            plain["product_id"] = f"X-{i:04d}"
            keep = set(rng.sample(sorted(rows[-1]), rng.randint(0, fields)))
            rows[-1] = {k: rows[-1][k] if k in keep else v for k, v in plain.items()}
    return rows


def _both(conn: psycopg.Connection, tmp_path: Path, names: list[str]) -> None:
    results = {}
    for method in ("lines", "cursor"):
        built, rejects = build(conn, "shop-a", names, tmp_path / method, method=method)
        results[method] = (
            built.rows_in,
            [(f.channel.name, f.rows, f.excluded, dict(f.rejected), read_text(f.path))
             for f in built.feeds],
            sorted(rejects.records, key=lambda r: (r["channel"], r["position"])),
        )
    lines, cursor = results["lines"], results["cursor"]
    assert lines[0] == cursor[0]
    for mine, theirs in zip(lines[1], cursor[1], strict=True):
        assert mine[:4] == theirs[:4]
        assert mine[4].splitlines() == theirs[4].splitlines()
        assert mine[4] == theirs[4]
    assert lines[2] == cursor[2]


def _watermark(conn: psycopg.Connection) -> None:
    conn.execute(
        "INSERT INTO feed_publications (shop_id, channel, key, rows, bytes, sha256, data_as_of)"
        " VALUES ('shop-a', 'naver', 'k', 1, 1, 'x', %s)", (WATERMARK,),
    )
    conn.commit()


def test_lines_equal_the_python_path_on_the_golden_catalog(
    conn: psycopg.Connection, tmp_path: Path
) -> None:
    make_shop(conn, id="shop-a", channels=CHANNELS)
    insert_products(conn, "shop-a", edge_catalog())
    _watermark(conn)
    _both(conn, tmp_path, CHANNELS)


@pytest.mark.parametrize(("seed", "fields"), [(1, 2), (2, 4), (3, None), (4, 1)])
def test_lines_equal_the_python_path_on_awkward_values(
    conn: psycopg.Connection, tmp_path: Path, seed: int, fields: int | None
) -> None:
    make_shop(conn, id="shop-a", channels=CHANNELS)
    insert_products(conn, "shop-a", awkward_catalog(seed, 500, fields=fields))
    if seed != 3:  # seed 3: no EP published yet, every live product is new
        _watermark(conn)
    _both(conn, tmp_path, CHANNELS)


def test_a_plain_catalog_is_built_by_the_database(conn: psycopg.Connection, tmp_path: Path) -> None:
    make_shop(conn, id="shop-a", channels=CHANNELS)
    generate_products(conn, "shop-a", 300)
    built, rejects = build(conn, "shop-a", CHANNELS, tmp_path)
    assert not rejects.records
    assert {f.channel.name: f.python_rows for f in built.feeds} == dict.fromkeys(CHANNELS, 0)


# Values at the edges of the database's shortcuts (lines.py: the plain-row check, the URL check
# without a regular expression, the description's tags and spaces, the categories' split).
EDGE_TITLES = ["a | b", "a |b", "a| b", "|", "x  y", " lead", "trail ", "Tab\tx", "plain"]
EDGE_DESCRIPTIONS = [
    "<p>lead tag</p>", "<b>a</b>  <i>b</i>", "a  b", " x ", "<p></p>", "x<b>", "< b>a", "<1>a",
    "a<br/>b", "a <b> c </b> d", "&amp; entity", "a & b", "a &b", "tail &", "<b>&</b>",
    "<Script>x</Script>y", "<!-- c -->z", "tab\tand  space", "é <b>한</b> 🎉",
]
EDGE_TYPES = ["a > > b", ">a", "a>", "a >b", "a> b", "a>b>c>d>e>f", " > ", ">", "a  >  b",
              "a > b ", "한 > 국", "a|b > c", "a\u3000> b"]
EDGE_URLS = ["https://", "http://", "http://x", "HTTPS://A.example/", "https://a.example/,",
             "https://a.example/é", "https://a.example/" + "z" * 1982, "https://a.example/" + "z" * 1983]


def edge_values() -> list[dict[str, Any]]:
    rows = []
    for i in range(max(len(EDGE_TITLES), len(EDGE_DESCRIPTIONS), len(EDGE_TYPES), len(EDGE_URLS))):
        rows.append(product(
            f"E-{i:03d}",
            title=EDGE_TITLES[i % len(EDGE_TITLES)],
            description=EDGE_DESCRIPTIONS[i % len(EDGE_DESCRIPTIONS)],
            product_type=EDGE_TYPES[i % len(EDGE_TYPES)],
            link=EDGE_URLS[i % len(EDGE_URLS)],
            image_link=EDGE_URLS[(i + 3) % len(EDGE_URLS)],
            mobile_link=EDGE_URLS[(i + 5) % len(EDGE_URLS)] if i % 2 else None,
            brand=EDGE_TITLES[(i + 1) % len(EDGE_TITLES)],
            mpn=EDGE_TITLES[(i + 2) % len(EDGE_TITLES)],
            changed_at=T1 if i % 3 else T0,
            gone_at=T1 if i % 7 == 6 else None,
        ))
    return rows


def test_lines_equal_the_python_path_at_the_shortcuts_edges(
    conn: psycopg.Connection, tmp_path: Path
) -> None:
    make_shop(conn, id="shop-a", channels=CHANNELS)
    insert_products(conn, "shop-a", edge_values())
    _watermark(conn)
    _both(conn, tmp_path, CHANNELS)


# One COPY serves any set of channels: each alone, full channels only (no summary rows), a
# summary alone (changed rows only), and a mix (a gone product only in the summary).
@pytest.mark.parametrize(
    "names",
    [[c] for c in CHANNELS]
    + [["google", "google_tsv", "meta"], ["naver_summary", "naver"], ["google", "naver_summary"]],
)
def test_lines_equal_the_python_path_for_any_set_of_channels(
    conn: psycopg.Connection, tmp_path: Path, names: list[str]
) -> None:
    make_shop(conn, id="shop-a", channels=names)
    insert_products(conn, "shop-a", awkward_catalog(5, 300, fields=3) + edge_values())
    _watermark(conn)
    _both(conn, tmp_path, names)
