"""The compiled collect (worker.collect.compiled) against the interpreted reference: the same rows
and the same rejects, record by record and through the collect loop, on arbitrary records."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import catalogs as catalog_gen
from worker.collect.compiled import InterpretedRows, RowMaker, compile_rows
from worker.collect.mapping import VARIANTS, CompiledMapping, compile_mapping, template_paths
from worker.collect.task import _rows, _Tally
from worker.common.errors import RejectedRecord

# A key that would break out of any generated source that embedded it unquoted.
HOSTILE = "we'ird \"key\"\n}) ; __import__('os').system('false') #\\"

# Every source and transform of the mapping language at least once.
KITCHEN_SINK: dict[str, Any] = {
    "product_id": {"path": ["code", "sku"]},
    "title": {"template": "{{new}} {brand} {name.ko}  {tags}"},
    "description": {"path": "desc", "default": "no description"},
    "link": "links.0",
    "mobile_link": {"path": ["m", "links.1"]},
    "image_link": {"path": "imgs", "split": ",", "first": True},
    "additional_image_links": {"path": "imgs", "split": ",", "slice": [1]},
    "price": {"path": "preis", "parse": "price", "decimal_separator": ","},
    "sale_price": {"path": ["sale", "promo.amount"], "parse": "decimal"},
    "currency": {"const": "EUR"},
    "availability": {"path": "stock", "map": {"Y": "in_stock", " n ": "out_of_stock",
                                              "1": "preorder", "X": None}},
    "condition": {"path": "cond", "map": {"A": "new"}, "default": "used"},
    "brand": {"path": HOSTILE},
    "gtin": {"path": "gtin", "parse": "integer"},
    "mpn": {"path": "mpn", "parse": "text", "default": {"not": "text"}},
    "item_group_id": {"const": 7},
    "product_type": {"path": "cats", "join": " > "},
    "shipping_cost": {"path": "ship", "parse": "price"},
    "size": {"path": "sizes", "map": {"M": "Medium"}, "join": "/"},
    "color": {"path": "a'b.c\"d", "slice": [0, 2], "join": "+"},
    "sale_price_start": "window.from",
    "sale_price_end": "window.to",
    "availability_date": "avail_on",
}
SINK_VARIANTS: dict[str, Any] = {
    **KITCHEN_SINK,
    VARIANTS: {"path": "opts", "id": "{product_id}/{option.c}-{index}",
               "price_delta": {"path": "d", "parse": "price"}, "stock": "n",
               "fields": {"color": "col", "price": {"path": "p", "parse": "decimal"},
                          "availability": {"path": "av", "map": {"soon": "preorder"}},
                          "item_group_id": "group", "sale_price": "sp"}},
}
MAPPINGS: dict[str, tuple[str, dict[str, Any], str]] = {
    "json": ("json", catalog_gen.MAPPINGS["json"], "KRW"),
    "csv": ("csv", catalog_gen.MAPPINGS["csv"], "KRW"),
    "xml": ("xml", catalog_gen.MAPPINGS["xml"], "KRW"),
    "json options": ("json", catalog_gen.VARIANT_MAPPINGS["json"], "KRW"),
    "csv options": ("csv", catalog_gen.VARIANT_MAPPINGS["csv"], "KRW"),
    "empty (internal names)": ("json", {}, "USD"),
    "kitchen sink": ("json", KITCHEN_SINK, "EUR"),
    "kitchen sink options": ("json", SINK_VARIANTS, "JPY"),
}

# ---- arbitrary records, mostly shaped like the mapping expects ------------------------------

URLS = ["https://shop.example/p/1", "http://shop.example/a b", "HTTPS://UP.example/x",
        " https://cdn.example/i.jpg "]
GOOD: dict[str, list[Any]] = {
    "text": ["Tee", "  padded  ", "무신사 스탠다드", "a\x01b", "x y\tz", 42, Decimal("1.50")],
    "url": [*URLS, ",".join(URLS[:3])],
    "urls": [*URLS, URLS[:2], ",".join(URLS[:3]), "|".join(URLS[1:])],
    "price": [12900, Decimal("15.00"), "12,900원", "1.234,56 €", "15", "$15.00", 0, "0012",
              "1,5", Decimal("1E+2"), "3.700", "15000원", "1,234,567원", "1,000,00원"],
    "currency": ["KRW", " usd ", "", "jpy"],
    "availability": ["in stock", "품절", True, 3, "Sold Out", "in_stock", "Y"],
    "condition": ["new", "중고", "refurbished", "USED"],
    "date": ["2026-12-01", "2026-12-01T10:00:00+09:00", "2027-01-15T09:00"],
    "start": ["2026-11-01", "2026-11-20T10:00:00+09:00"],
    "end": ["2026-12-01", "2027-01-15T09:00"],
    "list": [["a", "M", None, ""], ["패션", "의류"], "M"],
}
BAD: list[Any] = [None, "", "   ", [], {}, {"#text": "12"}, [1, {"x": 2}], "abc", -5,
                  Decimal("NaN"), False, "\x00", "x" * 1100, Decimal("1E+17"), "2026-13-01",
                  {"a": [1]}, 10**30, "ftp://x", "12.5", "-3", "1.234.567,89", "2026-10-01",
                  "1", " n ", "A", "N"]
KIND: dict[str, str] = {
    "link": "url", "mobile_link": "url", "image_link": "url", "additional_image_links": "urls",
    "price": "price", "sale_price": "price", "shipping_cost": "price", "currency": "currency",
    "availability": "availability", "condition": "condition", "availability_date": "date",
    "sale_price_start": "start", "sale_price_end": "end", "gtin": "price",
    "price_delta": "price", "stock": "price",
}


def leaf(kind: str) -> st.SearchStrategy[Any]:
    good = st.sampled_from(GOOD[kind])
    bad = st.one_of(st.sampled_from(BAD), st.text(max_size=8), st.integers(-3, 10**6))
    # Mostly good values, so that a good share of records is valid (asserted below).
    return st.sampled_from([True] * 99 + [False]).flatmap(lambda ok: good if ok else bad)


def _paths(spec: Any) -> list[str]:
    if isinstance(spec, str):
        return [spec]
    if not isinstance(spec, dict):
        return []
    if "path" in spec:
        return spec["path"] if isinstance(spec["path"], list) else [spec["path"]]
    if "template" in spec:
        return template_paths(spec["template"])
    return []


def _kind(field: str, spec: Any) -> str:
    transforms = set(spec) if isinstance(spec, dict) else set()
    if "join" in transforms:
        return "list"
    kind = KIND.get(field, "text")
    if kind == "url" and transforms & {"first", "slice", "split"}:
        return "urls"
    return kind


def _tree(specs: dict[str, Any]) -> dict[str, Any]:
    """Nested {key: subtree or kind} of every path the specs read."""
    tree: dict[str, Any] = {}
    for field, spec in specs.items():
        for path in _paths(spec):
            node = tree
            parts = path.split(".") if path not in (HOSTILE, "a'b.c\"d") else [path]
            for part in parts[:-1]:
                child = node.get(part)
                if not isinstance(child, dict):
                    child = node[part] = {}
                node = child
            if not isinstance(node.get(parts[-1]), dict):
                node[parts[-1]] = _kind(field, spec)
    return tree


def _value(node: Any) -> st.SearchStrategy[Any]:
    if isinstance(node, str):
        return leaf(node)
    numeric = {k: v for k, v in node.items() if k.isdigit()}
    if numeric:  # "links.0": a list whose items are what the paths read
        size = max(int(k) for k in numeric) + 1
        return st.lists(leaf("url"), min_size=size, max_size=size + 1)
    shaped = st.fixed_dictionaries({k: _value(v) for k, v in node.items()})
    return st.sampled_from([True] * 99 + [False]).flatmap(
        lambda ok: shaped if ok else st.one_of(st.sampled_from(BAD), st.lists(shaped, max_size=2)))


def _options(spec: dict[str, Any]) -> st.SearchStrategy[Any]:
    option_specs = {**spec.get("fields", {}), "price_delta": spec.get("price_delta"),
                    "stock": spec.get("stock")}
    tree = _tree({k: v for k, v in option_specs.items() if v is not None})
    for name in template_paths(spec["id"]):
        if name.startswith("option."):
            tree.setdefault(name[len("option."):], "text")
    option = st.fixed_dictionaries({k: _value(v) for k, v in tree.items()},
                                   optional={"extra": st.integers()})
    options = st.lists(option, max_size=3)
    return st.integers(0, 19).flatmap(lambda n: options if n < 16 else st.one_of(
        options.map(lambda o: json.dumps(o, default=str)), st.sampled_from(BAD),
        st.lists(st.sampled_from(BAD), max_size=2), option))


def records(mapping: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    specs = {k: v for k, v in mapping.items() if k != VARIANTS}
    tree = _tree(specs)
    for field in ("product_id", "title", "link", "price"):
        if field not in mapping:  # an unmapped field is read under its own name
            tree.setdefault(field, KIND.get(field, "text"))
    if "product_id" not in mapping:
        tree.setdefault("id", "text")
    shaped = {k: _value(v) for k, v in tree.items()}
    if VARIANTS in mapping:
        shaped[mapping[VARIANTS]["path"]] = _options(mapping[VARIANTS])
    required = st.fixed_dictionaries(shaped)
    rest = st.dictionaries(st.sampled_from(["note", "rating", "sku", "extra", "name", "\x00k"]),
                           st.one_of(st.sampled_from(BAD), st.text(max_size=4)), max_size=3)
    return st.tuples(required, rest).map(lambda pair: {**pair[1], **pair[0]})


# ---- the comparison --------------------------------------------------------------------------


def makers(name: str) -> tuple[RowMaker, RowMaker]:
    fmt, mapping, currency = MAPPINGS[name]
    options = catalog_gen.FORMAT_OPTIONS[fmt]
    compiled = compile_mapping(mapping, fmt, options, currency=currency)
    return InterpretedRows(compiled, currency), compile_rows(compiled, currency)


def _said(result: Any) -> Any:
    """What an outcome shows: the row exactly (repr keeps Decimal's scale), or the error."""
    if isinstance(result, tuple):
        return repr(result)
    if isinstance(result, RejectedRecord):
        return ("reject", result.reason, result.field, result.excerpt)
    return (type(result).__name__, str(result))


def outcomes(maker: RowMaker, pos: int, record: dict[str, Any]) -> list[Any]:
    if maker.variants:
        try:
            return [(o, _said(r), p) for o, r, p in maker.expand(pos, record)]
        except Exception as exc:
            return [("failed", _said(exc))]
    try:
        return [_said(maker.row(pos, record))]
    except Exception as exc:
        return [_said(exc), maker.product_id(record)]


class _Rejects:
    def __init__(self) -> None:
        self.added: list[tuple[str, dict[str, Any]]] = []

    def add(self, reason: str, **where: Any) -> None:
        self.added.append((reason, where))


def collect_loop(maker: RowMaker, items: list[dict[str, Any]]) -> tuple[Any, ...]:
    rejects, tally = _Rejects(), _Tally()
    rows = [repr(r) for r in _rows(iter(enumerate(items, 1)), maker, rejects, "item", tally)]
    return rows, rejects.added, (tally.rows_in, tally.candidates, tally.rejected)


@pytest.mark.parametrize("name", list(MAPPINGS))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_compiled_and_interpreted_give_the_same_rows_and_rejects(name: str, data: Any) -> None:
    interpreted, compiled = makers(name)
    record = data.draw(records(MAPPINGS[name][1]))
    assert outcomes(compiled, 3, record) == outcomes(interpreted, 3, record)


@pytest.mark.parametrize("name", ["json", "json options", "kitchen sink options"])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_collect_loop_is_the_same_on_both_paths(name: str, data: Any) -> None:
    """Through task._rows: the same rows, the same rejects (reason, position, field, product id,
    excerpt) and the same counts."""
    interpreted, compiled = makers(name)
    items = data.draw(st.lists(records(MAPPINGS[name][1]), max_size=5))
    assert collect_loop(compiled, items) == collect_loop(interpreted, items)


@pytest.mark.parametrize("name", list(MAPPINGS))
def test_the_records_are_valid_often_enough_to_compare_rows(name: str) -> None:
    """A differential test of rejects alone would prove little: the strategy gives valid
    records (rows on both paths) for a good share of its examples."""
    interpreted, _ = makers(name)
    valid: list[bool] = []

    @settings(max_examples=200, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(record=records(MAPPINGS[name][1]))
    def draw(record: dict[str, Any]) -> None:
        said = outcomes(interpreted, 1, record)
        valid.append(any(isinstance(s, str) or (isinstance(s, tuple) and isinstance(s[1], str))
                         for s in said))

    draw()
    assert len(valid) >= 100
    assert sum(valid) / len(valid) >= 0.25, f"{sum(valid)} of {len(valid)} valid"


def test_the_generated_source_quotes_what_the_shop_wrote() -> None:
    """Hostile keys, separators and template text appear only as literals, constants and value
    maps not at all; and the function still reads the hostile key."""
    _, compiled = makers("kitchen sink")
    source = compiled.source  # type: ignore[attr-defined]
    assert repr(HOSTILE) in source
    assert "__import__('os')" not in source.replace(repr(HOSTILE), "")
    assert "no description" not in source and "in_stock" not in source.split("_AVAIL")[0]
    record = {"sku": "S1", "brand": "B", "name": {"ko": "이름"}, "links": URLS[:1],
              "preis": "1.234,56 €", "mpn": 5, HOSTILE: "Hostile Brand"}
    row = compiled.row(1, record)
    assert row[2:4] == ("S1", "{new} B 이름") and "Hostile Brand" in row
    assert row[9] == Decimal("1234.56") and row[11] == "EUR"


def test_a_mapping_compiles_once_and_is_reused() -> None:
    compiled = CompiledMapping(catalog_gen.MAPPINGS["json"], currency="KRW")
    maker = compile_rows(compiled, "KRW")
    item = next(catalog_gen.products(1))
    assert maker.row(1, item) == InterpretedRows(compiled, "KRW").row(1, item)
    with pytest.raises(TypeError, match="without variants"):
        next(iter(maker.expand(1, item)))


def test_a_path_segment_of_non_ascii_digits_is_a_key_not_an_index() -> None:
    # "²".isdigit() is True but int("²") fails: such a segment names a key, in both paths.
    mapping = {"product_id": "id", "title": "t.²", "link": "l", "price": "p"}
    compiled = compile_mapping(mapping, "json", {}, currency="KRW")
    record = {"id": "P1", "t": {"²": "Shirt"}, "l": "https://shop.example/p1", "p": "1000"}
    assert compiled.apply(record)[0]["title"] == "Shirt"
    assert "Shirt" in compile_rows(compiled, "KRW").row(1, record)
