"""Test catalogs for the feed: a small one covering the channels' edge cases, and a generated one."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

T0 = datetime(2026, 11, 1, 3, 0, tzinfo=UTC)
T1 = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)  # after the summary test's watermark
WATERMARK = datetime(2026, 11, 10, 3, 0, tzinfo=UTC)

COLUMNS = (
    "product_id", "title", "description", "link", "mobile_link", "image_link",
    "additional_image_links", "price", "sale_price", "currency", "availability",
    "availability_date", "condition", "brand", "gtin", "mpn", "item_group_id", "product_type",
    "google_product_category", "naver_category", "shipping_cost", "image_url", "image_fitness",
    "additional_image_urls", "first_seen_at", "changed_at", "gone_at", "color", "size", "gender",
    "age_group", "material", "pattern", "size_system", "size_type", "sale_price_start",
    "sale_price_end",
)


def product(product_id: str, **overrides: Any) -> dict[str, Any]:
    """A product every channel accepts, with ``overrides``."""
    row: dict[str, Any] = {
        "product_id": product_id,
        "title": f"Product {product_id}",
        "description": f"Description of {product_id}",
        "link": f"https://shop.example/p/{product_id}",
        "mobile_link": None,
        "image_link": f"https://shop.example/img/{product_id}.jpg",
        "additional_image_links": [],
        "price": Decimal("12900"),
        "sale_price": None,
        "currency": "KRW",
        "availability": "in_stock",
        "availability_date": None,
        "condition": "new",
        "brand": "Acme",
        "gtin": None,
        "mpn": f"MPN-{product_id}",
        "item_group_id": None,
        "product_type": "Home > Kitchen",
        "google_product_category": None,
        "naver_category": None,
        "shipping_cost": Decimal("0"),
        "image_url": None,
        "image_fitness": None,
        "additional_image_urls": None,
        "first_seen_at": T0,
        "changed_at": T0,
        "gone_at": None,
        "color": None, "size": None, "gender": None, "age_group": None, "material": None,
        "pattern": None, "size_system": None, "size_type": None, "sale_price_start": None,
        "sale_price_end": None,
    }
    unknown = set(overrides) - set(row)
    if unknown:
        raise KeyError(f"not a product column: {unknown}")
    row.update(overrides)
    return row


def insert_products(conn: psycopg.Connection, shop_id: str, rows: Iterable[Mapping[str, Any]]) -> None:
    """Insert (or replace) products, committing."""
    names = ", ".join(COLUMNS)
    marks = ", ".join(["%s"] * (len(COLUMNS) + 2))
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in COLUMNS[1:])
    with conn.cursor() as cur:
        cur.executemany(
            f"INSERT INTO products (shop_id, content_hash, {names}) VALUES ({marks})"
            f" ON CONFLICT (shop_id, product_id) DO UPDATE SET {updates}",
            [
                (shop_id, b"\x00", *(
                    Jsonb(r[c]) if c == "image_fitness" and r[c] is not None else r[c]
                    for c in COLUMNS
                ))
                for r in rows
            ],
        )
    conn.commit()


LONG_WORDS = " ".join(["word"] * 60)  # 299 characters


def edge_catalog() -> list[dict[str, Any]]:
    """The golden catalog: one product per edge case (small by construction)."""
    imgs = [f"https://shop.example/img/extra-{i}.jpg" for i in range(12)]
    return [
        product("A-001", title="한국어 상품명 — 무선 이어폰",
                description="<p>고음질 <b>블루투스</b> 5.3&nbsp;지원</p>",
                product_type="디지털 > 음향기기 > 이어폰", naver_category="50000204",
                first_seen_at=T1, changed_at=T1),  # new since the watermark: "I"
        product("A-002", title='Tom & Jerry <Deluxe> "Edition" \'99', brand="Q&A <Co>",
                description="Quotes \" and ' and & and < and > survive"),
        product("A-003", title="Control\x01char\x0bs\x1f gone", description="tab\there\nnew line\r\nend\x7f"),
        product("A-004", title="Emoji 🎉 party pack 👍🏽", description="Fun 😀 for all"),
        product("A-005", title="T" * 100 + " " + "U" * 49),  # 150: at Google's limit
        product("A-006", title=LONG_WORDS, description=("lorem ipsum " * 600).strip()),
        product("A-007", currency="USD", price=Decimal("19.995"), sale_price=Decimal("14.5"),
                shipping_cost=Decimal("3.50"), changed_at=T1),
        product("A-008", price=Decimal("12900.5"), sale_price=Decimal("9900")),
        product("A-009", brand=None, mpn=None, gtin=None),  # Meta rejects; Google identifier_exists
        product("A-010", brand=None, mpn="X-1", gtin="0 12345-67890 5"),
        product("A-011", availability="out_of_stock", changed_at=T1),  # summary: sold out, "D"
        product("A-012", availability="preorder",
                availability_date=datetime(2027, 1, 15, 9, 30, tzinfo=UTC)),
        product("A-013", availability="preorder"),  # no date: Google rejects
        product("A-014", additional_image_links=imgs[:1]),
        product("A-015", additional_image_links=imgs),  # 12: 10 kept
        product("A-016", item_group_id="A-016"),  # group equal to its own id
        product("A-017", item_group_id="A-001"),  # group equal to another product's id
        product("A-018", item_group_id="G-1"),
        product("A-019", description=None),  # Google and Meta reject
        product("A-020", price=Decimal("0")),  # every channel rejects
        product("A-021", link="javascript:alert(1)"),  # bad link: rejected
        product("A-022", image_url="https://cdn.example/images/shop-a/abc.jpg",
                image_fitness={"google": True, "google_tsv": True, "meta": False, "naver": True,
                               "naver_summary": True},
                additional_image_links=imgs[:2],
                additional_image_urls=["https://cdn.example/images/shop-a/def.jpg"]),
        product("A-031", image_url="s3://bucket/images/shop-a/abc.jpg",  # not public: not used
                image_fitness={"google": True, "google_tsv": True, "meta": True, "naver": True,
                               "naver_summary": True},
                additional_image_urls=["s3://bucket/images/shop-a/def.jpg"]),
        product("A-023", shipping_cost=None, changed_at=T1),  # Naver rejects, summary too
        product("A-030", changed_at=T1, price=Decimal("15000")),  # updated: "U"
        product("A-024", availability="backorder", condition="refurbished",
                availability_date=datetime(2026, 12, 24, 0, 0, tzinfo=UTC),
                link="https://shop.example/p/a,b?x=1&y=2"),
        product("A-025", availability="discontinued", condition="used", shipping_cost=Decimal("-1")),
        product("A-026", product_type=None),  # Naver: no category
        product("A-027",
                description="<script>alert('x')</script>Visible &eacute;t&eacute; &#1;text<!-- c -->"),
        # Issue 12's rules (the build time is helpers.NOW, 2026-11-29 03:00 UTC).
        product("A-032", title="린넨 셔츠 네이비 M", item_group_id="SHIRT", color="Navy", size="M",
                gender="남성", age_group="adult", material="Linen", pattern="Solid",
                size_system="eu", size_type="regular"),
        product("A-033", title="린넨 셔츠 화이트 M", item_group_id="SHIRT", color="White", size="M",
                gender="male", age_group="adult"),
        product("A-034", link="https://shop.example/상품/셔츠 1?색상=네이비",
                image_link="https://shop.example/이미지/셔츠 1.jpg"),  # encoded, not refused
        product("A-035", sale_price=Decimal("9900"),  # a sale open now
                sale_price_start=datetime(2026, 11, 25, tzinfo=UTC),
                sale_price_end=datetime(2026, 12, 5, tzinfo=UTC)),
        product("A-036", sale_price=Decimal("9900"),  # a sale to come: Naver keeps the price
                sale_price_start=datetime(2026, 12, 10, tzinfo=UTC),
                sale_price_end=datetime(2026, 12, 20, tzinfo=UTC)),
        product("A-037", gtin="2000000000015"),  # restricted for Google; Naver's barcode
        product("A-038", gtin="8801234567890"),  # wrong check digit: dropped everywhere
        product("A-039", image_link="http://10.0.0.1/img.jpg"),  # private host: excluded
        product("상품-040"),  # not an ASCII id: Naver excludes it, the others keep it
        product("A-028", gone_at=T0),  # gone before the watermark: in no feed
        product("A-029", gone_at=T1, changed_at=T0),  # gone after it: a summary "D"
    ]


def generate_products(conn: psycopg.Connection, shop_id: str, count: int, *, start: int = 0) -> None:
    """``count`` plain products generated by the database itself (for big tests and the bench)."""
    conn.execute(
        """
        INSERT INTO products (shop_id, product_id, title, description, link, image_link,
            additional_image_links, price, sale_price, currency, availability, condition, brand,
            gtin, mpn, item_group_id, product_type, shipping_cost, content_hash)
        SELECT %(shop)s, 'P' || lpad(i::text, 9, '0'),
               'Generated product number ' || i || ' with a reasonably long title',
               'A description of product ' || i || ' — 설명 & details <b>bold</b> that runs for a'
                 || ' while, as real descriptions do, with several sentences of text in it.',
               'https://shop.example/p/' || i, 'https://shop.example/img/' || i || '.jpg',
               ARRAY['https://shop.example/img/' || i || '-2.jpg'],
               1000 + (i %% 5000) * 10, CASE WHEN i %% 4 = 0 THEN 900 + (i %% 5000) * 10 END,
               'KRW', CASE WHEN i %% 10 = 0 THEN 'out_of_stock' ELSE 'in_stock' END, 'new',
               'Brand ' || (i %% 100), NULL, 'M-' || i, 'G' || (i / 3),
               'Category > Sub ' || (i %% 20), 2500, '\\x00'
        FROM generate_series(%(start)s::int, %(end)s::int) AS i
        """,
        {"shop": shop_id, "start": start, "end": start + count - 1},
    )
    conn.commit()
