"""Variants: the attributes in each platform's spelling and limits, Google's apparel requirement,
Meta's "each item of a group carries the attribute that differs", Naver's group_id."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import psycopg
import pytest

from tests.catalogs import insert_products, product
from tests.fixtures_shops import make_shop
from tests.worker.feed.helpers import build, read_text
from tests.worker.feed.items import XML_AND_TEXT, item, options, publish

SHIRT = {"color": "Navy", "size": "M", "gender": "남성", "age_group": "adult",
         "material": "Cotton", "pattern": "Striped", "item_group_id": "SHIRT-1"}


@pytest.mark.parametrize("name", XML_AND_TEXT)
def test_google_gets_every_variant_attribute_in_its_values(name: str) -> None:
    out = publish(name, item(**SHIRT, size_system="eu", size_type="Petite, maternity"))
    assert out.values is not None and not out.dropped
    assert {k: out.values[k] for k in (*SHIRT, "size_system", "size_type")} == {
        "color": "Navy", "size": "M", "gender": "male", "age_group": "adult",
        "material": "Cotton", "pattern": "Striped", "item_group_id": "SHIRT-1",
        "size_system": "EU", "size_type": "petite,maternity",
    }


@pytest.mark.parametrize("name", XML_AND_TEXT)
@pytest.mark.parametrize(
    ("field", "value", "sent"),
    [
        ("gender", "Women", "female"), ("gender", "남녀공용", "unisex"), ("gender", "robot", None),
        ("age_group", "키즈", "kids"), ("age_group", "teen", "adult"),
        ("age_group", "all ages", None), ("age_group", "elderly", None),
        ("size_system", "KR", None), ("size_type", "regular,petite,tall", None),
        ("size_type", "huge", None),
    ],
)
def test_google_value_sets(name: str, field: str, value: str, sent: str | None) -> None:
    out = publish(name, item(**{field: value}))
    assert out.values is not None
    assert out.values.get(field) == sent
    assert (field in out.dropped_fields()) is (sent is None)


@pytest.mark.parametrize("name", XML_AND_TEXT)
@pytest.mark.parametrize(("field", "limit"),
                         [("color", 100), ("size", 100), ("material", 200), ("pattern", 100),
                          ("mpn", 70)])
def test_google_attribute_limits_at_and_past_the_limit(name: str, field: str, limit: int) -> None:
    at = publish(name, item(**{field: "x" * limit}))
    assert at.values is not None and at.values[field] == "x" * limit
    over = publish(name, item(**{field: "x" * (limit + 1)}))
    assert over.values is not None and field not in over.values
    assert over.dropped_fields() == {field}


@pytest.mark.parametrize("name", XML_AND_TEXT)
def test_google_brand_is_trimmed_to_70(name: str) -> None:
    at = publish(name, item(brand="b" * 70)).values
    over = publish(name, item(brand="b" * 71)).values
    assert at is not None and over is not None
    assert at["brand"] == "b" * 70 and over["brand"] == "b" * 70


@pytest.mark.parametrize("name", XML_AND_TEXT)
def test_google_item_group_id_limit_is_50(name: str) -> None:
    at = publish(name, item(item_group_id="g" * 50))
    assert at.values is not None and at.values["item_group_id"] == "g" * 50
    over = publish(name, item(item_group_id="g" * 51))
    assert over.excluded and over.field == "item_group_id"


@pytest.mark.parametrize("name", XML_AND_TEXT)
def test_google_apparel_items_need_color_size_gender_and_age_group(name: str) -> None:
    apparel = options(apparel=True)
    complete = publish(name, item(**SHIRT), apparel)
    assert complete.values is not None
    for missing in ("color", "size", "gender", "age_group"):
        out = publish(name, item(**{**SHIRT, missing: None}), apparel)
        assert out.excluded and out.field == missing
        assert f"without {missing}" in (out.reason or "") and "apparel" in (out.reason or "")
    # A value outside Google's set is as good as none.
    out = publish(name, item(**{**SHIRT, "gender": "robot"}), apparel)
    assert out.excluded and out.field == "gender"
    # Without the shop option, the same item is published without the attribute.
    assert publish(name, item(**{**SHIRT, "size": None})).values is not None


@pytest.mark.parametrize(
    ("field", "value", "sent"),
    [("gender", "F", "female"), ("age_group", "all ages", "all ages"),
     ("age_group", "청소년", "teen"), ("age_group", "유아", "toddler"), ("gender", "x", None)],
)
def test_meta_value_sets(field: str, value: str, sent: str | None) -> None:
    out = publish("meta", item(**{field: value}))
    assert out.values is not None and out.values.get(field) == sent


def test_meta_brand_is_trimmed_to_100() -> None:
    at = publish("meta", item(brand="b" * 100)).values
    over = publish("meta", item(brand="b" * 101)).values
    assert at is not None and over is not None
    assert at["brand"] == "b" * 100 and over["brand"] == "b" * 100


@pytest.mark.parametrize(("field", "limit"),
                         [("color", 200), ("size", 200), ("material", 200), ("pattern", 100),
                          ("mpn", 100)])
def test_meta_attribute_limits_at_and_past_the_limit(field: str, limit: int) -> None:
    at = publish("meta", item(**{field: "x" * limit}))
    assert at.values is not None and at.values[field] == "x" * limit
    over = publish("meta", item(**{field: "x" * (limit + 1)}))
    assert over.values is not None and field not in over.values


@pytest.mark.parametrize("name", ["naver", "naver_summary"])
def test_naver_gets_group_id_gender_and_age_group_in_korean(name: str) -> None:
    out = publish(name, item(**{**SHIRT, "gender": "female", "age_group": "kids"}))
    assert out.values is not None
    assert (out.values["group_id"], out.values["gender"], out.values["age_group"]) == (
        "SHIRT-1", "여성", "아동"
    )


def test_meta_groups_carry_the_attribute_that_differs(
    conn: psycopg.Connection, tmp_path: Path
) -> None:
    make_shop(conn, id="shop-a", channels=["meta"])
    insert_products(conn, "shop-a", [
        # Group T: colours differ; T-3 has none, so Meta could not tell it from its siblings.
        product("T-1", item_group_id="T", color="Red", size="M"),
        product("T-2", item_group_id="T", color="Blue", size="M"),
        product("T-3", item_group_id="T", color=None, size="M"),
        # Group S: sizes differ, every item has one.
        product("S-1", item_group_id="S", size="S"),
        product("S-2", item_group_id="S", size="L"),
        # Group D: nothing differs: the group id is dropped, the items stay.
        product("D-1", item_group_id="D", color="Red"),
        product("D-2", item_group_id="D", color="Red"),
        # Group F: colours differ on every item; material only on one: F-2 stays without it.
        product("F-1", item_group_id="F", color="Red", material="Linen"),
        product("F-2", item_group_id="F", color="Blue"),
        # A group of one needs nothing.
        product("O-1", item_group_id="O"),
        product("X-1", item_group_id="X", color="Red", gone_at=product("X-1")["first_seen_at"]),
        product("X-2", item_group_id="X", color="Red"),
    ])
    result, rejects = build(conn, "shop-a", ["meta"], tmp_path)
    rows = {r["id"]: r for r in csv.DictReader(io.StringIO(read_text(result.feeds[0].path)))}
    assert set(rows) == {"T-1", "T-2", "S-1", "S-2", "D-1", "D-2", "F-1", "F-2", "O-1", "X-2"}
    assert rows["F-2"]["item_group_id"] == "F" and rows["F-2"]["material"] == ""
    assert (rows["T-1"]["color"], rows["T-2"]["color"]) == ("Red", "Blue")
    assert rows["T-1"]["item_group_id"] == rows["T-2"]["item_group_id"] == "T"
    assert rows["S-1"]["item_group_id"] == "S" and rows["O-1"]["item_group_id"] == "O"
    assert rows["D-1"]["item_group_id"] == rows["D-2"]["item_group_id"] == ""
    assert rows["X-2"]["item_group_id"] == "X"  # its sibling is gone: a group of one
    excluded = [r for r in rejects.records if r["outcome"] == "excluded"]
    assert [(r["product_id"], r["field"]) for r in excluded] == [("T-3", "color")]
    assert "differs within its item_group_id" in excluded[0]["reason"]
    dropped = sorted(r["product_id"] for r in rejects.records if r["outcome"] == "dropped")
    assert dropped == ["D-1", "D-2"]
