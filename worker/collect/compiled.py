"""A shop's mapping and validation compiled, once per task, into one generated Python function.

The technique of fastjsonschema, cattrs' generated converters and dataclasses: the declarative
spec (``worker.collect.mapping``) becomes straight-line source, ``compile()``d once, that reads
each path with direct subscripts, applies the transforms inline, checks the fields one after the
other and builds the staging row (``STAGING_COLUMNS``) as one tuple. The common case (a string,
a Decimal, a known vocabulary value) costs a type check and a few string methods; anything else
falls back to the interpreted helpers of ``worker.collect.validate`` and ``worker.collect.mapping``,
so both paths give the same rows and the same rejects (a differential property test holds them
to it). The interpreted path (``InterpretedRows``) stays the reference, and what the preview uses.

Hostile shop files: the generated source never contains a shop-supplied string except as a
``repr()`` literal (paths, separators, template text); constants, defaults and value maps are
passed in the function's namespace, never as source.
"""

from __future__ import annotations

import itertools
import json
import linecache
import re
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

from worker.collect import mapping as m
from worker.collect import validate as v
from worker.collect.values import (
    attempt,
    parse_decimal,
    parse_integer,
    parse_price,
)
from worker.common.errors import RejectedRecord
from worker.common.product import (
    CURRENCY_DECIMALS,
    DEFAULT_AVAILABILITY,
    DEFAULT_CONDITION,
    MAX_ADDITIONAL_IMAGES,
    MAX_ATTRIBUTE_LENGTH,
    MAX_ID_LENGTH,
    MAX_TEXT_LENGTH,
    PRICE_LIMIT,
    PRODUCT_FIELDS,
    VARIANT_ATTRIBUTES,
)

# One product of a record: (option position from 1, or 0), the staging row or why not (a
# RejectedRecord, or the exception validation raised), and the product id to report with a reject.
Outcome = tuple[int, "tuple[Any, ...] | BaseException", Any]


class RowMaker(Protocol):
    """What the collect loop needs: a record (and its position) → its staging row(s)."""

    variants: bool

    def row(self, pos: int, record: dict[str, Any]) -> tuple[Any, ...]:
        """The staging row of a record (shops without ``variants``); raises RejectedRecord."""
        ...

    def expand(self, pos: int, record: dict[str, Any]) -> Iterator[Outcome]:
        """One outcome per option of a record (shops with ``variants``)."""
        ...

    def product_id(self, record: dict[str, Any]) -> Any:
        """The record's mapped product id, to report with its reject (None when unmappable)."""
        ...


class InterpretedRows:
    """The reference: ``CompiledMapping.apply`` and ``validate.normalise``, field by field."""

    def __init__(self, compiled: m.CompiledMapping, currency: str) -> None:
        self.compiled = compiled
        self.currency = currency
        self.variants = compiled.variants is not None

    def row(self, pos: int, record: dict[str, Any]) -> tuple[Any, ...]:
        fields, extra = self.compiled.apply(record)
        return v.normalise(pos, fields, extra, currency=self.currency)

    def expand(self, pos: int, record: dict[str, Any]) -> Iterator[Outcome]:
        variants = self.compiled.variants
        assert variants is not None
        fields, extra = self.compiled.apply(record)
        for option, variant, variant_extra in variants.expand(fields, extra, record):
            if isinstance(variant, RejectedRecord):
                yield option, variant, fields.get("product_id")
                continue
            try:
                row = v.normalise(pos, variant, variant_extra, currency=self.currency,
                                  option=option)
            except Exception as exc:
                yield option, exc, variant.get("product_id")
                continue
            yield option, row, variant.get("product_id")

    def product_id(self, record: dict[str, Any]) -> Any:
        return mapped_product_id(self.compiled, record)


def mapped_product_id(compiled: m.CompiledMapping, record: dict[str, Any]) -> Any:
    try:
        return compiled.apply(record)[0].get("product_id")
    except Exception:
        return None


# ---- the generator ----------------------------------------------------------------------------


def _step(value: Any, part: str | int) -> Any:
    """One step of a dotted path on anything but the common case (path_getter's walk)."""
    if isinstance(part, int):
        if isinstance(value, list):
            return value[part] if part < len(value) else None
        if isinstance(value, dict):
            return value.get(str(part))
        return None
    if isinstance(value, dict):
        return value.get(part)
    if isinstance(value, list):
        return [x.get(part) for x in value if isinstance(x, dict)]
    return None


def _joined(values: list[Any]) -> str:
    return " ".join([str(x) for x in values if x not in (None, "")])


def _lookup(value: Any, exact: Mapping[str, Any], folded: Mapping[str, Any]) -> Any:
    key = str(value)
    if key in exact:
        return exact[key]
    return folded.get(key.strip().casefold(), value)


def _fast_images(value: Any) -> list[str]:
    """validate._images for a list of clean URLs; anything else goes to it whole."""
    if value.__class__ is not list:
        return v._images(value)
    out = []
    for item in value:
        if item.__class__ is str:
            url = item.strip()
            if url.startswith(("https://", "http://")) and len(url) <= v.MAX_URL_LENGTH and (
                not v._CONTROL.search(url)
            ):
                out.append(url)
                continue
        return v._images(value)
    return out[:MAX_ADDITIONAL_IMAGES]


def _clean(text: str | None) -> str | None:
    return v._CONTROL.sub("", text) or None if text else text


_BASE_NAMESPACE: dict[str, Any] = {
    "_won": re.compile(r"([1-9][0-9]{0,2}(?:,[0-9]{3})+|[0-9]+)원?").fullmatch,
    "_clean": _clean,
    "_fast_images": _fast_images, "_fromiso": datetime.fromisoformat, "_UTC": UTC,
    "_step": _step, "_joined": _joined, "_lookup": _lookup, "_Decimal": Decimal,
    "_attempt": attempt, "_parse_price": parse_price, "_parse_decimal": parse_decimal,
    "_parse_integer": parse_integer, "_json_loads": json.loads, "_RejectedRecord": RejectedRecord,
    "_text": v._text, "_url": v._url, "_price": v._price, "_choice": v._choice, "_date": v._date,
    "_images": v._images, "_shipping": v._shipping, "_sale_window": v.sale_window,
    "_extra_json": v.extra_json, "_missing": v.missing_required,
    "_unknown_currency": v.unknown_currency, "_extra_too_large": v.extra_too_large,
    "_csearch": v._CONTROL.search, "_DECIMALS": CURRENCY_DECIMALS, "_LIMIT": PRICE_LIMIT,
    "_AVAIL": v.AVAILABILITY_ALIASES, "_COND": v.CONDITION_ALIASES,
    "_MAX_EXTRA": v.MAX_EXTRA_CHARS,
    "_options_not_json": m.options_not_json, "_options_not_list": m.options_not_list,
    "_option_not_object": m.option_not_object, "_option_without_parent": m.option_without_parent,
    "_option_without_id": m.option_without_id, "_stock_availability": m.stock_availability,
    "_plus_price": m.plus_price,
}
_TEXT_LIMITS: dict[str, int] = {
    "product_id": MAX_ID_LENGTH, "title": MAX_TEXT_LENGTH, "description": MAX_TEXT_LENGTH,
    "brand": MAX_TEXT_LENGTH, "gtin": MAX_ID_LENGTH, "mpn": MAX_ID_LENGTH,
    "item_group_id": MAX_ID_LENGTH, "product_type": MAX_TEXT_LENGTH,
    "google_product_category": MAX_TEXT_LENGTH, "naver_category": MAX_TEXT_LENGTH,
    **dict.fromkeys(VARIANT_ATTRIBUTES, MAX_ATTRIBUTE_LENGTH),
}
_DEFERRED = ("description", "mobile_link", "image_link", "brand", "gtin", "mpn",
             "item_group_id", "product_type", "google_product_category", "naver_category",
             *VARIANT_ATTRIBUTES)
_counter = itertools.count()


class _Source:
    """Generated source lines and the namespace its names refer to."""

    def __init__(self, namespace: dict[str, Any]) -> None:
        self.lines: list[str] = []
        self.namespace = namespace
        self.names = itertools.count()

    def emit(self, depth: int, line: str) -> None:
        self.lines.append("    " * depth + line)

    def temp(self) -> str:
        return f"t{next(self.names)}"

    def constant(self, value: Any) -> str:
        """A namespace name for a shop-supplied value (never written into the source)."""
        name = f"_k{next(self.names)}"
        self.namespace[name] = value
        return name


def _parts(path: str) -> tuple[str | int, ...]:
    return tuple(int(p) if p.isdigit() and p.isascii() else p for p in path.split("."))


def _emit_path(src: _Source, depth: int, target: str, record: str, path: str) -> None:
    """``target`` = the value of ``path`` in ``record`` (path_getter's semantics)."""
    if "." not in path:
        src.emit(depth, f"{target} = {record}.get({path!r})")
        return
    src.emit(depth, f"if {path!r} in {record}:")
    src.emit(depth + 1, f"{target} = {record}[{path!r}]")
    src.emit(depth, "else:")
    src.emit(depth + 1, f"{target} = {record}")
    for part in _parts(path):
        if isinstance(part, int):
            src.emit(depth + 1, f"if {target}.__class__ is list:")
            src.emit(depth + 2, f"{target} = {target}[{part!r}] if {part!r} < len({target}) "
                                "else None")
        else:
            src.emit(depth + 1, f"if {target}.__class__ is dict:")
            src.emit(depth + 2, f"{target} = {target}.get({part!r})")
        src.emit(depth + 1, f"elif {target} is not None:")
        src.emit(depth + 2, f"{target} = _step({target}, {part!r})")


def _emit_template(src: _Source, depth: int, target: str, record: str, template: str) -> None:
    """``target`` = the template rendered (mapping._template_getter's semantics)."""
    pieces: list[str] = []  # source expressions
    empties: list[str] = []
    last = 0
    for match in m._PLACEHOLDER.finditer(template):
        literal = template[last : match.start()]
        if literal:
            pieces.append(repr(literal))
        token = match.group(0)
        if token in ("{{", "}}"):
            pieces.append(repr(token[0]))
        else:
            value = src.temp()
            _emit_path(src, depth, value, record, match.group(1).strip())
            src.emit(depth, f"if isinstance({value}, list):")
            src.emit(depth + 1, f"{value} = _joined({value})")
            empty = src.temp()
            src.emit(depth, f"{empty} = {value} is None or {value} == ''")
            pieces.append(f"('' if {empty} else str({value}))")
            empties.append(empty)
        last = match.end()
    if template[last:]:
        pieces.append(repr(template[last:]))
    if not empties:
        src.emit(depth, f"{target} = None")
        return
    src.emit(depth, f"if {' and '.join(empties)}:")
    src.emit(depth + 1, f"{target} = None")
    src.emit(depth, "else:")
    # " ".join(s.split()) is _SPACES.sub(" ", s).strip(): both split on str.isspace().
    src.emit(depth + 1, f"{target} = ' '.join(({' + '.join(pieces)}).split()) or None")


def _emit_spec(src: _Source, depth: int, target: str, record: str, spec: Mapping[str, Any],
               zero_decimal: bool) -> None:
    """``target`` = the spec's value in ``record`` (CompiledMapping._compile's semantics)."""
    if "const" in spec:
        src.emit(depth, f"{target} = {src.constant(spec['const'])}")
    elif "template" in spec:
        _emit_template(src, depth, target, record, spec["template"])
    else:
        paths = spec["path"] if isinstance(spec["path"], list) else [spec["path"]]
        if len(paths) == 1:
            _emit_path(src, depth, target, record, paths[0])
        else:
            level = depth
            for n, path in enumerate(paths):
                _emit_path(src, level, target, record, path)
                src.emit(level, f"if {target} is None or {target} == '' or {target} == []:")
                level += 1
                if n == len(paths) - 1:
                    src.emit(level, f"{target} = None")
    steps: list[list[str]] = []
    t = target
    if "split" in spec:
        steps.append([f"if isinstance({t}, str):",
                      f"    {t} = [q for p in {t}.split({spec['split']!r}) if (q := p.strip())]"])
    if spec.get("first"):
        steps.append([f"if isinstance({t}, list):", f"    {t} = {t}[0] if {t} else None"])
    if "slice" in spec:
        start = int(spec["slice"][0])
        stop = repr(int(spec["slice"][1])) if len(spec["slice"]) > 1 else ""
        steps.append([f"if isinstance({t}, list):", f"    {t} = {t}[{start!r}:{stop}]",
                      f"elif {t} not in (None, ''):", f"    {t} = [{t}][{start!r}:{stop}]"])
    if "join" in spec:
        steps.append([f"if isinstance({t}, list):",
                      f"    {t} = {spec['join']!r}.join([str(p) for p in {t} "
                      "if p not in (None, '')])"])
    if "map" in spec:
        exact = src.constant({str(k): val for k, val in spec["map"].items()})
        folded = src.constant({str(k).strip().casefold(): val for k, val in spec["map"].items()})
        steps.append([f"if isinstance({t}, list):",
                      f"    {t} = [_lookup(p, {exact}, {folded}) for p in {t}]",
                      "else:",
                      f"    k = str({t})",
                      f"    {t} = {exact}[k] if k in {exact} else "
                      f"{folded}.get(k.strip().casefold(), {t})"])
    if "parse" in spec:
        steps.append(_parse_step(t, spec["parse"], spec.get("decimal_separator"), zero_decimal))
    level = depth
    for step in steps:
        src.emit(level, f"if {t} is not None and {t} != '':")
        level += 1
        for line in step:
            src.emit(level, line)
    if "default" in spec:
        src.emit(depth, f"if {t} is None or {t} == '' or {t} == []:")
        src.emit(depth + 1, f"{t} = {src.constant(spec['default'])}")


def _parse_step(t: str, kind: str, separator: str | None, zero_decimal: bool) -> list[str]:
    if kind == "text":
        return [f"if not isinstance({t}, str):", f"    {t} = str({t})"]
    if kind == "integer":
        call = f"_attempt(_parse_integer, {t})"
    elif kind == "decimal":
        call = f"_attempt(_parse_decimal, {t}, decimal_separator={separator!r})"
    else:
        call = (f"_attempt(_parse_price, {t}, decimal_separator={separator!r}, "
                f"zero_decimal={zero_decimal!r})")
    # parse_price's own first cases: an int, a finite Decimal, ASCII digits alone.
    fast = [f"if {t}.__class__ is int:", f"    {t} = _Decimal({t})",
            f"elif {t}.__class__ is _Decimal and {t}.is_finite():", "    pass",
            f"elif {t}.__class__ is str and {t}.isdigit() and {t}.isascii():",
            f"    {t} = _Decimal({t})", "else:", f"    {t} = {call}"]
    if kind == "integer":
        # parse_integer gives an int: an int stays one, the rest goes the whole way.
        return [f"if {t}.__class__ is not int:", f"    {t} = {call}"]
    if kind == "price" and separator is None:
        # What Korean shops write ("12,900원", "15000원"): parse_price's result without its regex
        # and checks (commas in groups of three are thousands whatever the currency).
        fast[-2:-2] = [f"elif {t}.__class__ is str and (won := _won({t})) is not None:",
                       f"    {t} = _Decimal(won.group(1).replace(',', ''))"]
    return fast


def _emit_mapping(src: _Source, depth: int, compiled: m.CompiledMapping) -> None:
    """The locals ``f_<field>`` (None when missing) and ``extra``, as CompiledMapping.apply."""
    mapping = compiled.mapping
    zero = compiled.zero_decimal
    for field in PRODUCT_FIELDS:
        target = f"f_{field}"
        if field in mapping:
            spec = m._normalise_spec(mapping[field]) or {}
            _emit_spec(src, depth, target, "record", spec, zero)
        else:
            names = (field, *m.DEFAULT_ALIASES.get(field, ()))
            src.emit(depth, f"{target} = record.get({field!r})")
            for name in names[1:]:
                src.emit(depth, f"if {target} is None or {target} == '':")
                src.emit(depth + 1, f"{target} = record.get({name!r})")
            if len(names) > 1:
                src.emit(depth, f"if {target} == '':")
                src.emit(depth + 1, f"{target} = None")
    consumed = src.constant(compiled.consumed)
    src.emit(depth, f"extra = {{k: x for k, x in record.items() if k not in {consumed}}}")


def _emit_text(src: _Source, depth: int, field: str, limit: int, deferred: bool = False) -> None:
    """``c_<field>`` as validate._text. ``deferred``: control characters are removed later, for
    all such fields at once (_emit_cleaning); cleaning can then only shorten a value or empty it,
    which rejects nothing for a field that is not required."""
    f, c = f"f_{field}", f"c_{field}"
    src.emit(depth, f"if {f}.__class__ is str:")
    src.emit(depth + 1, f"{c} = {f}.strip()")
    check = "" if deferred else f" or _csearch({c})"
    src.emit(depth + 1, f"if len({c}) > {limit!r}{check}:")
    src.emit(depth + 2, f"{c} = _text({field!r}, {f}, {limit!r})")
    src.emit(depth + 1, f"elif not {c}:")
    src.emit(depth + 2, f"{c} = None")
    src.emit(depth, f"elif {f} is None:")
    src.emit(depth + 1, f"{c} = None")
    src.emit(depth, "else:")
    src.emit(depth + 1, f"{c} = _text({field!r}, {f}, {limit!r})")


def _emit_url(src: _Source, depth: int, field: str, deferred: bool = False) -> None:
    # A control character inside a URL leaves its scheme as it is: the check may come first.
    _emit_text(src, depth, field, v.MAX_URL_LENGTH, deferred)
    c = f"c_{field}"
    src.emit(depth, f"if {c} is not None and not {c}.startswith(('https://', 'http://')):")
    src.emit(depth + 1, f"{c} = _url({field!r}, f_{field})")


def _emit_price(src: _Source, depth: int, field: str) -> None:
    f, c = f"f_{field}", f"c_{field}"
    src.emit(depth, f"if {f}.__class__ is _Decimal and {f} >= 0 and {f} < _LIMIT:")
    src.emit(depth + 1, f"{c} = {f}")
    src.emit(depth, "else:")
    src.emit(depth + 1, f"{c} = _price({field!r}, {f}, zero)")


def _emit_choice(src: _Source, depth: int, field: str, aliases: str, default: str) -> None:
    f, c = f"f_{field}", f"c_{field}"
    src.emit(depth, f"if {f}.__class__ is str and {f} in {aliases}:")
    src.emit(depth + 1, f"{c} = {aliases}[{f}]")
    src.emit(depth, f"elif {f} is None:")
    src.emit(depth + 1, f"{c} = {default!r}")
    src.emit(depth, "else:")
    src.emit(depth + 1, f"{c} = _choice({field!r}, {f}, {aliases}, {default!r})")


def _emit_date(src: _Source, depth: int, field: str) -> None:
    f, c = f"f_{field}", f"c_{field}"
    src.emit(depth, f"if {f} is None:")
    src.emit(depth + 1, f"{c} = None")
    src.emit(depth, f"elif {f}.__class__ is str:")
    src.emit(depth + 1, "try:")
    src.emit(depth + 2, f"{c} = _fromiso({f}.strip())")
    src.emit(depth + 1, "except ValueError:")
    src.emit(depth + 2, f"{c} = _date({field!r}, {f})  # its reject, or None when blank")
    src.emit(depth + 1, "else:")
    src.emit(depth + 2, f"if {c}.tzinfo is None:")
    src.emit(depth + 3, f"{c} = {c}.replace(tzinfo=_UTC)")
    src.emit(depth, "else:")
    src.emit(depth + 1, f"{c} = _date({field!r}, {f})")


def _emit_validation(src: _Source, depth: int, currency: str) -> None:
    """The staging row from the locals, as ``validate.normalise`` (same checks, same order)."""
    e = src.emit
    _emit_text(src, depth, "product_id", MAX_ID_LENGTH)
    _emit_text(src, depth, "title", MAX_TEXT_LENGTH)
    _emit_url(src, depth, "link")
    e(depth, "if c_product_id is None or c_title is None or c_link is None or f_price is None "
             "or f_price == '':")
    e(depth + 1, "raise _missing(c_product_id, c_title, c_link, f_price)")
    e(depth, "code = f_currency")
    e(depth, "if code.__class__ is str and code in _DECIMALS:")
    e(depth + 1, "pass")
    e(depth, "elif code is None or code == '':")
    e(depth + 1, f"code = {src.constant(currency)}")
    e(depth, "elif not isinstance(code, str) or code.strip().upper() not in _DECIMALS:")
    e(depth + 1, "raise _unknown_currency(code)")
    e(depth, "else:")
    e(depth + 1, "code = code.strip().upper()")
    e(depth, "zero = _DECIMALS.get(code, 2) == 0")
    _emit_price(src, depth, "price")
    e(depth, "extra_text = _extra_json(extra) if extra else '{}'")
    e(depth, "if len(extra_text) > _MAX_EXTRA:")
    e(depth + 1, "raise _extra_too_large(extra_text)")
    e(depth, "if f_sale_price is None:")
    e(depth + 1, "c_sale_price = None")
    e(depth, "else:")
    _emit_price(src, depth + 1, "sale_price")
    e(depth, "f = f_shipping_cost")
    e(depth, "if f is None or f == '':")
    e(depth + 1, "c_shipping_cost = None")
    e(depth, "elif f.__class__ is _Decimal and f.is_finite() and abs(f) < _LIMIT:")
    e(depth + 1, "c_shipping_cost = f")
    e(depth, "else:")
    e(depth + 1, "c_shipping_cost = _shipping(f, zero)")
    _emit_date(src, depth, "availability_date")
    e(depth, "c_images = [] if f_additional_image_links is None else "
             "_fast_images(f_additional_image_links)")
    _emit_text(src, depth, "description", MAX_TEXT_LENGTH, deferred=True)
    _emit_url(src, depth, "mobile_link", deferred=True)
    _emit_url(src, depth, "image_link", deferred=True)
    _emit_choice(src, depth, "availability", "_AVAIL", DEFAULT_AVAILABILITY)
    _emit_choice(src, depth, "condition", "_COND", DEFAULT_CONDITION)
    for field in ("brand", "gtin", "mpn", "item_group_id", "product_type",
                  "google_product_category", "naver_category", *VARIANT_ATTRIBUTES):
        _emit_text(src, depth, field, _TEXT_LIMITS[field], deferred=True)
    _emit_date(src, depth, "sale_price_start")
    _emit_date(src, depth, "sale_price_end")
    e(depth, "if c_sale_price_start is not None and c_sale_price_end is not None and "
             "c_sale_price_end <= c_sale_price_start:")
    e(depth + 1, "_sale_window(f_sale_price_start, f_sale_price_end)  # raises its reject")
    # One search for control characters over every deferred field instead of one each.
    deferred = ", ".join(f"c_{field}" for field in _DEFERRED)
    e(depth, f"if _csearch(''.join(filter(None, ({deferred},)))):")
    e(depth + 1, f"{deferred} = [_clean(x) for x in ({deferred},)]")
    row = {"product_id": "c_product_id", "additional_image_links": "c_images",
           "currency": "code"}
    columns = ", ".join(row.get(field, f"c_{field}") for field in PRODUCT_FIELDS)
    e(depth, f"return (pos, option, {columns}, extra_text)")


def _emit_variants(src: _Source, depth: int, compiled: m.CompiledMapping) -> None:
    """The options of a record (CompiledVariants.expand and _variant), each validated."""
    spec = compiled.mapping[m.VARIANTS]
    variants = compiled.variants
    assert variants is not None
    zero = compiled.zero_decimal
    e = src.emit
    arguments = ", ".join(f"f_{field}" for field in PRODUCT_FIELDS)
    _emit_path(src, depth, "options", "record", spec["path"])
    e(depth, "if isinstance(options, str) and options.strip():")
    e(depth + 1, "try:")
    e(depth + 2, "options = _json_loads(options)")
    e(depth + 1, "except ValueError as exc:")
    e(depth + 2, "yield 0, _options_not_json(exc, options), f_product_id")
    e(depth + 2, "return")
    e(depth, "if isinstance(options, dict):")
    e(depth + 1, "options = [options]")
    e(depth, "if options is None or options == '' or options == []:")
    e(depth + 1, "try:")
    e(depth + 2, f"row = _validate(pos, 0, {arguments}, extra)")
    e(depth + 1, "except Exception as exc:")
    e(depth + 2, "yield 0, exc, f_product_id")
    e(depth + 2, "return")
    e(depth + 1, "yield 0, row, f_product_id")
    e(depth + 1, "return")
    e(depth, "if not isinstance(options, list):")
    e(depth + 1, "yield 0, _options_not_list(options), f_product_id")
    e(depth + 1, "return")
    e(depth, "parent = f_product_id")
    e(depth, "parent_id = None if parent is None or isinstance(parent, dict | list) else "
             "(str(parent).strip() or None)")
    e(depth, "for index, option in enumerate(options, 1):")
    d = depth + 1
    e(d, "if not isinstance(option, dict):")
    e(d + 1, "yield index, _option_not_object(index, option), f_product_id")
    e(d + 1, "continue")
    e(d, "if parent_id is None:")
    e(d + 1, "yield index, _option_without_parent(), f_product_id")
    e(d + 1, "continue")
    e(d, "try:")
    render = src.constant(variants.render)
    e(d + 1, f"vid = {render}({{'product_id': parent_id, 'option': option, 'index': index}})")
    e(d, "except ValueError as exc:")
    e(d + 1, f"yield index, _option_without_id(index, exc, {src.constant(variants.template)}, "
             "option), f_product_id")
    e(d + 1, "continue")
    option_fields = [(field, m._normalise_spec(raw) or {})
                     for field, raw in spec.get("fields", {}).items()]
    assigned: dict[str, str] = {}
    for field, field_spec in option_fields:
        value = src.temp()
        _emit_spec(src, d, value, "option", field_spec, zero)
        e(d, f"if {value} is not None and {value} != '' and {value} != []:")
        e(d + 1, f"o_{field} = {value}")
        e(d + 1, f"own_{field} = True")
        e(d, "else:")
        e(d + 1, f"own_{field} = False")
        base = "vid" if field == "product_id" else (
            "parent_id" if field == "item_group_id" else f"f_{field}")
        e(d + 1, f"o_{field} = {base}")
        assigned[field] = f"o_{field}"
    for field in ("price", "sale_price", "availability"):
        if field not in assigned:
            e(d, f"o_{field} = f_{field}")
            e(d, f"own_{field} = False")
            assigned[field] = f"o_{field}"
    if "price_delta" in spec:
        delta = src.temp()
        _emit_spec(src, d, delta, "option", m._normalise_spec(spec["price_delta"]) or {}, zero)
        e(d, f"if {delta} is not None and {delta} != '':")
        for field in ("price", "sale_price"):
            e(d + 1, f"if not own_{field} and o_{field} not in (None, ''):")
            e(d + 2, f"o_{field} = _plus_price(o_{field}, {delta}, {zero!r})")
    if "stock" in spec:
        e(d, "if not own_availability:")
        stock = src.temp()
        _emit_spec(src, d + 1, stock, "option", m._normalise_spec(spec["stock"]) or {}, zero)
        e(d + 1, f"if {stock} is not None and {stock} != '':")
        e(d + 2, f"o_availability = _stock_availability({stock})")
    consumed = src.constant(variants.option_consumed)
    e(d, f"rest = {{k: x for k, x in option.items() if k not in {consumed}}}")
    e(d, "option_extra = {**extra, 'option': rest} if rest else extra")
    values = ", ".join(assigned.get(field, {"product_id": "vid", "item_group_id": "parent_id"}
                                    .get(field, f"f_{field}"))
                       for field in PRODUCT_FIELDS)
    e(d, "try:")
    e(d + 1, f"row = _validate(pos, index, {values}, option_extra)")
    e(d, "except Exception as exc:")
    e(d + 1, "yield index, exc, vid")
    e(d + 1, "continue")
    e(d, "yield index, row, vid")


class CompiledRows:
    """A shop's generated ``row`` (or ``expand``) function; ``source`` is its text."""

    def __init__(self, compiled: m.CompiledMapping, currency: str) -> None:
        self.compiled = compiled
        self.variants = compiled.variants is not None
        namespace = dict(_BASE_NAMESPACE)
        src = _Source(namespace)
        parameters = ", ".join(f"f_{field}" for field in PRODUCT_FIELDS)
        if self.variants:
            src.emit(0, f"def _validate(pos, option, {parameters}, extra):")
            _emit_validation(src, 1, currency)
            src.emit(0, "def expand(pos, record):")
            _emit_mapping(src, 1, compiled)
            _emit_variants(src, 1, compiled)
        else:
            src.emit(0, "def row(pos, record):")
            src.emit(1, "option = 0")
            _emit_mapping(src, 1, compiled)
            _emit_validation(src, 1, currency)
        self.source = "\n".join(src.lines) + "\n"
        filename = f"<collect mapping {next(_counter)}>"
        # Tracebacks through the generated code show its lines.
        linecache.cache[filename] = (len(self.source), None, src.lines, filename)
        exec(compile(self.source, filename, "exec"), namespace)  # noqa: S102 - our own source
        # Only the one that fits the shop exists; the other refuses.
        self.row: Callable[[int, dict[str, Any]], tuple[Any, ...]] = namespace.get(
            "row", _no_row)
        self.expand: Callable[[int, dict[str, Any]], Iterator[Outcome]] = namespace.get(
            "expand", _no_expand)

    def product_id(self, record: dict[str, Any]) -> Any:
        return mapped_product_id(self.compiled, record)


def _no_row(pos: int, record: dict[str, Any]) -> tuple[Any, ...]:
    raise TypeError("a shop with variants expands its records")


def _no_expand(pos: int, record: dict[str, Any]) -> Iterator[Outcome]:
    raise TypeError("a shop without variants has one row per record")


def compile_rows(compiled: m.CompiledMapping, currency: str) -> CompiledRows:
    """The shop's mapping and validation as one generated function (see the module docstring)."""
    return CompiledRows(compiled, currency)
