"""Every limit of validation, the mapping and the value parsers, at the limit and one past it (and
one below a lower bound): each test asserts the rule's own outcome, not two paths agreeing."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from worker.collect import load
from worker.collect.mapping import CompiledMapping
from worker.collect.validate import MAX_EXTRA_CHARS, ROW_COLUMNS, normalise
from worker.collect.values import ParseFailure, parse_decimal, parse_integer, parse_price
from worker.common import product
from worker.common.errors import RejectedRecord

BASE = {"product_id": "P1", "title": "Shirt", "link": "https://shop.example/p/1", "price": "15"}
LARGEST = Decimal("9999999999999999.9999")  # numeric(20, 4)'s largest value


def row(extra: dict[str, Any] | None = None, currency: str = "KRW", **fields: Any) -> dict[str, Any]:
    values = normalise(1, {**BASE, **fields}, extra or {}, currency=currency)
    return dict(zip(ROW_COLUMNS, values[2:], strict=True))


def rejected(extra: dict[str, Any] | None = None, **fields: Any) -> RejectedRecord:
    with pytest.raises(RejectedRecord) as caught:
        row(extra, **fields)
    return caught.value


# ---- text and URL lengths -------------------------------------------------------------------

TEXT_LIMITS = {
    "product_id": product.MAX_ID_LENGTH, "gtin": product.MAX_ID_LENGTH,
    "mpn": product.MAX_ID_LENGTH, "item_group_id": product.MAX_ID_LENGTH,
    "title": product.MAX_TEXT_LENGTH, "description": product.MAX_TEXT_LENGTH,
    "brand": product.MAX_TEXT_LENGTH, "product_type": product.MAX_TEXT_LENGTH,
    "google_product_category": product.MAX_TEXT_LENGTH,
    "naver_category": product.MAX_TEXT_LENGTH,
    **dict.fromkeys(product.VARIANT_ATTRIBUTES, product.MAX_ATTRIBUTE_LENGTH),
}


@pytest.mark.parametrize(("field", "limit"), TEXT_LIMITS.items())
def test_text_at_its_limit_is_stored_and_one_more_is_rejected(field: str, limit: int) -> None:
    assert row(**{field: "가" * limit})[field] == "가" * limit
    # Surrounding spaces are trimmed before the count.
    assert row(**{field: " " + "a" * limit + " "})[field] == "a" * limit
    error = rejected(**{field: "가" * (limit + 1)})
    assert error.field == field
    assert error.reason == f"{field} is {limit + 1} characters long, more than the {limit} allowed"


def test_the_storage_limits_are_the_documented_ones() -> None:
    assert (product.MAX_ID_LENGTH, product.MAX_TEXT_LENGTH, product.MAX_URL_LENGTH,
            product.MAX_ATTRIBUTE_LENGTH, product.MAX_ADDITIONAL_IMAGES, MAX_EXTRA_CHARS) == (
        256, 100_000, 4_096, 1_000, 10, 1_000_000)


@pytest.mark.parametrize("field", ["link", "mobile_link", "image_link"])
def test_a_url_at_its_limit_is_stored_and_one_more_is_rejected(field: str) -> None:
    prefix = "https://shop.example/"
    url = prefix + "a" * (product.MAX_URL_LENGTH - len(prefix))
    assert row(**{field: url})[field] == url
    error = rejected(**{field: url + "b"})
    assert error.field == field and error.reason == (
        f"{field} is {product.MAX_URL_LENGTH + 1} characters long, more than the "
        f"{product.MAX_URL_LENGTH} allowed")


@pytest.mark.parametrize(("url", "ok"), [
    ("http://a.example/x", True), ("HTTPS://a.example/x", True), ("https:/a.example", False),
    ("ftp://a.example/x", False), ("//a.example/x", False), ("httpx://a", False)])
def test_only_http_and_https_urls_pass(url: str, ok: bool) -> None:
    if ok:
        assert row(link=url)["link"] == url
    else:
        assert rejected(link=url).reason == f"link {url!r} is not an http(s) URL"


def test_additional_images_keep_ten_and_drop_the_eleventh() -> None:
    images = [f"https://a.example/{i}.jpg" for i in range(11)]
    assert row(additional_image_links=images[:10])["additional_image_links"] == images[:10]
    assert row(additional_image_links=images)["additional_image_links"] == images[:10]
    assert row(additional_image_links=images[:9])["additional_image_links"] == images[:9]


@pytest.mark.parametrize("value", ["", "  ", [], [""], ["", " "], None])
def test_no_additional_image_is_an_empty_list_never_none(value: Any) -> None:
    # products.additional_image_links is NOT NULL: "" must become {} for the COPY.
    assert row(additional_image_links=value)["additional_image_links"] == []


def test_a_single_additional_image_is_a_list_of_one() -> None:
    assert row(additional_image_links="https://a.example/1.jpg")["additional_image_links"] == [
        "https://a.example/1.jpg"]


def test_the_unmapped_rest_at_its_limit_is_kept_and_one_more_character_is_rejected() -> None:
    # {"b":"…"} is 8 characters around the value.
    assert len(row({"b": "x" * (MAX_EXTRA_CHARS - 8)})["extra"]) == MAX_EXTRA_CHARS
    error = rejected({"b": "x" * (MAX_EXTRA_CHARS - 7)})
    assert error.reason.startswith(
        f"the unmapped fields take {MAX_EXTRA_CHARS + 1} characters, more than the "
        f"{MAX_EXTRA_CHARS} allowed")


# ---- prices -----------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["price", "sale_price"])
def test_prices_from_zero_to_the_columns_largest_value(field: str) -> None:
    assert row(**{field: "0"})[field] == 0
    error = rejected(**{field: "-0.01"})
    assert error.field == field and error.reason == f"{field} -0.01 is negative"
    assert row(**{field: LARGEST})[field] == LARGEST
    assert row(**{field: "9999999999999999.99994"})[field] == Decimal("9999999999999999.99994")
    for too_large in ("9999999999999999.99995", Decimal("1e16"), "10000000000000000"):
        error = rejected(**{field: too_large})
        assert error.field == field and "is too large (at most 9999999999999999.9999" in (
            error.reason)


def test_the_largest_accepted_price_fits_numeric_20_4(conn: psycopg.Connection) -> None:
    """What validation lets through, PostgreSQL stores (rounded to 4 places, no overflow)."""
    values: dict[str, Any] = dict.fromkeys(load.STAGING_COLUMNS)
    accepted = row(price="9999999999999999.99994", shipping_cost="-9999999999999999.99994")
    values.update(accepted, pos=1, option=0)
    load.create_staging(conn)
    try:
        load.stage(conn, [tuple(values[c] for c in load.STAGING_COLUMNS)])
        stored = conn.execute(f"SELECT price, shipping_cost FROM {load.STAGING}").fetchone()
        assert stored == (LARGEST, -LARGEST)
        with pytest.raises(psycopg.errors.NumericValueOutOfRange):
            conn.execute("SELECT '9999999999999999.99995'::numeric(20, 4)")
    finally:
        conn.rollback()


def test_shipping_cost_is_stored_exactly_and_bounded_both_ways() -> None:
    assert row(shipping_cost="2500")["shipping_cost"] == Decimal(2500)
    assert row(shipping_cost="2,500원")["shipping_cost"] == Decimal(2500)
    assert row(shipping_cost="0")["shipping_cost"] == 0
    assert row(shipping_cost="-1")["shipping_cost"] == Decimal(-1)  # Naver: payment on delivery
    assert row(shipping_cost="")["shipping_cost"] is None
    assert row(shipping_cost=LARGEST)["shipping_cost"] == LARGEST
    assert row(shipping_cost=-LARGEST)["shipping_cost"] == -LARGEST
    for too_large in ("9999999999999999.99995", "-9999999999999999.99995"):
        error = rejected(shipping_cost=too_large)
        assert error.field == "shipping_cost" and "too large" in error.reason
    assert rejected(shipping_cost="free").field == "shipping_cost"
    assert rejected(shipping_cost=["1"]).reason == "shipping_cost is a list, expected a number"


def test_prices_keep_their_fraction() -> None:
    assert row(price="12.5", currency="USD")["price"] == Decimal("12.5")
    assert row(price="12.5")["price"] == Decimal("12.5")  # KRW: a dot with one digit is a point
    assert row(price=Decimal("12.5"))["price"] == Decimal("12.5")
    assert row(price=12.5)["price"] == Decimal("12.5")


# ---- the price parser's separators ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "zero_decimal", "expected"),
    [
        # A comma followed by exactly three digits groups thousands; otherwise it is the point.
        ("1,234", False, Decimal("1234")), ("1,2345", False, Decimal("1.2345")),
        ("1,23", False, Decimal("1.23")),
        # A dot followed by three digits groups thousands only in a zero-decimal currency.
        ("12.900", True, Decimal("12900")), ("12.900", False, Decimal("12.900")),
        ("12.90", True, Decimal("12.90")), ("12.9000", True, Decimal("12.9000")),
        # Two dots are always grouping; both separators: the last one is the point.
        ("1.234.567", False, Decimal("1234567")), ("1.234,5", False, Decimal("1234.5")),
        ("1,234.5", False, Decimal("1234.5")),
    ],
)
def test_separators_at_the_three_digit_limit(text: str, zero_decimal: bool,
                                             expected: Decimal) -> None:
    assert parse_price(text, zero_decimal=zero_decimal) == expected


def apply(spec: dict[str, Any], value: Any, currency: str) -> Any:
    fields, _ = CompiledMapping({"price": spec}, currency=currency).apply({"p": value})
    return fields["price"]


def test_parse_price_honours_decimal_separator() -> None:
    # Ignoring the separator would read each of these as another number.
    assert apply({"path": "p", "parse": "price", "decimal_separator": ","}, "1,250", "EUR") == (
        Decimal("1.250"))
    assert apply({"path": "p", "parse": "price"}, "1,250", "EUR") == Decimal("1250")
    assert apply({"path": "p", "parse": "price", "decimal_separator": ","}, "1.250", "EUR") == (
        Decimal("1250"))
    assert apply({"path": "p", "parse": "price", "decimal_separator": "."}, "1,250", "EUR") == (
        Decimal("1250"))
    assert apply({"path": "p", "parse": "price", "decimal_separator": ","}, "12,5", "EUR") == (
        Decimal("12.5"))
    assert apply({"path": "p", "parse": "price", "decimal_separator": ","}, "12.5", "EUR") == (
        Decimal("125"))


def test_parse_price_honours_the_shops_zero_decimal_currency() -> None:
    assert apply({"path": "p", "parse": "price"}, "12.900", "KRW") == Decimal("12900")
    assert apply({"path": "p", "parse": "price"}, "12.900", "JPY") == Decimal("12900")
    assert apply({"path": "p", "parse": "price"}, "12.900", "USD") == Decimal("12.900")
    assert apply({"path": "p", "parse": "price"}, "12.5", "KRW") == Decimal("12.5")


def test_the_decimal_parser_reads_a_point_whatever_the_currency() -> None:
    spec = {"path": "p", "parse": "decimal"}
    assert apply(spec, "12.900", "KRW") == Decimal("12.900")  # price would say 12900
    assert apply(spec, "1,234.5", "KRW") == Decimal("1234.5")
    assert apply(spec, "12,900", "KRW") == Decimal("12900")
    assert apply({**spec, "decimal_separator": ","}, "12,5", "KRW") == Decimal("12.5")
    assert apply({**spec, "decimal_separator": ","}, "1.234,5", "KRW") == Decimal("1234.5")
    assert isinstance(apply(spec, "twelve", "KRW"), ParseFailure)
    assert parse_decimal("0.5") == Decimal("0.5") and parse_decimal(7) == 7


def test_the_integer_parser_takes_whole_numbers_only() -> None:
    spec = {"path": "p", "parse": "integer"}
    assert apply(spec, "12", "KRW") == 12 and apply(spec, "12.0", "KRW") == 12
    assert apply(spec, "1,200", "KRW") == 1200
    failure = apply(spec, "12.5", "KRW")
    assert isinstance(failure, ParseFailure) and failure.reason == "'12.5' is not a whole number"
    assert parse_integer(Decimal("-3")) == -3
    with pytest.raises(ValueError, match="not a whole number"):
        parse_integer("0.001")


def test_a_parse_failure_rejects_the_record_with_the_parsers_reason() -> None:
    fields, extra = CompiledMapping({"price": {"path": "p", "parse": "price"}, "title": "t",
                                     "link": "l", "product_id": "i"},
                                    currency="KRW").apply({"p": "₩ a lot", "t": "T", "i": "1",
                                                           "l": "https://a/1"})
    with pytest.raises(RejectedRecord) as caught:
        normalise(1, fields, extra, currency="KRW")
    assert caught.value.field == "price" and caught.value.reason == (
        "price cannot be read: '₩ a lot' is not one number with an optional currency")


# ---- the mapping's own bounds -----------------------------------------------------------------

IMAGES = {"i": [f"https://a/{n}.jpg" for n in range(12)]}


@pytest.mark.parametrize(("bounds", "expected"), [
    ([1, 11], IMAGES["i"][1:11]), ([1, 12], IMAGES["i"][1:12]), ([0, 1], IMAGES["i"][:1]),
    ([0, 0], []), ([11], IMAGES["i"][11:]), ([12], []), ([-1], IMAGES["i"][-1:])])
def test_slice_bounds_are_python_slices(bounds: list[int], expected: list[str]) -> None:
    fields, _ = CompiledMapping({"additional_image_links": {"path": "i", "slice": bounds}},
                                currency="KRW").apply(IMAGES)
    assert fields["additional_image_links"] == expected


@pytest.mark.parametrize(("path", "expected"), [
    ("i.0", "https://a/0.jpg"), ("i.11", "https://a/11.jpg"), ("i.12", None)])
def test_a_list_index_at_the_last_element_and_past_it(path: str, expected: Any) -> None:
    fields, _ = CompiledMapping({"image_link": path}, currency="KRW").apply(IMAGES)
    assert fields.get("image_link") == expected


def test_the_reject_excerpt_is_cut_at_200_characters() -> None:
    error = rejected(link="ftp://" + "x" * 300)
    assert error.excerpt == ("ftp://" + "x" * 300)[:200] and len(error.excerpt or "") == 200
    assert json.loads(row({"k": "v"})["extra"]) == {"k": "v"}


@pytest.mark.parametrize(("count", "expected"), [
    (1, "in_stock"), (0, "out_of_stock"), (-1, "out_of_stock"), (True, "in_stock"),
    (False, "out_of_stock")])
def test_a_stock_count_as_availability_at_zero(count: Any, expected: str) -> None:
    assert row(availability=count)["availability"] == expected


@pytest.mark.parametrize(("stock", "expected"), [
    (1, "in_stock"), ("1", "in_stock"), (0, "out_of_stock"), ("0", "out_of_stock"),
    (-1, "out_of_stock")])
def test_an_options_stock_at_zero(stock: Any, expected: str) -> None:
    mapping = {"variants": {"path": "o", "id": "{product_id}-{index}", "stock": "n"}}
    compiled = CompiledMapping(mapping, currency="KRW")
    assert compiled.variants is not None
    record = {**BASE, "o": [{"n": stock}]}
    fields, extra = compiled.apply(record)
    ((_, variant, _),) = compiled.variants.expand(fields, extra, record)
    assert variant["availability"] == expected
