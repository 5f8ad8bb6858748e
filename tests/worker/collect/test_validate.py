"""Validation rules, one by one, and a property: any record is a row or a RejectedRecord."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.collect import validate
from worker.collect.mapping import CompiledMapping
from worker.collect.validate import ROW_COLUMNS, extra_json, normalise
from worker.common import product
from worker.common.errors import RejectedRecord

BASE = {"product_id": "P1", "title": "Shirt", "link": "https://shop.example/p/1", "price": "15.00"}


def row(extra: dict[str, Any] | None = None, shop_currency: str = "USD",
        **fields: Any) -> dict[str, Any]:
    values = normalise(3, {**BASE, **fields}, extra or {}, currency=shop_currency)
    assert values[:2] == (3, 0)
    return dict(zip(ROW_COLUMNS, values[2:], strict=True))


def rejected(**fields: Any) -> RejectedRecord:
    with pytest.raises(RejectedRecord) as caught:
        row(**fields)
    return caught.value


def test_a_good_record_becomes_a_row_with_defaults() -> None:
    out = row()
    assert out["product_id"] == "P1" and out["price"] == Decimal("15.00")
    assert out["currency"] == "USD"  # the shop's currency
    assert out["availability"] == "in_stock" and out["condition"] == "new"
    assert out["additional_image_links"] == [] and out["extra"] == "{}"


@pytest.mark.parametrize("missing", ["product_id", "title", "link", "price"])
def test_required_fields(missing: str) -> None:
    error = rejected(**{missing: None})
    assert error.reason == f"missing required field {missing}" and error.field == missing
    assert rejected(**{missing: "  "}).field == missing


def test_several_missing_fields_are_named_together() -> None:
    assert rejected(title="", price=None).reason == "missing required fields title, price"


@pytest.mark.parametrize(
    ("fields", "reason", "field"),
    [
        ({"price": "-1"}, "price -1 is negative", "price"),
        ({"price": "free"}, "price cannot be read", "price"),
        ({"price": "1" * 17}, "too large", "price"),
        ({"sale_price": "-3"}, "sale_price -3 is negative", "sale_price"),
        ({"currency": "XYZ"}, "currency 'XYZ' is not a known ISO 4217 code", "currency"),
        ({"title": {"a": 1}}, "title is a object, expected text", "title"),
        ({"title": ["a"]}, "title is a list, expected text", "title"),
        ({"price": ["1"]}, "price is a list, expected a number", "price"),
        ({"link": "ftp://x/y"}, "not an http(s) URL", "link"),
        ({"link": "/relative"}, "not an http(s) URL", "link"),
        ({"title": "x" * 100_001}, "title is 100001 characters long", "title"),
        ({"product_id": "x" * 257}, "product_id is 257 characters long", "product_id"),
        ({"availability": "maybe"}, "availability 'maybe' is not known", "availability"),
        ({"condition": "broken"}, "condition 'broken' is not known", "condition"),
        ({"availability_date": "next week"}, "not an ISO 8601 date", "availability_date"),
        ({"additional_image_links": ["https://a/1", "data:x"]}, "not an http(s) URL",
         "additional_image_links"),
    ],
)
def test_types_ranges_and_lengths(fields: dict[str, Any], reason: str, field: str) -> None:
    error = rejected(**fields)
    assert reason in error.reason and error.field == field


@pytest.mark.parametrize(
    ("given_value", "expected"),
    [("in stock", "in_stock"), ("In-Stock", "in_stock"), ("품절", "out_of_stock"),
     ("available for order", "backorder"), (True, "in_stock"), (0, "out_of_stock"),
     (12, "in_stock"), ("preorder", "preorder")],
)
def test_availability_aliases(given_value: Any, expected: str) -> None:
    assert row(availability=given_value)["availability"] == expected


def test_condition_in_korean() -> None:
    assert row(condition="중고")["condition"] == "used"
    assert row(condition="리퍼")["condition"] == "refurbished"


def test_currency_given_per_row_and_its_decimals() -> None:
    out = row(shop_currency="USD", price="12.900", currency=" krw")
    assert out["currency"] == "KRW" and out["price"] == Decimal("12900")


def test_control_characters_are_removed_from_text_and_extra() -> None:
    out = row({"note": "a\x00b", "n": ["\\u0000 literal"]}, title="Sh\x00irt\x07\tok")
    assert out["title"] == "Shirt\tok"
    assert json.loads(out["extra"]) == {"note": "ab", "n": ["\\u0000 literal"]}


def test_extra_keeps_decimals_exact() -> None:
    text = extra_json({"a": Decimal("0.1"), "b": Decimal("12.50"), "c": Decimal("1e-30"), "d": 3})
    assert json.loads(text, parse_float=Decimal) == {
        "a": Decimal("0.1"), "b": Decimal("12.5"), "c": Decimal("1E-30"), "d": 3,
    }


def test_extra_beyond_orjson_falls_back_to_the_standard_encoder() -> None:
    # orjson refuses integers beyond 64 bits and lone surrogates; JSON (and ijson) allow both.
    text = extra_json({"big": 2**70, "neg": -(2**65), "s": "a\ud800b", "n": [Decimal("1.5")]})
    assert json.loads(text) == {"big": 2**70, "neg": -(2**65), "s": "a\ud800b", "n": [1.5]}


def test_huge_extra_is_rejected() -> None:
    with pytest.raises(RejectedRecord, match="unmapped fields take"):
        row({"blob": "x" * 1_000_001})


def test_additional_images_are_capped_at_ten_and_dates_are_utc() -> None:
    images = [f"https://a/{i}.jpg" for i in range(14)]
    out = row(additional_image_links=images, availability_date="2026-12-01T10:00:00")
    assert out["additional_image_links"] == images[:10]
    assert out["availability_date"] == datetime(2026, 12, 1, 10, tzinfo=UTC)


def test_xml_text_nodes_are_accepted_where_a_value_is_expected() -> None:
    out = row(price={"@currency": "KRW", "#text": "12900"}, title={"#text": "T", "@lang": "ko"})
    assert out["price"] == Decimal("12900") and out["title"] == "T"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=30)
    | st.decimals(allow_nan=False, allow_infinity=False, places=3),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8),
                                                                       children, max_size=3),
    max_leaves=8,
)


_words = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1,
                max_size=20).filter(str.strip)
_urls = st.builds("https://shop.example/{}".format,
                  st.text("abcdefghijklmnopqrstuvwxyz0123456789-/가나", max_size=30))
_prices = st.decimals(min_value=0, max_value=10**12, places=2) | st.integers(0, 10**9) | (
    st.integers(0, 10**9).map("{:,}원".format))
_moments = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                        timezones=st.none() | st.just(UTC)).map(datetime.isoformat)

# A record a shop could send, in internal names: every value valid, optional fields or not.
valid_records = st.fixed_dictionaries(
    {"id": st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_", min_size=1, max_size=40),
     "title": _words, "link": _urls, "price": _prices},
    optional={
        "description": _words, "sale_price": _prices,
        "currency": st.sampled_from(sorted(product.CURRENCY_DECIMALS)).map(
            lambda c: c.lower() if len(c) % 2 else c),
        "availability": st.sampled_from(sorted(validate.AVAILABILITY_ALIASES)),
        "condition": st.sampled_from(sorted(validate.CONDITION_ALIASES)),
        "additional_image_links": st.lists(_urls, max_size=12), "image_link": _urls,
        "availability_date": _moments, "gtin": st.text("0123456789", min_size=8, max_size=14),
        "shipping_cost": _prices, "brand": _words, "mpn": _words, "item_group_id": _words,
        **{name: _words for name in product.VARIANT_ATTRIBUTES},
        "sale_price_start": st.just("2026-11-01T00:00:00+09:00"),
        "sale_price_end": st.just("2026-12-01"),
        "other": json_values,
    },
)
# What goes wrong in real exports: any field replaced by any JSON value.
damage = st.dictionaries(
    st.sampled_from(["id", "title", "link", "price", "sale_price", "currency", "availability",
                     "condition", "additional_image_links", "availability_date", "gtin",
                     "shipping_cost", "color", "sale_price_end", "other"]),
    json_values, max_size=3)


def test_any_record_is_a_row_or_a_rejected_record() -> None:
    outcomes = {"row": 0, "rejected": 0}

    @settings(max_examples=400, deadline=None, database=None, derandomize=True)
    @given(record=valid_records, damaged=st.one_of(st.just({}), damage))
    def check(record: dict[str, Any], damaged: dict[str, Any]) -> None:
        fields, extra = CompiledMapping({}, currency="KRW").apply({**record, **damaged})
        try:
            values = normalise(1, fields, extra, currency="KRW")
        except RejectedRecord as exc:
            assert damaged, f"a valid record was rejected: {exc.reason}"
            assert exc.reason
            outcomes["rejected"] += 1
            return
        outcomes["row"] += 1
        out = dict(zip(ROW_COLUMNS, values[2:], strict=True))
        assert out["product_id"] and len(out["product_id"]) <= product.MAX_ID_LENGTH
        assert out["title"] and out["link"].startswith(("http://", "https://"))
        assert 0 <= out["price"] < product.PRICE_LIMIT
        assert out["currency"] in product.CURRENCY_DECIMALS
        assert out["availability"] in product.AVAILABILITY
        assert out["condition"] in product.CONDITION
        assert len(out["additional_image_links"]) <= product.MAX_ADDITIONAL_IMAGES
        assert all(u.startswith(("http://", "https://")) for u in out["additional_image_links"])
        if out["sale_price_start"] and out["sale_price_end"]:
            assert out["sale_price_start"] < out["sale_price_end"]
        assert "\x00" not in json.dumps(out, default=str)
        json.loads(out["extra"])
        if not damaged:
            assert out["product_id"] == record["id"].strip()
            assert out["price"] >= 0 and out["title"] == validate.clean_text(record["title"].strip())

    check()
    total = outcomes["row"] + outcomes["rejected"]
    # Both branches are exercised, the row's assertions on a good share of the examples.
    assert outcomes["row"] >= total // 3 and outcomes["rejected"] >= total // 10, outcomes


def test_the_vocabulary_is_the_products_one() -> None:
    # validate spells no availability or condition of its own: every alias lands on a value the
    # products table's CHECK allows, and every such value is accepted as written.
    assert set(validate.AVAILABILITY_ALIASES.values()) == set(product.AVAILABILITY)
    assert set(validate.CONDITION_ALIASES.values()) == set(product.CONDITION)
    for value in product.AVAILABILITY:
        assert row(availability=value)["availability"] == value
    for value in product.CONDITION:
        assert row(condition=value)["condition"] == value
    assert row()["availability"] == product.DEFAULT_AVAILABILITY
    assert row()["condition"] == product.DEFAULT_CONDITION
    assert (*product.PRODUCT_FIELDS, "extra") == validate.ROW_COLUMNS


# ---- the variant attributes and the sale window (issue 12) -----------------------------------


def test_variant_attributes_are_stored_trimmed_as_text() -> None:
    out = row(color=" 네이비 ", size=" 95 ", gender="female", age_group="adult", material=" 면 ",
              pattern="스트라이프", size_system="KR", size_type="regular", item_group_id=" G1 ")
    assert {f: out[f] for f in product.VARIANT_ATTRIBUTES} == {
        "color": "네이비", "size": "95", "gender": "female", "age_group": "adult",
        "material": "면", "pattern": "스트라이프", "size_system": "KR", "size_type": "regular"}
    assert out["item_group_id"] == "G1"
    assert row(size=250)["size"] == "250" and row(color="  ")["color"] is None


@pytest.mark.parametrize("field", product.VARIANT_ATTRIBUTES)
def test_variant_attribute_length_limit(field: str) -> None:
    limit = product.MAX_ATTRIBUTE_LENGTH
    assert row(**{field: "x" * limit})[field] == "x" * limit
    error = rejected(**{field: "x" * (limit + 1)})
    assert error.field == field
    assert error.reason == f"{field} is {limit + 1} characters long, more than the {limit} allowed"
    assert rejected(**{field: {"a": 1}}).reason == f"{field} is a object, expected text"


def test_the_sale_window_is_iso_8601_and_utc_when_it_has_no_offset() -> None:
    out = row(sale_price="10", sale_price_start="2026-11-01", sale_price_end="2026-11-30T23:59:59+09:00")
    assert out["sale_price_start"] == datetime(2026, 11, 1, tzinfo=UTC)
    assert out["sale_price_end"] == datetime(2026, 11, 30, 14, 59, 59, tzinfo=UTC)
    out = row(sale_price_start="2026-11-01T00:00:00Z", sale_price_end="")
    assert out["sale_price_start"] == datetime(2026, 11, 1, tzinfo=UTC)
    assert out["sale_price_end"] is None


@pytest.mark.parametrize("field", ["sale_price_start", "sale_price_end", "availability_date"])
@pytest.mark.parametrize(
    ("value", "reason"),
    [("next week", "'next week' is not an ISO 8601 date"),
     ("2026-13-01", "'2026-13-01' is not an ISO 8601 date"),
     (20261101, "int 20261101 is not an ISO 8601 date"),
     (True, "bool True is not an ISO 8601 date"),
     (["2026-11-01"], "list ['2026-11-01'] is not an ISO 8601 date")],
)
def test_a_bad_date_rejects_the_record_naming_its_field(field: str, value: Any, reason: str) -> None:
    error = rejected(**{field: value})
    assert error.field == field and error.reason == f"{field} cannot be read: {reason}"


def test_a_sale_must_end_after_it_starts() -> None:
    start = "2026-11-01T00:00:00+00:00"
    error = rejected(sale_price_start=start, sale_price_end="2026-10-31T23:59:59+00:00")
    assert error.field == "sale_price_end"
    assert error.reason == ("sale_price_end 2026-10-31T23:59:59+00:00 is not after "
                            "sale_price_start 2026-11-01T00:00:00+00:00: a sale must end after "
                            "it starts")
    # At the limit: the same moment written in another zone is no window either.
    assert rejected(sale_price_start=start, sale_price_end="2026-11-01T09:00:00+09:00").field == (
        "sale_price_end")
    out = row(sale_price_start=start, sale_price_end="2026-11-01T00:00:01+00:00")
    assert out["sale_price_end"] - out["sale_price_start"] == timedelta(seconds=1)
    # One end alone is a window open on the other side.
    assert row(sale_price_end="2026-10-31")["sale_price_end"] == datetime(2026, 10, 31, tzinfo=UTC)
