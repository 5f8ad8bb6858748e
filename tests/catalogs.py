"""The tests' and the benchmarks' one catalog generator (bench imports it; tests import no bench).

Source catalogs, for collect: a synthetic shop catalog (≈ 1 KB per product, Korean text, nested
options) in every source format, streamed to a file. ``products(count)`` yields the catalog's
nested items, deterministically; ``write(path, fmt, items)`` writes them as json, jsonl, csv or xml
(gzip optional); ``MAPPINGS[fmt]`` and ``FORMAT_OPTIONS[fmt]`` are the shop mapping and format
options that read each back; ``shop(fmt, url)`` declares a shop reading one.

Stored products, for feed: ``product(id, **overrides)`` is a row every channel accepts,
``insert_products`` stores rows, ``edge_catalog()`` is the golden catalog (one product per edge
case), ``generate_products`` makes many plain products inside the database.
"""

from __future__ import annotations

import gzip as gzip_module
import json
import random
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any
from xml.sax.saxutils import escape, quoteattr

import psycopg
from psycopg.types.json import Jsonb

FORMATS = ("json", "jsonl", "csv", "xml")

_SENTENCE = (
    "여름 겨울 봄 가을 신상 베이직 오버핏 슬림 캐주얼 데일리 프리미엄 한정판 면 린넨 니트 "
    "셔츠 티셔츠 바지 원피스 자켓 코트 가디건 스니커즈 가방 모자 양말 세트 특가 무료배송 "
    "고급 부드러운 가벼운 따뜻한 시원한 남성 여성 아동 공용 클래식 모던 빈티지 스트라이프"
)
_WORDS = tuple(_SENTENCE.split())
_BRANDS = ("무신사 스탠다드", "스파오", "탑텐", "에잇세컨즈", "지오다노", "ACME", "Nordwind")
_CATEGORIES = (
    ("패션의류", "남성의류", "티셔츠"), ("패션의류", "여성의류", "원피스"),
    ("패션잡화", "가방", "백팩"), ("스포츠", "러닝", "운동화"), ("생활", "주방", "식기"),
)
_COLORS = ("블랙", "화이트", "네이비", "베이지", "그레이", "레드")
_COLOR_CODES = ("BK", "WH", "NV", "BE", "GR", "RD")
_SIZES = ("S", "M", "L", "XL", "FREE")
_GENDERS = ("male", "female", "unisex")
_AGES = ("adult", "kids", "toddler")
_MATERIALS = ("면 100%", "린넨", "폴리에스터", "울 혼방")
_PATTERNS = ("스트라이프", "체크", "무지", "도트")
_CONDITIONS = ("new", "신상품", "중고", "리퍼")


def products(count: int, *, seed: int = 0, start: int = 0) -> Iterator[dict[str, Any]]:
    """``count`` nested products (ids P00000001…), the same for the same seed.

    Every optional internal field has a source field (under the shop's own name, so that the
    mappings below are exercised); ``options`` are colour/size options with a code, a price
    difference and a stock, for option expansion (``VARIANT_MAPPINGS``).
    """
    rng = random.Random(seed)
    for i in range(start, start + count):
        words = rng.choices(_WORDS, k=rng.randint(3, 5))
        sku = f"P{i:08d}"
        price = rng.randint(10, 5000) * 100
        on_sale = rng.random() < 0.3
        images = [f"https://cdn.shop.example/img/{sku}/{n}.jpg" for n in range(rng.randint(1, 4))]
        sale_day = 1 + i % 27
        colors = rng.sample(range(len(_COLORS)), k=rng.randint(1, 2))
        sizes = rng.sample(_SIZES, k=rng.randint(1, 2))
        yield {
            "sku": sku,
            "name": " ".join(words),
            "brand": rng.choice(_BRANDS),
            "desc": " ".join(rng.choices(_WORDS, k=rng.randint(45, 70))) + ".",
            "url": f"https://shop.example/products/{sku}",
            "price": {"amount": price, "currency": "KRW"},
            "sale_price": price - 1000 if on_sale else None,
            "stock": "Y" if rng.random() < 0.9 else "N",
            "images": images,
            "category": list(rng.choice(_CATEGORIES)),
            "gtin": f"880{rng.randint(0, 10**10 - 1):010d}",
            "options": [
                {"code": f"{_COLOR_CODES[c]}-{size}", "color": _COLORS[c], "size": size,
                 "add_price": rng.choice((0, 0, 1000, 2500)), "stock": rng.randint(0, 50)}
                for c in colors for size in sizes
            ],
            "mobile_url": f"https://m.shop.example/products/{sku}",
            "model_no": f"MD-{i % 9973:04d}",
            "ship_fee": rng.choice((0, 2500, 3000)),
            "state": rng.choice(_CONDITIONS),
            "release": f"2027-0{1 + i % 9}-15T09:00:00+09:00",
            "gpc": str(rng.choice((1604, 212, 5322))),
            "naver_cat": f"5000{rng.randint(0, 9999):04d}",
            "group_code": f"G{i // 3:07d}",
            "colour": _COLORS[colors[0]],
            "size_label": sizes[0],
            "sex": rng.choice(_GENDERS),
            "age": rng.choice(_AGES),
            "fabric": rng.choice(_MATERIALS),
            "motif": rng.choice(_PATTERNS),
            "sizing": "KR",
            "fit": rng.choice(("regular", "petite", "plus", "tall")),
            "sale_from": f"2026-11-{sale_day:02d}T00:00:00+09:00" if on_sale else "",
            "sale_until": f"2026-12-{sale_day:02d}T23:59:59+09:00" if on_sale else "",
        }


# Where each optional field of ``products`` comes from; the same paths in json, jsonl and csv.
_OPTIONAL: dict[str, Any] = {
    "mobile_link": "mobile_url",
    "mpn": "model_no",
    "shipping_cost": {"path": "ship_fee", "parse": "price"},
    "condition": "state",
    "availability_date": "release",
    "google_product_category": "gpc",
    "naver_category": "naver_cat",
    "item_group_id": "group_code",
    "color": "colour",
    "size": "size_label",
    "gender": "sex",
    "age_group": "age",
    "material": "fabric",
    "pattern": "motif",
    "size_system": "sizing",
    "size_type": "fit",
    "sale_price_start": "sale_from",
    "sale_price_end": "sale_until",
}
# The source field each optional internal field is read from (tests compare them one by one).
OPTIONAL_SOURCES: dict[str, str] = {
    field: spec if isinstance(spec, str) else spec["path"] for field, spec in _OPTIONAL.items()
}

MAPPINGS: dict[str, dict[str, Any]] = {
    "json": {
        "product_id": "sku",
        "title": {"template": "{brand} {name}"},
        "description": "desc",
        "link": "url",
        "price": {"path": "price.amount", "parse": "price"},
        "currency": "price.currency",
        "sale_price": {"path": "sale_price", "parse": "price"},
        "availability": {"path": "stock", "map": {"Y": "in_stock", "N": "out_of_stock"}},
        "image_link": {"path": "images", "first": True},
        "additional_image_links": {"path": "images", "slice": [1, 11]},
        "product_type": {"path": "category", "join": " > "},
        "brand": "brand",
        "gtin": "gtin",
        **_OPTIONAL,
    },
    "csv": {
        "product_id": "sku",
        "title": {"template": "{brand} {name}"},
        "description": "desc",
        "link": "url",
        "price": {"path": "price", "parse": "price"},
        "sale_price": {"path": "sale_price", "parse": "price"},
        "availability": {"path": "stock", "map": {"Y": "in_stock", "N": "out_of_stock"}},
        "image_link": {"path": "images", "split": "|", "first": True},
        "additional_image_links": {"path": "images", "split": "|", "slice": [1, 11]},
        "product_type": "category",
        "brand": "brand",
        "gtin": "gtin",
        **_OPTIONAL,
    },
    "xml": {
        "product_id": "@id",
        "title": {"template": "{brand} {name}"},
        "description": "desc",
        "link": "url",
        "price": {"path": "price.#text", "parse": "price"},
        "currency": "price.@currency",
        "sale_price": {"path": "sale_price", "parse": "price"},
        "availability": {"path": "stock", "map": {"Y": "in_stock", "N": "out_of_stock"}},
        "image_link": {"path": "images.image", "first": True},
        "additional_image_links": {"path": "images.image", "slice": [1, 11]},
        "product_type": {"path": "category.level", "join": " > "},
        "brand": "brand",
        "gtin": "gtin",
        **_OPTIONAL,
    },
}
MAPPINGS["jsonl"] = MAPPINGS["json"]
# The same shops with their options expanded: one product per option (colour/size), the record's
# id as item_group_id; the option's price is the record's plus its difference, its availability
# from its stock.
_VARIANTS = {"path": "options", "id": "{product_id}-{option.code}", "price_delta": "add_price",
             "stock": "stock", "fields": {"color": "color", "size": "size"}}
VARIANT_MAPPINGS: dict[str, dict[str, Any]] = {
    "json": {**MAPPINGS["json"], "variants": _VARIANTS},
    "jsonl": {**MAPPINGS["jsonl"], "variants": _VARIANTS},
    "csv": {**MAPPINGS["csv"], "variants": _VARIANTS},  # the cell holds the list as JSON
    "xml": {**MAPPINGS["xml"], "variants": {
        "path": "options.option", "id": "{product_id}-{option.@code}",
        "price_delta": "@add_price", "stock": "@stock",
        "fields": {"color": "@color", "size": "@size"}}},
}
FORMAT_OPTIONS: dict[str, dict[str, Any]] = {
    "json": {"item_path": "products.item"},
    "jsonl": {},
    "csv": {},
    "xml": {"item_element": "product"},
}
CSV_COLUMNS = ("sku", "name", "brand", "desc", "url", "price", "sale_price", "stock", "images",
               "category", "gtin", "options", *OPTIONAL_SOURCES.values())


def csv_row(item: dict[str, Any]) -> dict[str, str]:
    """The flat CSV shape of a product: prices as Korean shops write them ("12,900원")."""
    sale = item.get("sale_price")
    amount = item["price"]["amount"]
    return {
        "sku": str(item.get("sku", "")),
        "name": str(item.get("name", "")),
        "brand": str(item.get("brand", "")),
        "desc": str(item.get("desc", "")),
        "url": str(item.get("url", "")),
        "price": f"{amount:,}원" if isinstance(amount, int) else str(amount),
        "sale_price": "" if sale is None else f"{sale:,}원",
        "stock": str(item["stock"]),
        "images": "|".join(item["images"]),
        "category": " > ".join(item["category"]),
        "gtin": str(item["gtin"]),
        "options": json.dumps(item["options"], ensure_ascii=False),
        **{key: "" if item.get(key) is None else str(item[key])
           for key in OPTIONAL_SOURCES.values()},
    }


def _text(raw: IO[bytes], encoding: str) -> IO[str]:
    import io

    return io.TextIOWrapper(raw, encoding=encoding, newline="", write_through=False)


def write_json(out: IO[str], items: Iterable[dict[str, Any]]) -> None:
    out.write('{"shop": "synthetic", "products": [\n')
    for n, item in enumerate(items):
        if n:
            out.write(",\n")
        out.write(json.dumps(item, ensure_ascii=False))
    out.write("\n]}\n")


def write_jsonl(out: IO[str], items: Iterable[dict[str, Any]]) -> None:
    for item in items:
        out.write(json.dumps(item, ensure_ascii=False))
        out.write("\n")


def write_csv(out: IO[str], items: Iterable[dict[str, Any]], delimiter: str = ",") -> None:
    import csv

    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, delimiter=delimiter,
                            lineterminator="\r\n")
    writer.writeheader()
    for item in items:
        writer.writerow(csv_row(item))


def write_xml(out: IO[str], items: Iterable[dict[str, Any]]) -> None:
    out.write('<?xml version="1.0" encoding="UTF-8"?>\n<catalog>\n')
    for item in items:
        parts = [f"<product id={quoteattr(str(item['sku']))}>"]
        for key in ("name", "brand", "desc", "url", "stock", "gtin", *OPTIONAL_SOURCES.values()):
            if key in item and item[key] is not None:
                parts.append(f"<{key}>{escape(str(item[key]))}</{key}>")
        parts.append(f'<price currency="{item["price"]["currency"]}">'
                     f"{item['price']['amount']}</price>")
        if item.get("sale_price") is not None:
            parts.append(f"<sale_price>{item['sale_price']}</sale_price>")
        parts.append("<images>" + "".join(
            f"<image>{escape(u)}</image>" for u in item["images"]) + "</images>")
        parts.append("<category>" + "".join(
            f"<level>{escape(c)}</level>" for c in item["category"]) + "</category>")
        parts.append("<options>" + "".join(
            f"<option code={quoteattr(o['code'])} color={quoteattr(o['color'])} "
            f"size={quoteattr(o['size'])} add_price=\"{o['add_price']}\" "
            f"stock=\"{o['stock']}\"/>" for o in item["options"]) + "</options>")
        parts.append("</product>\n")
        out.write("".join(parts))
    out.write("</catalog>\n")


def write(
    path: Path,
    fmt: str,
    items: Iterable[dict[str, Any]],
    *,
    gzip: bool = False,
    encoding: str = "utf-8",
    bom: bool = False,
) -> int:
    """Write ``items`` to ``path`` as ``fmt``; return the file's size in bytes."""
    with open(path, "wb") as handle:
        raw: IO[bytes] = (gzip_module.GzipFile(fileobj=handle, mode="wb", compresslevel=1)  # type: ignore[assignment]
                          if gzip else handle)
        try:
            if bom:
                raw.write(b"\xef\xbb\xbf")
            out = _text(raw, encoding)
            {"json": write_json, "jsonl": write_jsonl, "csv": write_csv,
             "xml": write_xml}[fmt](out, items)
            out.flush()
            out.detach()
        finally:
            if gzip:
                raw.close()
    return path.stat().st_size


def shop(fmt: str, source_url: str, **overrides: Any) -> dict[str, Any]:
    """A shop declaration (for ``parse_shop`` or a shop file) reading a generated catalog."""
    raw: dict[str, Any] = {
        "id": "synthetic",
        "name": "Synthetic shop",
        "source_url": source_url,
        "format": fmt,
        "currency": "KRW",
        "channels": ["google"],
        "format_options": dict(FORMAT_OPTIONS[fmt]),
        "mapping": dict(MAPPINGS[fmt]),
    }
    raw.update(overrides)
    return raw


# ---------------------------------------------------------------------------------------------
# Stored products, for the feed
# ---------------------------------------------------------------------------------------------

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
