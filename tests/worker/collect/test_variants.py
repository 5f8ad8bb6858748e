"""Option expansion: a record's list of options becomes one product per option — in the mapping,
in its declaration's problems, and end to end through the collect task against PostgreSQL."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest

from submitter.shopfile import parse_shop
from tests import catalogs as catalog_gen
from tests.worker.collect.conftest import products_table, register, rejects_table, write_catalog
from worker.collect.mapping import CompiledMapping, mapping_problems
from worker.collect.validate import ROW_COLUMNS, normalise
from worker.collect.values import ParseFailure
from worker.common.errors import ConfigError, FatalError, RejectedRecord

VARIANTS = {"path": "options", "id": "{product_id}-{option.code}", "price_delta": "add",
            "stock": "qty", "fields": {"color": "color", "size": "size",
                                       "price": {"path": "own_price", "parse": "price"}}}
MAPPING = {"product_id": "sku", "title": "name", "link": "url",
           "price": {"path": "price", "parse": "price"}, "sale_price": "sale",
           "item_group_id": "group", "variants": VARIANTS}
RECORD = {
    "sku": "T1", "name": "티셔츠", "url": "https://shop.example/상품/T1", "price": "12,900원",
    "sale": "11,900", "group": "ignored", "brand": "ACME", "memo": "m",
    "options": [
        {"code": "BK-M", "color": "블랙", "size": "M", "add": "1,000", "qty": 3, "note": "x"},
        {"code": "WH-L", "color": "화이트", "size": "L", "add": -500, "qty": "0"},
        {"code": "RD-S", "color": "레드", "size": "S", "own_price": "20,000원", "add": "1000"},
    ],
}


def expand(record: dict[str, Any], mapping: dict[str, Any] | None = None) -> list[Any]:
    compiled = CompiledMapping(mapping or MAPPING, currency="KRW")
    assert compiled.variants is not None
    fields, extra = compiled.apply(record)
    return list(compiled.variants.expand(fields, extra, record))


def stored(option: int, fields: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    values = normalise(1, fields, extra, currency="KRW", option=option)
    assert values[:2] == (1, option)
    return dict(zip(ROW_COLUMNS, values[2:], strict=True))


def test_each_option_becomes_a_product_of_the_records_group() -> None:
    variants = expand(RECORD)
    assert [v[0] for v in variants] == [1, 2, 3]
    rows = [stored(*v) for v in variants]
    assert [r["product_id"] for r in rows] == ["T1-BK-M", "T1-WH-L", "T1-RD-S"]
    assert {r["item_group_id"] for r in rows} == {"T1"}  # the record's id, not its own group
    assert [(r["color"], r["size"]) for r in rows] == [("블랙", "M"), ("화이트", "L"), ("레드", "S")]
    # base + difference (sale price too); an option's own price wins over the difference
    assert [r["price"] for r in rows] == [Decimal(13900), Decimal(12400), Decimal(20000)]
    assert [r["sale_price"] for r in rows] == [Decimal(12900), Decimal(11400), Decimal(12900)]
    # availability from stock: 3 → in stock, "0" → out; no stock → the record's (default)
    assert [r["availability"] for r in rows] == ["in_stock", "out_of_stock", "in_stock"]
    assert all(r["title"] == "티셔츠" and r["link"] == RECORD["url"] and r["brand"] == "ACME"
               for r in rows)
    # the option's unmapped fields are kept; the options list itself is not repeated
    assert [json.loads(r["extra"]) for r in rows] == [
        {"memo": "m", "option": {"note": "x"}}, {"memo": "m"}, {"memo": "m"}]


def test_a_record_without_options_is_a_product_by_itself() -> None:
    for options in (None, [], ""):
        ((option, fields, _),) = expand({**RECORD, "options": options})
        assert option == 0 and fields["product_id"] == "T1" and fields["item_group_id"] == "ignored"


def test_options_as_json_text_and_a_single_xml_child() -> None:
    text = json.dumps(RECORD["options"], ensure_ascii=False)
    assert [f["product_id"] for _, f, _ in expand({**RECORD, "options": text})] == [
        "T1-BK-M", "T1-WH-L", "T1-RD-S"]
    xml_like = {"sku": "X1", "name": "n", "url": "https://a/x", "price": "5",
                "options": {"option": {"@code": "A", "@color": "red"}}}
    mapping = {**MAPPING, "variants": {"path": "options.option", "id": "{product_id}/{option.@code}",
                                       "fields": {"color": "@color"}}}
    ((option, fields, _),) = expand(xml_like, mapping)
    assert (option, fields["product_id"], fields["color"]) == (1, "X1/A", "red")


@pytest.mark.parametrize(
    ("options", "reason", "field"),
    [("[not json", "are text that is not a JSON list", "variants"),
     (7, "are a int, expected a list", "variants"),
     (["S/M"], "option 1 is a str, expected an object", "variants"),
     ([{"color": "red"}], "option 1 has no option.code for its id ({product_id}-{option.code})",
      "product_id"),
     ([{"code": " "}], "option 1 has no option.code", "product_id"),
     ([{"code": {"a": 1}}], "option 1 has no option.code", "product_id")],
)
def test_an_option_that_cannot_be_a_product_is_rejected_with_its_position(
    options: Any, reason: str, field: str
) -> None:
    ((_, rejected, _),) = expand({**RECORD, "options": options})
    assert isinstance(rejected, RejectedRecord)
    assert reason in rejected.reason and rejected.field == field


def test_unreadable_differences_and_stocks_reject_that_option_only() -> None:
    record = {**RECORD, "options": [{"code": "A", "add": "lots"}, {"code": "B", "qty": "many"},
                                    {"code": "C", "add": "1,000"}]}
    a, b, c = expand(record)
    with pytest.raises(RejectedRecord) as caught:
        stored(*a)
    assert caught.value.field == "price"
    assert "price cannot be read: the option's price difference" in caught.value.reason
    assert isinstance(b[1]["availability"], ParseFailure)
    with pytest.raises(RejectedRecord) as caught:
        stored(*b)
    assert caught.value.field == "availability" and "the option's stock" in caught.value.reason
    assert stored(*c)["price"] == Decimal(13900)


def test_a_record_without_an_id_rejects_its_options() -> None:
    variants = expand({**RECORD, "sku": None})
    assert len(variants) == 3
    assert all(isinstance(v[1], RejectedRecord) and v[1].field == "product_id" for v in variants)


def test_the_index_placeholder_names_options_by_position() -> None:
    mapping = {**MAPPING, "variants": {"path": "options", "id": "{product_id}_{index}"}}
    assert [f["product_id"] for _, f, _ in expand(RECORD, mapping)] == ["T1_1", "T1_2", "T1_3"]


@pytest.mark.parametrize(
    ("variants", "message"),
    [
        ("options", "mapping.variants must be an object"),
        ({"id": "{product_id}-{index}"}, "mapping.variants.path must be the path"),
        ({"path": "options"}, "mapping.variants.id must be a template"),
        ({"path": "options", "id": "{product_id}"}, "gives every option the same id"),
        ({"path": "options", "id": "{sku}-{index}"}, "{sku} is not known"),
        ({"path": "options", "id": "{product_id-{index}"}, "mapping.variants.id"),
        ({"path": "options", "id": "{index}", "feilds": {}}, "did you mean 'fields'?"),
        ({"path": "options", "id": "{index}", "fields": []}, "mapping.variants.fields must be"),
        ({"path": "options", "id": "{index}", "fields": {"product_id": "code"}},
         "a variant's id comes from mapping.variants.id"),
        ({"path": "options", "id": "{index}", "fields": {"colour": "c"}},
         "mapping.variants.fields.colour is not an internal product field (did you mean 'color'?)"),
        ({"path": "options", "id": "{index}", "fields": {"price": {"path": "p", "parse": "cash"}}},
         "mapping.variants.fields.price.parse 'cash' is not known"),
        ({"path": "options", "id": "{index}", "price_delta": {"const": 1, "path": "x"}},
         "mapping.variants.price_delta needs exactly one source"),
        ({"path": "options", "id": "{index}", "stock": 5}, "mapping.variants.stock must be a path"),
    ],
)
def test_an_invalid_declaration_is_refused_at_shop_import(variants: Any, message: str) -> None:
    problems = mapping_problems({**MAPPING, "variants": variants}, "json", {})
    assert any(message in p for p in problems), problems
    raw = catalog_gen.shop("json", "/tmp/x.json", mapping={**MAPPING, "variants": variants})
    with pytest.raises(ConfigError, match=r"mapping\.variants"):
        parse_shop(raw, "shops.json: shops[0]")


def test_the_csv_header_must_have_the_options_column() -> None:
    problems = mapping_problems(MAPPING, "csv", {"fieldnames": ["sku", "name", "url", "price",
                                                               "sale", "group", "optoins"]})
    assert any("mapping.variants reads column 'options'" in p and "optoins" in p
               for p in problems), problems


# ---- end to end -------------------------------------------------------------------------------

N = 12


def _expected(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """variant id → what collect must store, computed from the generator's items by hand."""
    out = {}
    for item in items:
        for option in item["options"]:
            price = item["price"]["amount"] + option["add_price"]
            sale = item["sale_price"]
            out[f"{item['sku']}-{option['code']}"] = {
                "item_group_id": item["sku"], "color": option["color"], "size": option["size"],
                "price": Decimal(price),
                "sale_price": None if sale is None else Decimal(sale + option["add_price"]),
                "availability": "in_stock" if option["stock"] > 0 else "out_of_stock",
                "mpn": item["model_no"], "gender": item["sex"], "link": item["url"],
            }
    return out


@pytest.mark.parametrize("fmt", ["json", "csv", "xml"])
def test_every_format_stores_one_product_per_option(
    conn: psycopg.Connection, run_collect: Any, tmp_path: Path, fmt: str
) -> None:
    items = list(catalog_gen.products(N))
    register(conn, fmt, write_catalog(tmp_path / f"c.{fmt}", fmt, items),
             mapping=catalog_gen.VARIANT_MAPPINGS[fmt])
    result, sink = run_collect()
    expected = _expected(items)
    assert sink.count == 0, sink.summary()
    assert (result.rows_in, result.rows_out, result.counts["inserted"]) == (
        N, len(expected), len(expected))
    rows = products_table(conn)
    assert set(rows) == set(expected)  # the parents themselves are not stored
    for variant_id, want in expected.items():
        assert {k: rows[variant_id][k] for k in want} == want, variant_id


def test_the_delta_and_the_shrink_gate_see_variants_as_products(
    conn: psycopg.Connection, run_collect: Any, tmp_path: Path
) -> None:
    path = tmp_path / "c.json"
    items = list(catalog_gen.products(N))
    register(conn, "json", write_catalog(path, "json", items),
             mapping=catalog_gen.VARIANT_MAPPINGS["json"], options={"max_shrink_share": 0.1})
    run_collect()
    total = len(_expected(items))
    assert total > 20  # so that one gone variant stays under the 10 % shrink gate
    conn.execute("UPDATE shops SET source_etag = NULL")
    conn.commit()
    again, _ = run_collect()
    assert (again.counts["unchanged"], again.counts["updated"]) == (total, 0)
    # One option sells out, one is dropped: one update, one gone, nothing else moves.
    changed = json.loads(json.dumps(items))
    changed[0]["options"][0]["stock"] = 0 if items[0]["options"][0]["stock"] else 5
    dropped = changed[1]["options"].pop()
    write_catalog(path, "json", changed)
    result, _ = run_collect()
    assert {k: result.counts[k] for k in ("inserted", "updated", "unchanged", "gone")} == {
        "inserted": 0, "updated": 1, "unchanged": total - 2, "gone": 1}
    assert products_table(conn)[f"{items[1]['sku']}-{dropped['code']}"]["gone_at"] is not None
    # A snapshot that keeps every record but loses options past the gate is refused: the gate
    # counts variants.
    for item in changed:
        item["options"] = item["options"][:1]
    write_catalog(path, "json", changed)
    removed = total - 1 - len(changed)
    with pytest.raises(FatalError, match=f"would remove {removed} of the shop's {total - 1} "):
        run_collect()


def test_rejects_name_the_variant_and_its_option_position(
    conn: psycopg.Connection, run_collect: Any, tmp_path: Path
) -> None:
    items = list(catalog_gen.products(N))
    items[2]["options"][0]["add_price"] = "a lot"
    items[4]["options"].append(dict(items[4]["options"][0]))  # the same code twice
    register(conn, "json", write_catalog(tmp_path / "c.json", "json", items),
             mapping=catalog_gen.VARIANT_MAPPINGS["json"])
    result, _ = run_collect()
    assert result.rows_rejected == 2
    rejects = {r["position"]: r for r in rejects_table(conn)}
    bad = rejects["item 3, option 1"]
    assert bad["product_id"] == f"{items[2]['sku']}-{items[2]['options'][0]['code']}"
    assert bad["field"] == "price" and "the option's price difference" in bad["reason"]
    last = len(items[4]["options"])
    duplicate = rejects[f"item 5, option {last}"]
    assert duplicate["product_id"] == f"{items[4]['sku']}-{items[4]['options'][0]['code']}"
    assert duplicate["reason"] == "duplicate product id: the first, at item 5, option 1, wins"


def test_the_demos_apparel_shop_expands_its_options(tmp_path: Path) -> None:
    """The sample shop a reader of ./out sees: colour/size variants, Hangul in its URLs."""
    from submitter.demo import render_samples
    from submitter.shopfile import read_shop_file

    shops = {s.id: s for s in read_shop_file(render_samples(tmp_path / "www",
                                                            "http://127.0.0.1:1234"))}
    shop = shops["seongsu-apparel"]
    assert list(shop.channels) == ["google", "meta", "naver"]
    assert shop.option("apparel") is True
    catalog = json.loads((tmp_path / "www" / "catalogs" / "seongsu-apparel.json").read_text())
    compiled = CompiledMapping(shop.mapping, currency=shop.currency)
    assert compiled.variants is not None
    rows = []
    for record in catalog["products"]:
        fields, extra = compiled.apply(record)
        rows += [stored(*v) for v in compiled.variants.expand(fields, extra, record)]
    by_id = {r["product_id"]: r for r in rows}
    assert list(by_id) == ["SA-HOOD-BK-M", "SA-HOOD-BK-L", "SA-HOOD-GR-L", "SA-HOOD-GR-XL",
                           "SA-SLACKS-BE-26", "SA-SLACKS-NV-28", "SA-CAP"]
    assert by_id["SA-HOOD-GR-XL"]["price"] == 63000 and by_id["SA-HOOD-GR-XL"]["sale_price"] == (
        53000)
    assert by_id["SA-HOOD-BK-L"]["availability"] == "out_of_stock"
    assert by_id["SA-CAP"]["item_group_id"] is None and by_id["SA-CAP"]["color"] == "블랙"
    assert all(r["gender"] and r["age_group"] and r["color"] and r["size"] for r in rows)
    assert by_id["SA-SLACKS-NV-28"]["image_link"] == "http://127.0.0.1:1234/images/슬랙스 네이비.png"
    for row in rows:  # every image it names is served by the demo's server from www/images
        name = row["image_link"].rsplit("/images/", 1)[1]
        assert (tmp_path / "www" / "images" / name).is_file(), name
    assert "상품" in by_id["SA-CAP"]["link"]


class _Rejects:
    def __init__(self) -> None:
        self.added: list[tuple[str, dict[str, Any]]] = []

    def add(self, reason: str, **where: Any) -> None:
        self.added.append((reason, where))


def test_options_expand_lazily_one_record_at_a_time() -> None:
    """The first option's row is out before the second record is read: nothing is gathered."""
    from worker.collect.compiled import compile_rows
    from worker.collect.task import _rows, _Tally

    read: list[int] = []

    def records() -> Any:
        for pos in range(1, 1000):
            read.append(pos)
            yield pos, {**RECORD, "sku": f"T{pos}"}

    tally = _Tally()
    maker = compile_rows(CompiledMapping(MAPPING, currency="KRW"), "KRW")
    rows = _rows(records(), maker, _Rejects(), "item", tally)
    first = next(rows)
    assert read == [1] and first[:3] == (1, 1, "T1-BK-M")
    assert [next(rows)[:3] for _ in range(3)] == [(1, 2, "T1-WH-L"), (1, 3, "T1-RD-S"),
                                                  (2, 1, "T2-BK-M")]
    assert read == [1, 2] and (tally.rows_in, tally.candidates) == (2, 4)


def test_the_reject_gate_counts_options(
    conn: psycopg.Connection, run_collect: Any, tmp_path: Path
) -> None:
    items = list(catalog_gen.products(N))
    total = len(_expected(items))
    bad = 0
    for item in items[:4]:
        for option in item["options"]:
            option["code"] = None  # an option without the code its id needs
            bad += 1
    register(conn, "json", write_catalog(tmp_path / "c.json", "json", items),
             mapping=catalog_gen.VARIANT_MAPPINGS["json"], options={"max_reject_share": 0.1})
    assert bad > 0.1 * total
    with pytest.raises(FatalError, match=(
            rf"{bad} of {total} products \(options expanded\) were rejected")):
        run_collect()
    assert products_table(conn) == {}
    assert {r["position"].split(", ")[1] for r in rejects_table(conn)} >= {"option 1"}
