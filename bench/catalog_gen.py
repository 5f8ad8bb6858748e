"""A synthetic shop catalog (≈ 1 KB per product, Korean text, nested options) in every source
format, streamed to a file: the tests' and the benchmark's one generator.

``products(count)`` yields the catalog's nested items, deterministically; ``write(path, fmt, items)``
writes them as json, jsonl, csv or xml (gzip optional); ``MAPPINGS[fmt]`` and
``FORMAT_OPTIONS[fmt]`` are the shop mapping and format options that read each back.
"""

from __future__ import annotations

import gzip as gzip_module
import json
import random
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any
from xml.sax.saxutils import escape, quoteattr

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


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("path", type=Path)
    parser.add_argument("--format", choices=FORMATS, default="json")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gzip", action="store_true")
    args = parser.parse_args()
    size = write(args.path, args.format, products(args.count, seed=args.seed), gzip=args.gzip)
    print(f"{args.path}: {args.count} products, {size} bytes")


if __name__ == "__main__":
    main()
