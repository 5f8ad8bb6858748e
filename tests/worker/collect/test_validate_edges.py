"""Validation's rules where the mutation run (docs/mutation.md) found no test looking: control
characters inside XML text nodes, the kind a wrong type is named by, decimals no float holds."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from worker.collect.validate import ROW_COLUMNS, extra_json, normalise
from worker.common.errors import RejectedRecord

BASE = {"product_id": "P1", "title": "Shirt", "link": "https://shop.example/p/1", "price": "15.00"}


def row(**fields: Any) -> dict[str, Any]:
    values = normalise(0, {**BASE, **fields}, {}, currency="USD")
    return dict(zip(ROW_COLUMNS, values[2:], strict=True))


def test_control_characters_go_from_an_xml_text_node_too() -> None:
    # The module's promise: no C0 control but tab, newline and carriage return reaches storage.
    out = row(title={"#text": " Sh\x00irt\x1b one ", "@lang": "en"}, brand={"#text": "Ac\x07me"})
    assert out["title"] == "Shirt one" and out["brand"] == "Acme"


@pytest.mark.parametrize(("value", "kind"), [(True, "boolean"), ({"a": 1}, "object"),
                                             ([1], "list"), (1.5, "float")])
def test_a_wrong_type_is_named_by_its_kind(value: Any, kind: str) -> None:
    with pytest.raises(RejectedRecord) as caught:
        row(brand=value)
    assert caught.value.reason == f"brand is a {kind}, expected text"
    assert caught.value.field == "brand"


def test_a_decimal_no_float_holds_is_kept_as_its_exact_text() -> None:
    exact = Decimal("12900.00000000000000001")  # 22 significant digits: a float would round it
    assert json.loads(extra_json({"p": exact, "q": Decimal("12.5")})) == {
        "p": "12900.00000000000000001", "q": 12.5,
    }


def test_bytes_in_the_unmapped_rest_are_kept_as_utf8_text() -> None:
    assert json.loads(extra_json({"b": b"caf\xc3\xa9", "bad": b"\xff"})) == {
        "b": "café", "bad": "\ufffd",
    }


def test_a_shipping_cost_in_an_xml_text_node_is_read() -> None:
    out = row(shipping_cost={"#text": "2500", "@currency": "USD"})
    assert out["shipping_cost"] == Decimal(2500)
