"""Validation: one mapped record → one row for ``products``, or a ``RejectedRecord`` saying why.

Collect checks what storage and every channel share: the required fields (product id, title,
link, price), types and ranges (prices ≥ 0, ISO 4217 currency, the known availability and
condition values), and lengths storage allows. What a channel needs beyond that is the channel's
rule. Control characters (C0 but tab, newline, carriage return) are removed from text: PostgreSQL
cannot store NUL and no feed format wants the others.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson

from worker.collect.values import ParseFailure, parse_moment, parse_price
from worker.common.errors import RejectedRecord
from worker.common.product import (
    AVAILABILITY,
    CONDITION,
    CURRENCY_DECIMALS,
    DEFAULT_AVAILABILITY,
    DEFAULT_CONDITION,
    MAX_ADDITIONAL_IMAGES,
    MAX_ATTRIBUTE_LENGTH,
    MAX_ID_LENGTH,
    MAX_TEXT_LENGTH,
    MAX_URL_LENGTH,
    PRICE_LIMIT,
    PRODUCT_FIELDS,
    REQUIRED_FIELDS,
    VARIANT_ATTRIBUTES,
)

MAX_EXTRA_CHARS = 1_000_000
EXCERPT = 200

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_JSON_NUL = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


def _aliases(values: tuple[str, ...], aliases: Mapping[str, str]) -> dict[str, str]:
    """The vocabulary's own values, and the other spellings shops use for them."""
    unknown = set(aliases.values()) - set(values)
    if unknown:  # pragma: no cover - a programming error, caught at import
        raise AssertionError(f"aliases of values the products table refuses: {unknown}")
    return {**{v: v for v in values}, **aliases}


AVAILABILITY_ALIASES: dict[str, str] = _aliases(AVAILABILITY, {
    "instock": "in_stock", "available": "in_stock", "yes": "in_stock",
    "재고있음": "in_stock", "판매중": "in_stock",
    "outofstock": "out_of_stock", "sold_out": "out_of_stock",
    "soldout": "out_of_stock", "no": "out_of_stock", "품절": "out_of_stock",
    "pre_order": "preorder", "예약판매": "preorder",
    "back_order": "backorder", "available_for_order": "backorder",
    "단종": "discontinued",
})
CONDITION_ALIASES: dict[str, str] = _aliases(CONDITION, {
    "신상품": "new", "새상품": "new", "중고": "used", "리퍼": "refurbished",
})


def reject(reason: str, field: str | None = None, value: Any = None) -> RejectedRecord:
    shown = None if value is None else _short(value)
    return RejectedRecord(reason, field=field, excerpt=shown)


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text[:EXCERPT]


def clean_text(value: str) -> str:
    """``value`` without the control characters no feed and no database column wants."""
    return _CONTROL.sub("", value) if _CONTROL.search(value) else value


def _text(field: str, value: Any, limit: int) -> str | None:
    if value.__class__ is str:
        # The common case, kept short: this runs for most fields of every row.
        text = value.strip()
        if _CONTROL.search(text):
            text = _CONTROL.sub("", text)
        if len(text) > limit:
            raise reject(
                f"{field} is {len(text)} characters long, more than the {limit} allowed", field,
                text,
            )
        return text or None
    if value is None:
        return None
    if isinstance(value, str):
        text = value
    elif isinstance(value, int | Decimal) and not isinstance(value, bool):
        text = str(value)
    elif isinstance(value, dict) and isinstance(value.get("#text"), str):
        text = value["#text"]
    elif isinstance(value, ParseFailure):
        raise reject(f"{field} cannot be read: {value.reason}", field, value.value)
    else:
        raise reject(f"{field} is a {_kind(value)}, expected text", field, value)
    text = text.strip()
    if not text:
        return None
    text = clean_text(text)
    if len(text) > limit:
        raise reject(
            f"{field} is {len(text)} characters long, more than the {limit} allowed", field,
            text,
        )
    return text


def _kind(value: Any) -> str:
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list):
        return "list"
    if isinstance(value, bool):
        return "boolean"
    return type(value).__name__


def _url(field: str, value: Any) -> str | None:
    text = _text(field, value, MAX_URL_LENGTH)
    if text is None:
        return None
    if not text[:8].lower().startswith(("http://", "https://")):
        raise reject(f"{field} {text[:80]!r} is not an http(s) URL", field, text)
    return text


def _price(field: str, value: Any, zero_decimal: bool) -> Decimal | None:
    if value.__class__ is Decimal and value >= 0 and value < PRICE_LIMIT:
        return value  # type: ignore[no-any-return]
    if value is None or value == "":
        return None
    if isinstance(value, ParseFailure):
        raise reject(f"{field} cannot be read: {value.reason}", field, value.value)
    if isinstance(value, dict) and "#text" in value:
        value = value["#text"]
    if isinstance(value, dict | list):
        raise reject(f"{field} is a {_kind(value)}, expected a number", field, value)
    try:
        amount = parse_price(value, zero_decimal=zero_decimal)
    except ValueError as exc:
        raise reject(f"{field} cannot be read: {exc}", field, value) from None
    if amount < 0:
        raise reject(f"{field} {amount} is negative", field, value)
    if amount >= PRICE_LIMIT:
        raise reject(f"{field} {amount} is too large (at most 9999999999999999.9999: 16 digits "
                     "before the point)", field, value)
    return amount


def _choice(field: str, value: Any, aliases: Mapping[str, str], default: str) -> str:
    if value is None or value == "":
        return default
    if value.__class__ is str and value in aliases:
        return aliases[value]
    if isinstance(value, ParseFailure):
        raise reject(f"{field} cannot be read: {value.reason}", field, value.value)
    if field == "availability":
        if isinstance(value, bool):
            return "in_stock" if value else "out_of_stock"
        if isinstance(value, int):
            return "in_stock" if value > 0 else "out_of_stock"
    if isinstance(value, dict) and "#text" in value:
        value = value["#text"]
    if not isinstance(value, str):
        known = ", ".join(sorted(set(aliases.values())))
        raise reject(f"{field} is a {_kind(value)}, expected one of {known}", field, value)
    key = value.strip().lower().replace(" ", "_").replace("-", "_")
    found = aliases.get(key)
    if found is None:
        raise reject(
            f"{field} {value[:40]!r} is not known: expected one of "
            f"{', '.join(sorted(set(aliases.values())))} (or map it with a value map)",
            field, value,
        )
    return found


def _date(field: str, value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, ParseFailure):
        raise reject(f"{field} cannot be read: {value.reason}", field, value.value)
    if isinstance(value, dict) and isinstance(value.get("#text"), str):
        value = value["#text"]
    if isinstance(value, str) and not value.strip():
        return None
    try:
        return parse_moment(value)
    except ValueError as exc:
        raise reject(f"{field} cannot be read: {exc}", field, value) from None


def _images(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    items = value if isinstance(value, list) else [value]
    out = []
    for item in items:
        url = _url("additional_image_links", item)
        if url is not None:
            out.append(url)
    # Storage keeps the platforms' maximum; the rest cannot be used by any channel.
    return out[:MAX_ADDITIONAL_IMAGES]


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        # A float whose shortest repr is this number is written as that number, exactly.
        as_float = float(value)
        if Decimal(repr(as_float)) == value:
            return as_float
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    raise TypeError(f"{type(value).__name__} is not JSON")


_encode = json.JSONEncoder(
    ensure_ascii=False, default=_json_default, separators=(",", ":"), check_circular=False
).encode


def extra_json(extra: Mapping[str, Any]) -> str:
    """The unmapped fields as JSON text for the jsonb column (no NUL: jsonb refuses it).

    orjson first: 1.5 µs for the benchmark's options instead of the standard library's 9.5, on
    every product. What orjson refuses (integers beyond 64 bits, non-string keys, lone
    surrogates) goes through the standard library's encoder, as before.
    """
    try:
        text = orjson.dumps(extra, default=_json_default).decode()
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        text = _encode(extra)
    if "\\u0000" in text:
        text = _JSON_NUL.sub(r"\1", text)
    return text


# normalise checks these four inline (the common case costs no list per row).
if REQUIRED_FIELDS != ("product_id", "title", "link", "price"):  # pragma: no cover
    raise AssertionError(f"normalise does not check every required field: {REQUIRED_FIELDS}")


def normalise(
    pos: int, fields: Mapping[str, Any], extra: Mapping[str, Any], *, currency: str,
    option: int = 0,
) -> tuple[Any, ...]:
    """The staging row (STAGING_COLUMNS): ``pos``, ``option`` (the option's position from 1 when
    the record's options were expanded, else 0), the PRODUCT_FIELDS, extra as JSON; or
    ``RejectedRecord``."""
    get = fields.get
    product_id = _text("product_id", get("product_id"), MAX_ID_LENGTH)
    title = _text("title", get("title"), MAX_TEXT_LENGTH)
    link = _url("link", get("link"))
    raw_price = get("price")
    if product_id is None or title is None or link is None or raw_price is None or (
        raw_price == ""
    ):
        raise missing_required(product_id, title, link, raw_price)
    code = get("currency")
    if code is None or code == "":
        code = currency
    elif not isinstance(code, str) or code.strip().upper() not in CURRENCY_DECIMALS:
        raise unknown_currency(code)
    else:
        code = code.strip().upper()
    zero = CURRENCY_DECIMALS.get(code, 2) == 0
    price = _price("price", raw_price, zero)
    extra_text = extra_json(extra) if extra else "{}"
    if len(extra_text) > MAX_EXTRA_CHARS:
        raise extra_too_large(extra_text)
    value = get("sale_price")
    sale_price = None if value is None else _price("sale_price", value, zero)
    value = get("shipping_cost")
    shipping = None if value is None or value == "" else _shipping(value, zero)
    value = get("availability_date")
    available_on = None if value is None else _date("availability_date", value)
    value = get("additional_image_links")
    images = [] if value is None else _images(value)
    return (
        pos,
        option,
        product_id,
        title,
        _text("description", value, MAX_TEXT_LENGTH)
        if (value := get("description")) is not None else None,
        link,
        _url("mobile_link", value) if (value := get("mobile_link")) is not None else None,
        _url("image_link", value) if (value := get("image_link")) is not None else None,
        images,
        price,
        sale_price,
        code,
        _choice("availability", get("availability"), AVAILABILITY_ALIASES,
                DEFAULT_AVAILABILITY),
        available_on,
        _choice("condition", get("condition"), CONDITION_ALIASES, DEFAULT_CONDITION),
        _text("brand", value, MAX_TEXT_LENGTH) if (value := get("brand")) is not None else None,
        _text("gtin", value, MAX_ID_LENGTH) if (value := get("gtin")) is not None else None,
        _text("mpn", value, MAX_ID_LENGTH) if (value := get("mpn")) is not None else None,
        _text("item_group_id", value, MAX_ID_LENGTH)
        if (value := get("item_group_id")) is not None else None,
        _text("product_type", value, MAX_TEXT_LENGTH)
        if (value := get("product_type")) is not None else None,
        _text("google_product_category", value, MAX_TEXT_LENGTH)
        if (value := get("google_product_category")) is not None else None,
        _text("naver_category", value, MAX_TEXT_LENGTH)
        if (value := get("naver_category")) is not None else None,
        shipping,
        *[None if (value := get(name)) is None else _text(name, value, MAX_ATTRIBUTE_LENGTH)
          for name in VARIANT_ATTRIBUTES],
        *(_NO_WINDOW if get("sale_price_start") is None and get("sale_price_end") is None
          else sale_window(get("sale_price_start"), get("sale_price_end"))),
        extra_text,
    )


def _shipping(value: Any, zero_decimal: bool) -> Decimal:
    # Negative costs pass: Naver's EP writes "payment on delivery" as -1.
    if isinstance(value, ParseFailure):
        raise reject(f"shipping_cost cannot be read: {value.reason}",
                     "shipping_cost", value.value)
    if isinstance(value, dict) and "#text" in value:
        value = value["#text"]
    if isinstance(value, dict | list):
        raise reject(f"shipping_cost is a {_kind(value)}, expected a number", "shipping_cost",
                     value)
    try:
        amount = parse_price(value, zero_decimal=zero_decimal)
    except ValueError as exc:
        raise reject(f"shipping_cost cannot be read: {exc}", "shipping_cost", value) from None
    if abs(amount) >= PRICE_LIMIT:
        raise reject(f"shipping_cost {amount} is too large (at most 9999999999999999.9999: 16 "
                     "digits before the point)", "shipping_cost", value)
    return amount


_NO_WINDOW = (None, None)


def sale_window(start_value: Any, end_value: Any) -> tuple[datetime | None, datetime | None]:
    """The sale price's window, each end ISO 8601; an end not after the start is refused."""
    start = None if start_value is None else _date("sale_price_start", start_value)
    end = None if end_value is None else _date("sale_price_end", end_value)
    if start is not None and end is not None and end <= start:
        raise reject(
            f"sale_price_end {end.isoformat()} is not after sale_price_start "
            f"{start.isoformat()}: a sale must end after it starts", "sale_price_end",
            end_value,
        )
    return start, end


# The rejects normalise raises, shared with the compiled path (worker.collect.compiled) so that
# both say the same thing.


def missing_required(product_id: Any, title: Any, link: Any, raw_price: Any) -> RejectedRecord:
    """The reject of a record missing one or more required fields (validated values)."""
    present = {"product_id": product_id, "title": title, "link": link, "price": raw_price}
    missing = [name for name in REQUIRED_FIELDS if present[name] is None or present[name] == ""]
    return RejectedRecord(
        f"missing required field{'s' if len(missing) > 1 else ''} {', '.join(missing)}",
        field=missing[0],
    )


def unknown_currency(code: Any) -> RejectedRecord:
    return reject(f"currency {code!r} is not a known ISO 4217 code", "currency", code)


def extra_too_large(extra_text: str) -> RejectedRecord:
    return RejectedRecord(
        f"the unmapped fields take {len(extra_text)} characters, more than the "
        f"{MAX_EXTRA_CHARS} allowed: map or drop the large ones",
        excerpt=extra_text[:EXCERPT],
    )


ROW_COLUMNS = (*PRODUCT_FIELDS, "extra")
# The staging table's columns, in COPY order: the record's position and its option's, then the row.
STAGING_COLUMNS = ("pos", "option", *ROW_COLUMNS)
