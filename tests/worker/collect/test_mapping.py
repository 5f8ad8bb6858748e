"""The mapping language: paths, transforms, defaults, extra, prices, and what an invalid one says."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from submitter.shopfile import parse_shop
from tests import catalogs as catalog_gen
from worker.collect.mapping import (
    CompiledMapping,
    column_problems,
    compile_mapping,
    mapping_problems,
)
from worker.collect.values import ParseFailure, parse_price
from worker.common.errors import ConfigError


def apply(mapping: dict[str, Any], record: dict[str, Any], currency: str = "KRW") -> Any:
    return CompiledMapping(mapping, currency=currency).apply(record)


# ---- prices --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("12,900원", Decimal("12900")),
        ("₩12,900", Decimal("12900")),
        ("1.234,56 €", Decimal("1234.56")),
        ("1,234.56 USD", Decimal("1234.56")),
        ("15.00", Decimal("15.00")),
        ("$15", Decimal("15")),
        ("12,5", Decimal("12.5")),
        ("1 234 567,89", Decimal("1234567.89")),
        ("1'234.50 CHF", Decimal("1234.50")),
        ("1.234.567", Decimal("1234567")),
        ("KRW 3,700", Decimal("3700")),
        ("-5.00", Decimal("-5.00")),
        (12900, Decimal("12900")),
        (Decimal("0.10"), Decimal("0.10")),
    ],
)
def test_parse_price_reads_what_shops_write(text: Any, expected: Decimal) -> None:
    value = parse_price(text)
    assert value == expected and isinstance(value, Decimal)
    assert str(value) == str(expected)  # exact digits: 15.00 stays 15.00, never a float


def test_zero_decimal_currency_reads_a_dot_as_thousands() -> None:
    assert parse_price("12.900", zero_decimal=True) == Decimal("12900")
    assert parse_price("12.900") == Decimal("12.900")
    assert parse_price("1.234", decimal_separator=",") == Decimal("1234")
    assert parse_price("1,234", decimal_separator=",") == Decimal("1.234")


@pytest.mark.parametrize(
    "text",
    ["", "free", "원", "1e5", "1,2,3.4.5", "['1']", "12 (VAT)", "1-2", "3 + 4", True, None, [1],
     {"a": 1}],
)
def test_parse_price_refuses_what_is_not_a_price(text: Any) -> None:
    with pytest.raises(ValueError):
        parse_price(text)


amounts = st.decimals(min_value=0, max_value=Decimal("99999999999"), places=2,
                      allow_nan=False, allow_infinity=False)


def _group(digits: str, sep: str) -> str:
    out = []
    while len(digits) > 3:
        out.insert(0, digits[-3:])
        digits = digits[:-3]
    out.insert(0, digits)
    return sep.join(out)


@given(amount=amounts, style=st.sampled_from(["us", "eu", "plain", "space", "symbol"]))
def test_parse_price_round_trips_every_locale_style(amount: Decimal, style: str) -> None:
    whole, _, cents = f"{amount:.2f}".partition(".")
    text = {
        "us": f"{_group(whole, ',')}.{cents} USD",
        "eu": f"{_group(whole, '.')},{cents} €",
        "plain": f"{whole}.{cents}",
        "space": f"{_group(whole, ' ')},{cents}",
        "symbol": f"${_group(whole, ',')}.{cents}",
    }[style]
    assert parse_price(text) == amount


@given(won=st.integers(min_value=0, max_value=10**12))
def test_parse_price_reads_korean_won_with_grouping(won: int) -> None:
    assert parse_price(f"{won:,}원") == won
    assert parse_price(f"{won:,}", zero_decimal=True) == won


# ---- transforms ----------------------------------------------------------------------------


RECORD = {
    "sku": "P1",
    "name": "반팔 티셔츠",
    "brand": "ACME",
    "price": {"amount": "12,900원", "currency": "KRW"},
    "stock": "Y",
    "images": ["https://a/1.jpg", "https://a/2.jpg", "https://a/3.jpg"],
    "tags": "a|b| c |",
    "category": ["패션", "상의"],
    "options": [{"color": "red"}, {"color": "blue"}],
    "price.krw": "5000",
    "unmapped": {"nested": [1, 2]},
}


@pytest.mark.parametrize(
    ("field", "spec", "expected"),
    [
        ("product_id", "sku", "P1"),
        ("title", {"template": "{brand} {name}"}, "ACME 반팔 티셔츠"),
        ("title", {"template": "{brand} {missing} {name}"}, "ACME 반팔 티셔츠"),
        ("title", {"template": "{{{brand}}}"}, "{ACME}"),
        ("title", {"template": "{missing}"}, None),
        ("currency", {"const": "USD"}, "USD"),
        ("price", {"path": "price.amount", "parse": "price"}, Decimal("12900")),
        ("price", "price.krw", "5000"),
        ("availability", {"path": "stock", "map": {"y": "in_stock"}}, "in_stock"),
        ("availability", {"path": "stock", "map": {"N": "out_of_stock"}}, "Y"),
        ("image_link", {"path": "images", "first": True}, "https://a/1.jpg"),
        ("image_link", "images.1", "https://a/2.jpg"),
        ("additional_image_links", {"path": "images", "slice": [1]},
         ["https://a/2.jpg", "https://a/3.jpg"]),
        ("additional_image_links", {"path": "tags", "split": "|"}, ["a", "b", "c"]),
        ("product_type", {"path": "category", "join": " > "}, "패션 > 상의"),
        ("product_type", {"path": "options.color", "join": ","}, "red,blue"),
        ("brand", {"path": ["maker", "brand"]}, "ACME"),
        ("mpn", {"path": "maker", "default": "none"}, "none"),
        ("shipping_cost", {"path": "name", "parse": "price"}, ParseFailure),
        ("gtin", {"path": "price.amount", "parse": "integer"}, 12900),
        ("mpn", {"path": "category", "first": True, "parse": "text"}, "패션"),
    ],
)
def test_each_transform(field: str, spec: Any, expected: Any) -> None:
    fields, _ = apply({field: spec}, RECORD)
    if expected is ParseFailure:
        assert isinstance(fields[field], ParseFailure)
    else:
        assert fields.get(field) == expected


def test_unmapped_top_level_fields_go_to_extra() -> None:
    mapping = {"product_id": "sku", "title": {"template": "{brand} {name}"},
               "price": {"path": "price.amount", "parse": "price"}}
    _, extra = apply(mapping, RECORD)
    assert set(extra) == {"stock", "images", "tags", "category", "options", "price.krw",
                          "unmapped"}


def test_empty_mapping_reads_internal_names_and_id() -> None:
    record = {"id": "7", "title": "T", "link": "https://x/7", "price": "5", "colour": "red",
              "size": "M"}
    fields, extra = apply({}, record)
    assert fields == {"product_id": "7", "title": "T", "link": "https://x/7", "price": "5",
                      "size": "M"}
    assert extra == {"colour": "red"}
    fields, _ = apply({}, {**record, "product_id": "P7"})
    assert fields["product_id"] == "P7"


def test_fields_not_named_by_a_mapping_still_default_to_their_own_name() -> None:
    fields, extra = apply({"product_id": "sku"}, {"sku": "1", "title": "T", "other": 1})
    assert fields == {"product_id": "1", "title": "T"} and extra == {"other": 1}


# ---- problems ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({"titel": "name"}, "mapping.titel is not an internal product field (did you mean 'title'?)"),
        ({"title": {"path": "a", "uppercase": True}}, "'uppercase' is not a transform"),
        ({"title": {"path": "a", "temlate": "x"}}, "did you mean 'template'?"),
        ({"title": {"path": "a", "const": "x"}}, "exactly one source"),
        ({"title": {"first": True}}, "it has none"),
        ({"price": {"path": "p", "parse": "money"}}, "parse 'money' is not known"),
        ({"title": {"template": "{brand"}}, "a single '{'"),
        ({"title": {"template": "{}"}}, "empty placeholder"),
        ({"title": 5}, "must be a path"),
        ({"title": {"path": ""}}, "non-empty path"),
        ({"title": {"path": "a..b"}}, "non-empty path"),
        ({"title": {"path": "a", "slice": "1:3"}}, "slice must be"),
        ({"title": {"path": "a", "map": ["x"]}}, "map must be an object"),
        ({"title": {"path": "a", "split": ""}}, "separator"),
        ({"price": {"path": "a", "decimal_separator": ";"}}, "decimal_separator"),
        ([], "mapping must be an object"),
    ],
)
def test_invalid_mapping_problems_say_what_and_where(mapping: Any, message: str) -> None:
    problems = mapping_problems(mapping, "json", {})
    assert any(message in p for p in problems), problems
    with pytest.raises(ConfigError) as caught:
        compile_mapping(mapping, "json", {}, currency="KRW")
    assert caught.value.exit_code == 65


@pytest.mark.parametrize("fmt", catalog_gen.FORMATS)
def test_the_generators_mappings_are_valid(fmt: str) -> None:
    assert mapping_problems(catalog_gen.MAPPINGS[fmt], fmt, catalog_gen.FORMAT_OPTIONS[fmt]) == []


def test_format_options_are_checked_with_the_mapping() -> None:
    assert mapping_problems({}, "csv", {"encoding": "nope"}) != []
    assert mapping_problems({}, "yaml", {}) == [
        "format 'yaml' is not known: expected one of csv, json, jsonl, xml"
    ]


def test_csv_columns_the_header_lacks_are_named_with_a_hint() -> None:
    mapping = {"product_id": "sku", "title": {"template": "{brand} {nmae}"}, "price": "price.krw"}
    problems = column_problems(mapping, ["sku", "brand", "name", "price.krw"])
    assert len(problems) == 1
    assert "mapping.title reads column 'nmae'" in problems[0] and "did you mean 'name'?" in problems[0]
    assert mapping_problems(mapping, "csv", {"fieldnames": ["sku", "brand", "name"]}) != []


def test_shop_import_refuses_an_invalid_mapping() -> None:
    raw = catalog_gen.shop("json", "/tmp/x.json", mapping={"price": {"path": "p", "parse": "cash"}})
    with pytest.raises(ConfigError, match="parse 'cash' is not known"):
        parse_shop(raw, "shops.json: shops[0]")
