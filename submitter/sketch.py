"""``catalog-submit shops sketch URL``: a shop file proposed from the head of a shop's export.

It reads only the head (at most ``HEAD_BYTES`` of the decoded export, through the same guarded
fetch as collect), detects gzip, the format, the encoding and where the items are (JSON: the
outermost array of objects that repeats; XML: the repeated element), parses the head with the
collect task's own format readers, lists the fields with example values and fill rates, and
proposes a mapping by names and by values. Every choice it is not sure of is marked: ``# CHECK``
comments in TOML, a ``_notes`` list in JSON (outside ``shops``, so the file imports unchanged).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import re
import sys
import urllib.parse
import zlib
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO
from xml.parsers import expat

import ijson

from submitter.shopfile import parse_shop
from worker.collect.formats import records as format_records
from worker.collect.mapping import CompiledMapping, ParseFailure, mapping_problems
from worker.common.errors import EXIT_DATAERR, EXIT_OK, CatalogError, ConfigError, FatalError
from worker.common.net import fetch
from worker.common.product import REQUIRED_FIELDS
from worker.common.settings import Settings

HEAD_BYTES = 1 << 20  # of the decoded export
RAW_BYTES = 4 << 20  # read at most this much (a gzip head decodes to more)
EXAMPLES = 3
DEFAULT_MAX_REJECT_SHARE = 0.10  # worker.common.shops' default for the option
_IMAGE = re.compile(r"\.(jpe?g|png|gif|webp|avif|bmp|tiff?)(\?.*)?$", re.IGNORECASE)
_URL = re.compile(r"^https?://", re.IGNORECASE)
_CURRENCY_SIGNS = (("원", "KRW"), ("₩", "KRW"), ("KRW", "KRW"), ("US$", "USD"), ("$", "USD"),
                   ("USD", "USD"), ("€", "EUR"), ("EUR", "EUR"), ("¥", "JPY"), ("JPY", "JPY"),
                   ("£", "GBP"), ("GBP", "GBP"))
_PRICEY = re.compile(r"^\D{0,4}\d[\d.,'\s]*\D{0,4}$")

# Internal field → names that mean it (compared folded: lower case, no spaces, '-' or '_').
NAMES: dict[str, tuple[str, ...]] = {
    "product_id": ("id", "@id", "sku", "productid", "product_code", "productcode", "code",
                   "itemid", "goodsno", "goods_no", "itemcode", "상품코드", "상품번호", "품번"),
    "title": ("title", "name", "productname", "product_name", "goodsname", "itemname", "상품명",
              "제목", "이름"),
    "description": ("description", "desc", "detail", "summary", "상품설명", "설명"),
    "price": ("price", "amount", "regularprice", "listprice", "price.#text", "판매가", "가격",
              "정가", "pricing.amount"),
    "sale_price": ("saleprice", "sale", "discountprice", "specialprice", "pricing.sale", "할인가",
                   "세일가"),
    "link": ("link", "url", "producturl", "product_url", "href", "permalink", "상품url",
             "상품링크"),
    "image_link": ("image", "imagelink", "image_link", "imageurl", "img", "images", "thumbnail",
                   "picture", "media.images", "이미지url", "이미지", "대표이미지"),
    "availability": ("availability", "stock", "instock", "in_stock", "status", "stockstatus",
                     "재고", "재고상태", "판매상태"),
    "brand": ("brand", "brand.name", "maker", "manufacturer", "vendor", "브랜드", "제조사"),
    "gtin": ("gtin", "ean", "upc", "barcode", "isbn", "jan", "바코드"),
    "mpn": ("mpn", "model", "modelno", "model_number", "모델명"),
    "product_type": ("category", "categories", "producttype", "product_type", "분류", "카테고리"),
    "shipping_cost": ("shipping", "shippingcost", "shipping_cost", "deliveryfee", "delivery",
                      "배송비"),
    "item_group_id": ("itemgroupid", "groupid", "parentid", "parent_sku"),
    "condition": ("condition", "상태"),
}
# Fields whose source is a weaker guess by name alone: a note says so.
_WEAK = {"출판사": "brand", "publisher": "brand"}
_IN_STOCK = {"y", "yes", "true", "1", "instock", "in stock", "in_stock", "available", "있음",
             "판매중", "재고있음"}
_OUT_OF_STOCK = {"n", "no", "false", "0", "outofstock", "out of stock", "out_of_stock",
                 "soldout", "sold out", "없음", "품절", "일시품절"}


class NotACatalog(FatalError):
    """The export is not a catalog at all (an HTML error page, an empty body)."""


@dataclass
class FieldStats:
    path: str
    kind: str  # text, number, url, image_url, price_text, list, list_of_objects, object, bool
    filled: int = 0
    examples: list[str] = field(default_factory=list)
    values: Counter[str] = field(default_factory=Counter)
    item_keys: set[str] = field(default_factory=set)


@dataclass
class Sketch:
    url: str
    fmt: str
    compressed: bool
    encoding: str
    format_options: dict[str, Any]
    records: int
    truncated: bool
    fields: list[FieldStats]
    shop: dict[str, Any]
    notes: dict[str, str]  # key ("mapping.price", "currency") → why it needs a look


# ---- reading the head -------------------------------------------------------------------------


def read_head(url: str, *, allow: tuple[Any, ...] = ()) -> tuple[bytes, bool, bool]:
    """The first HEAD_BYTES of the decoded export; whether it was gzip; whether it was cut."""
    raw = bytearray()
    if url.lower().startswith(("http://", "https://")):
        with fetch(url, allow=allow) as response:
            while len(raw) < RAW_BYTES:
                chunk = response.read(min(1 << 16, RAW_BYTES - len(raw)))
                if not chunk:
                    break
                raw += chunk
            more = bool(response.read(1)) if len(raw) >= RAW_BYTES else False
    elif url.lower().startswith("file://") or "://" not in url:
        path = Path(urllib.parse.unquote(urllib.parse.urlsplit(url).path) if "://" in url else url)
        try:
            with path.open("rb") as f:
                raw += f.read(RAW_BYTES)
                more = bool(f.read(1))
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    else:
        raise ConfigError(f"{url}: sketch reads http(s):// and file:// exports (download an s3:// "
                          "one first, or give its presigned https URL)")
    data = bytes(raw)
    if data[:2] == b"\x1f\x8b":
        inflater = zlib.decompressobj(wbits=31)
        try:
            body = inflater.decompress(data, HEAD_BYTES)
        except zlib.error as exc:
            raise FatalError(f"{url}: a gzip header, but the data is not gzip ({exc})") from exc
        cut = more or bool(inflater.unconsumed_tail) or not inflater.eof
        return body, True, cut
    return data[:HEAD_BYTES], False, more or len(data) > HEAD_BYTES


def _html_title(text: str) -> str:
    match = re.search(r"<title[^>]*>(.*?)</title>", text, re.IGNORECASE | re.DOTALL)
    if match:
        return " ".join(match.group(1).split())[:120]
    match = re.search(r"<h1[^>]*>(.*?)</h1>", text, re.IGNORECASE | re.DOTALL)
    return " ".join(re.sub(r"<[^>]+>", "", match.group(1)).split())[:120] if match else ""


def detect_format(head: bytes, url: str) -> str:
    """json, jsonl, csv or xml from the first bytes; NotACatalog for an HTML page or nothing."""
    text = head[:4096].decode("utf-8", "replace").lstrip("\ufeff \t\r\n")
    if not text:
        raise NotACatalog(f"{url}: the export is empty: there is nothing to sketch")
    lower = text[:200].lower()
    if lower.startswith(("<!doctype html", "<html")) or (
        lower.startswith("<") and "<html" in lower and "<?xml" not in lower
    ):
        title = _html_title(head[:65536].decode("utf-8", "replace"))
        raise NotACatalog(
            f"{url}: this is an HTML page, not a catalog export"
            + (f" (its title: {title!r})" if title else "")
            + ": the shop's export job probably failed or the URL points at a web page; ask the "
            "shop for the export's own URL")
    if text.startswith("<"):
        return "xml"
    if text.startswith("{"):
        lines = [line.strip() for line in head.decode("utf-8", "replace").splitlines()
                 if line.strip()]
        if len(lines) >= 2 and lines[1].startswith("{"):
            try:
                json.loads(lines[0])
                return "jsonl"
            except ValueError:
                pass
        return "json"
    if text.startswith("["):
        return "json"
    return "csv"


def detect_encoding(head: bytes, cut: bool) -> str:
    """utf-8 (with or without BOM), else cp949 (most Korean shops' legacy exports)."""
    body = head
    if cut and b"\n" in body:
        body = body[: body.rindex(b"\n")]  # a multi-byte character may be cut at the end
    try:
        body.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError:
        pass
    for candidate in ("cp949", "euc-kr"):
        try:
            body.decode(candidate)
            return candidate
        except UnicodeDecodeError:
            continue
    raise FatalError("the export is neither UTF-8 nor CP949: convert it to UTF-8, or pass "
                     "its encoding in format_options.encoding by hand")


def json_item_path(head: bytes, url: str) -> str:
    """The ijson prefix of the outermost array of objects that repeats."""
    counts: Counter[str] = Counter()
    try:
        for prefix, event, _ in ijson.parse(io.BytesIO(head)):
            if event == "start_map" and (prefix == "item" or prefix.endswith(".item")):
                counts[prefix] += 1
    except ijson.JSONError:
        pass  # the head ends mid-document
    candidates = [p for p, n in counts.items() if n >= 1]
    outer = [p for p in candidates
             if not any(p != q and p.startswith(q + ".") for q in candidates)]
    if not outer:
        raise FatalError(f"{url}: no array of objects in the first {len(head)} bytes of the JSON "
                         "document: where are the products?")
    return max(outer, key=lambda p: (counts[p], -p.count(".")))


def xml_item_element(head: bytes, url: str) -> str:
    """The local name of the repeated element: the shallowest element with children that
    repeats under one parent."""
    parser = expat.ParserCreate(namespace_separator=" ")
    stack: list[str] = []
    has_children: set[str] = set()
    counts: Counter[str] = Counter()

    def start(name: str, attrs: Any) -> None:
        local = name.rsplit(" ", 1)[-1]
        if stack:
            has_children.add("/".join(stack))
        stack.append(local)
        counts["/".join(stack)] += 1

    def end(name: str) -> None:
        stack.pop()

    def refuse(*args: Any) -> None:
        raise FatalError(f"{url}: the XML declares entities: refused (collect refuses them too)")

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.EntityDeclHandler = refuse
    with contextlib.suppress(expat.ExpatError):  # the head ends mid-document
        parser.Parse(head, False)
    repeated = [p for p, n in counts.items() if n >= 2 and p in has_children]
    if not repeated:
        repeated = [p for p, n in counts.items() if n >= 2]
    if not repeated:
        raise FatalError(f"{url}: no repeated element in the first {len(head)} bytes of the XML")
    best = min(repeated, key=lambda p: (p.count("/"), -counts[p]))
    return best.rsplit("/", 1)[-1]


def head_records(fmt: str, head: bytes, options: Mapping[str, Any], url: str,
                 limit: int) -> Iterator[dict[str, Any]]:
    """The head's records as collect reads them, up to ``limit``; a cut at the end is expected."""
    stream: Any = io.BufferedReader(io.BytesIO(head))
    got = 0
    try:
        for _, record in format_records(fmt, stream, options, f"sketch of {url}"):
            if isinstance(record, Mapping):  # not a RejectedRecord: a bad row is no example
                yield dict(record)
                got += 1
                if got >= limit:
                    return
    except CatalogError:
        if got == 0:
            raise


# ---- fields and the proposal --------------------------------------------------------------------


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float) or type(value).__name__ == "Decimal":
        return "number"
    if isinstance(value, list):
        return "list_of_objects" if value and all(isinstance(v, Mapping) for v in value) else "list"
    if isinstance(value, Mapping):
        return "object"
    text = str(value).strip()
    if _URL.match(text):
        return "image_url" if _IMAGE.search(text) else "url"
    if (_PRICEY.match(text) and any(sign in text for sign, _ in _CURRENCY_SIGNS)) or (
        re.match(r"^\d{1,3}(,\d{3})+(\.\d+)?$", text)
    ):
        return "price_text"
    return "text"


def _walk(record: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in record.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value and not set(value) <= {"#text"}:
            yield from _walk(value, path + ".")
        else:
            yield path, value


def field_stats(records: list[dict[str, Any]]) -> list[FieldStats]:
    stats: dict[str, FieldStats] = {}
    for record in records:
        for path, value in _walk(record):
            empty = value is None or value == "" or value == [] or value == {}
            kind = _kind(value) if not empty else "text"
            s = stats.get(path)
            if s is None:
                s = stats[path] = FieldStats(path, kind)
            elif not empty and s.kind != kind:
                # e.g. some prices are text with a sign, some plain numbers: text wins
                s.kind = ({s.kind, kind} == {"url", "image_url"} and "url") or (
                    "price_text" if "price_text" in (s.kind, kind) else s.kind)
            if empty:
                continue
            s.filled += 1
            shown = json.dumps(value, ensure_ascii=False, default=str) if isinstance(
                value, list | Mapping) else str(value)
            if isinstance(value, list):
                for item in value:
                    if isinstance(item, Mapping):
                        s.item_keys.update(str(k) for k in item)
                    elif isinstance(item, str) and _IMAGE.search(item) and _URL.match(item):
                        s.kind = "image_list"
            s.values[shown[:200]] += 1
            if len(s.examples) < EXAMPLES and shown[:80] not in s.examples:
                s.examples.append(shown[:80])
    return list(stats.values())


def _fold(name: str) -> str:
    return re.sub(r"[\s_\-]", "", name.lower())


def _by_name(stats: list[FieldStats], target: str) -> list[FieldStats]:
    wanted = [_fold(n) for n in NAMES.get(target, ())]
    found = []
    for rank, name in enumerate(wanted):
        for s in stats:
            last = s.path.rsplit(".", 1)[-1] if not s.path.endswith("#text") else s.path
            if _fold(s.path) == name or _fold(last) == name:
                found.append((rank, s.path.count("."), s))
    found.sort(key=lambda t: (t[0], t[1]))
    return [s for _, _, s in found]


def _currency(stats: list[FieldStats], price: FieldStats | None) -> tuple[str | None, str]:
    if price is not None:
        joined = " ".join(price.values)
        for sign, code in _CURRENCY_SIGNS:
            if sign in joined:
                return code, f"from the prices' sign {sign!r}"
    for s in stats:
        if s.path.lower().endswith(("currency", "@currency", "currency_code")) and s.values:
            value = s.values.most_common(1)[0][0].strip().upper()
            if re.fullmatch(r"[A-Z]{3}", value):
                return value, f"from the field {s.path}"
    return None, ""


def _availability_map(s: FieldStats) -> dict[str, str] | None:
    mapping: dict[str, str] = {}
    for value in s.values:
        folded = value.strip().lower()
        if folded in ("in_stock", "out_of_stock", "preorder", "backorder"):
            continue  # already a value collect takes
        if folded in _IN_STOCK:
            mapping[value] = "in_stock"
        elif folded in _OUT_OF_STOCK:
            mapping[value] = "out_of_stock"
        else:
            return None
    return mapping


def propose(stats: list[FieldStats], records: int) -> tuple[dict[str, Any], dict[str, str]]:
    """The mapping (internal field → spec) and the notes on what to check."""
    mapping: dict[str, Any] = {}
    notes: dict[str, str] = {}
    used: set[str] = set()

    def take(target: str, s: FieldStats, spec: Any, note: str | None = None) -> None:
        mapping[target] = spec
        used.add(s.path)
        if s.filled < records:
            note = (note + "; " if note else "") + f"filled in {s.filled} of {records} records"
        if note:
            notes[target] = note

    def first_free(cands: list[FieldStats]) -> FieldStats | None:
        return next((s for s in cands if s.path not in used and s.filled), None)

    # product_id: by name, else the first text field whose values are all distinct
    s = first_free(_by_name(stats, "product_id"))
    if s is None:
        s = next((x for x in stats if x.kind in ("text", "number") and x.filled == records
                  and len(x.values) == records), None)
        if s is not None:
            take("product_id", s, s.path, "chosen because its values are all distinct")
    elif len(s.values) < s.filled:
        take("product_id", s, s.path, "its values repeat in the head: is it unique per product?")
    else:
        take("product_id", s, s.path)
    for target in ("title", "description", "brand", "mpn", "item_group_id", "condition"):
        s = first_free(_by_name(stats, target))
        if s is not None and s.kind in ("text", "number"):
            take(target, s, s.path)
    if "brand" not in mapping:
        for s in stats:
            if _WEAK.get(s.path.rsplit(".", 1)[-1].lower()) == "brand" and s.path not in used:
                take("brand", s, s.path, f"{s.path} (publisher) as the brand")
                break
    s = first_free(_by_name(stats, "gtin"))
    if s is not None:
        take("gtin", s, s.path)
    for target in ("price", "sale_price"):
        cands = [x for x in _by_name(stats, target)
                 if x.kind in ("number", "price_text", "text")]
        if not cands and target == "price":
            cands = [x for x in stats if x.kind == "price_text"]
        s = first_free(cands)
        if s is not None:
            take(target, s, {"path": s.path, "parse": "price"} if s.kind != "number" else s.path)
    # link: a URL that is not an image; image_link: URLs ending in an image extension
    s = first_free([x for x in _by_name(stats, "link") if x.kind == "url"]) or first_free(
        [x for x in stats if x.kind == "url"])
    if s is not None:
        take("link", s, s.path, None if s in _by_name(stats, "link") else
             "the first page URL found: is it the product page?")
    image_cands = [x for x in _by_name(stats, "image_link")
                   if x.kind in ("image_url", "image_list", "url", "list")]
    image_cands += [x for x in stats if x.kind in ("image_url", "image_list")]
    s = first_free(image_cands)
    if s is not None:
        if s.kind in ("image_list", "list"):
            take("image_link", s, {"path": s.path, "first": True})
            mapping["additional_image_links"] = {"path": s.path, "slice": [1, 11]}
        else:
            take("image_link", s, s.path, None if s.kind == "image_url" else
                 "its URLs do not end in an image extension")
    s = first_free(_by_name(stats, "availability"))
    if s is not None:
        values = _availability_map(s)
        if values is None:
            take("availability", s, s.path,
                 "values not recognised (" + ", ".join(list(s.values)[:5]) + "): add a map to "
                 "in_stock / out_of_stock")
        elif values:
            take("availability", s, {"path": s.path, "map": values},
                 "values mapped by their meaning: " + ", ".join(f"{k}→{v}"
                                                                for k, v in values.items()))
        else:
            take("availability", s, s.path)
    s = first_free(_by_name(stats, "product_type"))
    if s is not None:
        take("product_type", s, {"path": s.path, "join": " > "} if s.kind == "list" else s.path)
    s = first_free(_by_name(stats, "shipping_cost"))
    if s is not None and s.kind in ("number", "price_text", "text"):
        take("shipping_cost", s, {"path": s.path, "parse": "decimal"})
    for s in stats:
        if s.kind == "list_of_objects" and s.path not in used:
            keys = ", ".join(sorted(s.item_keys)[:6])
            notes[f"variants:{s.path}"] = (
                f"{s.path} is a list of options ({keys}): variants are not mapped; each option "
                "would need its own product row (item_group_id = the parent's id) in the export, "
                "otherwise it stays in extra")
    for target in ("product_id", "title", "price", "link"):
        if target not in mapping:
            notes[target] = f"REQUIRED: no field found for {target}: map it by hand"
    return mapping, notes


def head_rejects(mapping: Mapping[str, Any], currency: str,
                 records: list[dict[str, Any]]) -> list[str]:
    """Why each head record would be rejected by collect, as far as the mapping tells: a required
    field missing, or a value its ``parse`` cannot read (collect's validation checks more)."""
    compiled = CompiledMapping(mapping, currency=currency)
    reasons = []
    for n, record in enumerate(records, 1):
        fields, _ = compiled.apply(record)
        for name in REQUIRED_FIELDS:
            value = fields.get(name)
            if isinstance(value, ParseFailure):
                reasons.append(f"record {n}: {name} {value.reason}")
                break
            if value is None or value == "":
                reasons.append(f"record {n}: {name} is missing")
                break
    return reasons


def _shop_id(url: str, given: str | None) -> str:
    if given:
        return given
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    stem = Path(parts.path).name.split(".")[0]
    base = stem if (not host or re.fullmatch(r"[\d.:]+|localhost", host)) else host.split(".")[0]
    base = re.sub(r"[^A-Za-z0-9_-]+", "-", base).strip("-_") or "new-shop"
    return base[:64]


def sketch(url: str, *, fmt: str | None = None, shop_id: str | None = None,
           max_records: int = 200, allow: tuple[Any, ...] = ()) -> Sketch:
    """Read the head of ``url`` and propose a shop (see the module's docstring)."""
    head, compressed, cut = read_head(url, allow=allow)
    detected = detect_format(head, url)
    fmt = fmt or detected
    options: dict[str, Any] = {}
    encoding = "utf-8"
    notes: dict[str, str] = {}
    if fmt == "csv":
        encoding = detect_encoding(head, cut)
        if encoding != "utf-8":
            options["encoding"] = encoding
        first = head.decode(encoding, "replace").splitlines()[0] if head else ""
        counts = {d: first.count(d) for d in (",", "\t", ";", "|")}
        delimiter = max(counts, key=lambda d: counts[d])
        if delimiter != "," and counts[delimiter]:
            options["delimiter"] = "\\t" if delimiter == "\t" else delimiter
    elif fmt == "json":
        path = json_item_path(head, url)
        if path != "item":
            options["item_path"] = path
    elif fmt == "xml":
        options["item_element"] = xml_item_element(head, url)
    records = list(head_records(fmt, head, options, url, max_records))
    if not records:
        raise FatalError(f"{url}: no records in the head of the {fmt} export")
    stats = field_stats(records)
    mapping, notes = propose(stats, len(records))
    price_spec = mapping.get("price")
    price_path = price_spec["path"] if isinstance(price_spec, Mapping) else price_spec
    price = next((s for s in stats if s.path == price_path), None)
    currency, why = _currency(stats, price)
    if currency is None:
        currency = "KRW"
        notes["currency"] = "no currency sign or field in the head: KRW assumed"
    else:
        notes["currency"] = f"{currency} {why}"
    name = _shop_id(url, shop_id)
    shop: dict[str, Any] = {
        "id": name,
        "name": name.replace("-", " ").title(),
        "source_url": url,
        "format": fmt,
        "currency": currency,
        "channels": ["google"],
    }
    if options:
        shop["format_options"] = options
    shop["mapping"] = mapping
    notes["channels"] = "google only: add meta, naver … as the shop needs"
    problems = mapping_problems(mapping, fmt, options)
    if problems:
        notes["mapping"] = "the proposal does not validate: " + "; ".join(problems)
    else:
        bad = head_rejects(mapping, currency, records)
        if bad:
            share = len(bad) / len(records)
            examples = "; ".join(bad[:3])
            note = (f"{len(bad)} of {len(records)} records in the head would be rejected "
                    f"({examples})")
            if share > DEFAULT_MAX_REJECT_SHARE:
                # collect refuses a snapshot past max_reject_share: the rest would not load either
                tolerance = min(0.5, math.ceil(round((share + 0.05) * 20, 6)) / 20)
                shop["options"] = {"max_reject_share": tolerance}
                note += f": max_reject_share raised to {tolerance:.0%} so that the rest loads"
            notes["options"] = note
    return Sketch(url, fmt, compressed, encoding, options, len(records), cut, stats, shop, notes)


# ---- printing -----------------------------------------------------------------------------------


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}"
                                for k, v in value.items()) + " }"
    raise TypeError(f"no TOML for {type(value).__name__}")


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key, ensure_ascii=False)


def _comment(text: str) -> str:
    return " ".join(text.split())


def to_toml(result: Sketch) -> str:
    shop, notes = result.shop, result.notes
    lines = [
        f"# Proposed by `catalog-submit shops sketch` from the first {result.records} records of",
        f"# {_comment(result.url)} ({result.fmt}"
        + (", gzip" if result.compressed else "") + f", {result.encoding}"
        + (", head only" if result.truncated else "") + ").",
        "# Lines marked CHECK are guesses: read them, then `catalog-submit shops import` this file",
        "# and `catalog-submit shops preview` the shop before it goes live.",
        "",
        "[[shops]]",
    ]
    for key in ("id", "name", "source_url", "format", "currency", "channels"):
        note = notes.get(key)
        lines.append(f"{key} = {_toml_value(shop[key])}"
                     + (f"  # CHECK: {_comment(note)}" if note else ""))
    if "options" in shop:
        lines += ["", "[shops.options]"]
        lines += [f"{_toml_key(k)} = {_toml_value(v)}" + (
            f"  # CHECK: {_comment(notes['options'])}" if "options" in notes else "")
                  for k, v in shop["options"].items()]
    if "format_options" in shop:
        lines += ["", "[shops.format_options]"]
        lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in shop["format_options"].items()]
    lines += ["", "[shops.mapping]"]
    for target, spec in shop["mapping"].items():
        note = notes.get(target)
        lines.append(f"{_toml_key(target)} = {_toml_value(spec)}"
                     + (f"  # CHECK: {_comment(note)}" if note else ""))
    rest = [v for k, v in notes.items() if k not in shop and k not in shop["mapping"]]
    if rest:
        lines += ["", "# CHECK also:"] + [f"# - {_comment(n)}" for n in rest]
    return "\n".join(lines) + "\n"


def to_json(result: Sketch) -> str:
    notes = [f"{k}: {v}" for k, v in result.notes.items()]
    return json.dumps({"_notes": notes, "shops": [result.shop]}, ensure_ascii=False,
                      indent=2) + "\n"


def describe(result: Sketch) -> str:
    """The fields table: path, kind, fill rate, examples; and what the sketch detected."""
    lines = [f"{result.url}: {result.fmt}" + (" (gzip)" if result.compressed else "")
             + f", {result.encoding}, {result.records} records read"
             + (" (the head of a longer export)" if result.truncated else "")]
    if result.format_options:
        lines.append("format options: " + ", ".join(f"{k}={v}"
                                                    for k, v in result.format_options.items()))
    mapped: dict[str, str] = {}
    for target, spec in result.shop["mapping"].items():
        path = spec["path"] if isinstance(spec, Mapping) else spec
        mapped.setdefault(path, target)
    lines.append(f"  {'field':<28} {'kind':<15} {'filled':>7}  {'→ mapped to':<22} examples")
    for s in result.fields:
        share = f"{s.filled / result.records:.0%}"
        lines.append(f"  {s.path[:28]:<28} {s.kind:<15} {share:>7}  "
                     f"{mapped.get(s.path, ''):<22} {' | '.join(s.examples)[:90]}")
    return "\n".join(lines)


def run_sketch(url: str, *, fmt: str | None = None, output: str | None = None,
               shop_id: str | None = None, max_records: int = 200,
               out: TextIO | None = None) -> int:
    """The command: the fields table to stderr-free ``out``, the shop file to ``output`` or out."""
    stream = out or sys.stdout
    settings = Settings.from_env(require_database=False)
    try:
        result = sketch(url, fmt=fmt, shop_id=shop_id, max_records=max_records,
                        allow=settings.fetch_allow_networks)
    except NotACatalog as exc:
        print(f"NOT A CATALOG: {exc}", file=stream)
        return EXIT_DATAERR
    as_json = bool(output and output.lower().endswith(".json"))
    text = to_json(result) if as_json else to_toml(result)
    parse_shop(result.shop, "the sketch")  # the proposal is a valid shop, or a ConfigError
    if output:
        print(describe(result), file=stream)
        Path(output).write_text(text, encoding="utf-8")
        print(f"wrote {output}: check the CHECK lines, then catalog-submit shops import {output}",
              file=stream)
    else:
        print(describe(result), file=sys.stderr)
        stream.write(text)
    return EXIT_OK
