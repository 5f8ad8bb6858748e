"""Mapping rules where the mutation run (docs/mutation.md) found no test looking."""

from __future__ import annotations

from typing import Any

from worker.collect.mapping import CompiledMapping

RECORD = {"sku": "T1", "name": "Tee", "url": "https://shop.example/T1", "price": "12900",
          "options": [{"code": "BK"}, {"code": "WH"}]}


def variant_ids(template: str) -> list[Any]:
    mapping = {"product_id": "sku", "title": "name", "link": "url", "price": "price",
               "variants": {"path": "options", "id": template}}
    compiled = CompiledMapping(mapping, currency="KRW")
    assert compiled.variants is not None
    fields, extra = compiled.apply(RECORD)
    return [v[1]["product_id"] for v in compiled.variants.expand(fields, extra, RECORD)]


def test_a_variant_id_template_keeps_the_text_around_its_placeholders() -> None:
    # The id is the template with each placeholder replaced: the text after the last one too.
    assert variant_ids("{product_id}-{option.code}-v2") == ["T1-BK-v2", "T1-WH-v2"]
    assert variant_ids("id:{product_id}/{option.code}") == ["id:T1/BK", "id:T1/WH"]
    assert variant_ids("{{{option.code}}}") == ["{BK}", "{WH}"]


def test_a_value_map_takes_the_exact_spelling_first_then_case_and_spaces_folded() -> None:
    mapping = {"product_id": "sku", "title": "name", "link": "url", "price": "price",
               "size": {"path": "size", "map": {"M": "medium", "m": "mini", "L": "large"}}}
    compiled = CompiledMapping(mapping, currency="KRW")

    def size(given: Any) -> Any:
        return compiled.apply({**RECORD, "size": given})[0]["size"]

    assert (size("M"), size("m"), size("L")) == ("medium", "mini", "large")
    assert size(" l ") == "large"  # no exact key: folded
    assert size("XL") == "XL"  # not in the map: kept as written
    assert size(["M", "L"]) == ["medium", "large"]


def test_a_field_template_keeps_the_text_after_its_last_placeholder() -> None:
    mapping = {"product_id": "sku", "title": {"template": "{name} ({color}) - sale!"},
               "link": "url", "price": "price"}
    fields, _ = CompiledMapping(mapping, currency="KRW").apply({**RECORD, "color": "black"})
    assert fields["title"] == "Tee (black) - sale!"
