"""The per-shop mapping language: from a shop's own record to the internal product's fields.

A mapping is an object whose keys are internal fields (``worker.common.product.PRODUCT_FIELDS``)
and whose values say where each comes from::

    {
      "product_id": "sku",                                   # a path: a key, "a.b.c", "images.0"
      "title": {"template": "{brand} {name}"},              # placeholders are paths
      "price": {"path": "price.amount", "parse": "price"},  # "12,900원", "1.234,56 €", "15.00"
      "currency": {"const": "KRW"},
      "availability": {"path": "stock", "map": {"Y": "in_stock", "N": "out_of_stock"}},
      "image_link": {"path": "images", "first": true},
      "additional_image_links": {"path": "images", "slice": [1, 11]},
      "product_type": {"path": "categories", "join": " > "},
      "brand": {"path": ["brand", "maker"], "default": "ACME"}   # the first path with a value
    }

A spec is a path string or an object with one source (``path``, ``const`` or ``template``) and
optional transforms, applied in this order: ``split`` (a separator), ``first``, ``slice``,
``join``, ``map`` (a value map; unknown values pass through), ``parse`` (``price``, ``decimal``,
``integer`` or ``text``), then ``default`` when the value is still missing or empty. An internal
field the mapping does not name comes from the shop's field of the same name (``product_id`` also
from ``id``), so an empty mapping suits a catalog already written in internal names. The record's
top-level fields that no path reads are kept, as they are, in ``extra``.

The reserved key ``variants`` expands a record's list of options into one product per option
(``CompiledVariants``; docs/collect.md has the syntax).
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from worker.collect.values import (
    ParseFailure,
    attempt,
    parse_decimal,
    parse_integer,
    parse_price,
)
from worker.common.errors import ConfigError, RejectedRecord
from worker.common.product import CURRENCY_DECIMALS, PRODUCT_FIELDS

SOURCES = ("path", "const", "template")
TRANSFORMS = ("split", "first", "slice", "join", "map", "parse", "decimal_separator", "default")
PARSERS = ("price", "decimal", "integer", "text")
# Where an unmapped internal field also looks, after its own name.
DEFAULT_ALIASES: dict[str, tuple[str, ...]] = {"product_id": ("id",)}

Getter = Callable[[Mapping[str, Any]], Any]
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_SPACES = re.compile(r"\s+")


# ---- paths ----------------------------------------------------------------------------------


def path_getter(path: str) -> Getter:
    """A function reading ``path`` from a record: a key, or dotted keys and list indexes.

    A key that literally contains dots (a CSV column "price.krw") is found before the dotted walk.
    Walking into a list with a key reads that key from every element. (Records are plain
    dicts, from every format: ``dict`` checks are much cheaper than ``Mapping`` ones.)
    """
    if "." not in path:
        return lambda record: record.get(path)
    parts = tuple(int(p) if p.isdigit() and p.isascii() else p for p in path.split("."))

    def get(record: Mapping[str, Any]) -> Any:
        if path in record:
            return record[path]
        value: Any = record
        for part in parts:
            if value is None:
                return None
            if isinstance(part, int):
                if isinstance(value, list):
                    value = value[part] if part < len(value) else None
                elif isinstance(value, dict):
                    value = value.get(str(part))
                else:
                    return None
            elif isinstance(value, dict):
                value = value.get(part)
            elif isinstance(value, list):
                value = [v.get(part) for v in value if isinstance(v, dict)]
            else:
                return None
        return value

    return get


def _root(path: str) -> str:
    return path.split(".", 1)[0]


def template_paths(template: str) -> list[str]:
    """The placeholders of a template, in order; ValueError for a stray brace or empty one."""
    paths = []
    for match in _PLACEHOLDER.finditer(template):
        token = match.group(0)
        if token in ("{{", "}}"):
            continue
        if match.group(1) is None:
            raise ValueError(f"a single {token!r} (write {token * 2} for a literal brace)")
        name = match.group(1).strip()
        if not name:
            raise ValueError("an empty placeholder {}")
        paths.append(name)
    return paths


def _template_getter(template: str) -> Getter:
    pieces: list[str | Getter] = []
    last = 0
    for match in _PLACEHOLDER.finditer(template):
        literal = template[last : match.start()]
        if literal:
            pieces.append(literal)
        token = match.group(0)
        if token in ("{{", "}}"):
            pieces.append(token[0])
        else:
            pieces.append(path_getter(match.group(1).strip()))
        last = match.end()
    if template[last:]:
        pieces.append(template[last:])

    def render(record: Mapping[str, Any]) -> str | None:
        out = []
        found = False
        for piece in pieces:
            if isinstance(piece, str):
                out.append(piece)
                continue
            value = piece(record)
            if isinstance(value, list):
                value = " ".join(str(v) for v in value if v not in (None, ""))
            if value is None or value == "":
                continue
            found = True
            out.append(str(value))
        if not found:
            return None
        return _SPACES.sub(" ", "".join(out)).strip() or None

    return render


# ---- specs ----------------------------------------------------------------------------------


def _normalise_spec(spec: Any) -> dict[str, Any] | None:
    if isinstance(spec, str):
        return {"path": spec}
    if isinstance(spec, Mapping):
        return dict(spec)
    return None


def _spec_problems(field: str, raw: Any, label: str | None = None) -> list[str]:
    label = label or f"mapping.{field}"
    spec = _normalise_spec(raw)
    if spec is None:
        return [f"{label} must be a path (a string) or an object, got {type(raw).__name__}"]
    problems = []
    for key in spec:
        if key not in SOURCES + TRANSFORMS:
            hint = difflib.get_close_matches(key, SOURCES + TRANSFORMS, n=1)
            problems.append(
                f"{label}: {key!r} is not a transform"
                + (f" (did you mean {hint[0]!r}?)" if hint else "")
                + f": expected {', '.join(SOURCES + TRANSFORMS)}"
            )
    sources = [k for k in SOURCES if k in spec]
    if len(sources) != 1:
        problems.append(
            f"{label} needs exactly one source of {', '.join(SOURCES)}; it has "
            + (", ".join(sources) if sources else "none")
        )
    if "path" in spec:
        paths = spec["path"] if isinstance(spec["path"], list) else [spec["path"]]
        if not paths or not all(isinstance(p, str) and p.strip() and ".." not in p for p in paths):
            problems.append(f"{label}.path must be a non-empty path or a list of paths")
    if "template" in spec:
        if not isinstance(spec["template"], str):
            problems.append(f"{label}.template must be a string such as \"{{brand}} {{name}}\"")
        else:
            try:
                template_paths(spec["template"])
            except ValueError as exc:
                problems.append(f"{label}.template {spec['template']!r} has {exc}")
    for key in ("split", "join"):
        if key in spec and (not isinstance(spec[key], str) or (key == "split" and not spec[key])):
            problems.append(f"{label}.{key} must be a separator string")
    if "first" in spec and not isinstance(spec["first"], bool):
        problems.append(f"{label}.first must be true or false")
    if "slice" in spec:
        value = spec["slice"]
        if not (
            isinstance(value, list)
            and len(value) in (1, 2)
            and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        ):
            problems.append(f"{label}.slice must be [start] or [start, stop], e.g. [1, 11]")
    if "map" in spec and (
        not isinstance(spec["map"], Mapping)
        or not all(not isinstance(v, Mapping | list) for v in spec["map"].values())
    ):
        problems.append(f"{label}.map must be an object of source value → internal value")
    if "parse" in spec and spec["parse"] not in PARSERS:
        problems.append(f"{label}.parse {spec['parse']!r} is not known: expected {', '.join(PARSERS)}")
    if "decimal_separator" in spec and spec["decimal_separator"] not in (".", ","):
        problems.append(f"{label}.decimal_separator must be \".\" or \",\"")
    return problems


def mapping_problems(mapping: Any, fmt: str, format_options: Any) -> list[str]:
    """Everything wrong with a shop's mapping and format options; an empty list when valid."""
    from worker.collect.formats import get_format

    problems: list[str] = []
    try:
        module = get_format(fmt)
    except ValueError as exc:
        return [str(exc)]
    if not isinstance(format_options, Mapping):
        problems.append("format_options must be an object")
    else:
        problems.extend(module.option_problems(format_options))
    if not isinstance(mapping, Mapping):
        return [*problems, "mapping must be an object of internal field → spec"]
    for field, spec in mapping.items():
        if field == VARIANTS:
            problems.extend(variants_problems(spec))
            continue
        if field not in PRODUCT_FIELDS:
            hint = difflib.get_close_matches(str(field), PRODUCT_FIELDS, n=1)
            problems.append(
                f"mapping.{field} is not an internal product field"
                + (f" (did you mean {hint[0]!r}?)" if hint else "")
                + f": expected one of {', '.join(PRODUCT_FIELDS)} (or {VARIANTS})"
            )
            continue
        problems.extend(_spec_problems(field, spec))
    if not problems and fmt == "csv" and isinstance(format_options, Mapping):
        names = format_options.get("fieldnames")
        if names:
            problems.extend(column_problems(mapping, list(names)))
    return problems


def _explicit_roots(mapping: Mapping[str, Any]) -> dict[str, list[str]]:
    """internal field → the roots (first path segments) of the paths its spec reads."""
    roots: dict[str, list[str]] = {}
    for field, raw in mapping.items():
        spec = _normalise_spec(raw) or {}
        if "path" in spec:
            paths = spec["path"] if isinstance(spec["path"], list) else [spec["path"]]
        elif "template" in spec:
            paths = template_paths(spec["template"])
        else:
            paths = []
        roots[field] = [_root(p) for p in paths]
    return roots


def column_problems(mapping: Mapping[str, Any], columns: list[str]) -> list[str]:
    """The mapping's paths into a flat record (a CSV row) that name no column."""
    available = set(columns)
    problems = []
    for field, roots in _explicit_roots(mapping).items():
        spec = _normalise_spec(mapping[field]) or {}
        paths = spec["path"] if isinstance(spec.get("path"), list) else [spec.get("path")]
        if "path" in spec and any(p in available for p in paths):
            continue  # a column named with dots
        missing = [r for r in roots if r not in available]
        if missing and (len(missing) == len(roots) or "template" in spec):
            hint = difflib.get_close_matches(missing[0], columns, n=1)
            problems.append(
                f"mapping.{field} reads column {missing[0]!r}, which the header does not have"
                + (f" (did you mean {hint[0]!r}?)" if hint else "")
                + f"; the columns are: {', '.join(columns)[:500]}"
            )
    return problems


# ---- option expansion ------------------------------------------------------------------------

VARIANTS = "variants"
VARIANT_KEYS = ("path", "id", "fields", "price_delta", "stock")


def variants_problems(raw: Any) -> list[str]:
    """Everything wrong with a mapping's ``variants`` (option expansion) declaration."""
    label = f"mapping.{VARIANTS}"
    if not isinstance(raw, Mapping):
        return [f"{label} must be an object such as {{\"path\": \"options\", \"id\": "
                f"\"{{product_id}}-{{option.code}}\", \"fields\": {{\"color\": \"color\"}}}}, "
                f"got {type(raw).__name__}"]
    problems = []
    for key in raw:
        if key not in VARIANT_KEYS:
            hint = difflib.get_close_matches(str(key), VARIANT_KEYS, n=1)
            problems.append(f"{label}: {key!r} is not known"
                            + (f" (did you mean {hint[0]!r}?)" if hint else "")
                            + f": expected {', '.join(VARIANT_KEYS)}")
    path = raw.get("path")
    if not isinstance(path, str) or not path.strip() or ".." in path:
        problems.append(f"{label}.path must be the path of the record's list of options, "
                        "e.g. \"options\"")
    template = raw.get("id")
    if not isinstance(template, str):
        problems.append(f"{label}.id must be a template naming each option's product id, "
                        "e.g. \"{product_id}-{option.code}\"")
    else:
        try:
            names = template_paths(template)
        except ValueError as exc:
            problems.append(f"{label}.id {template!r} has {exc}")
        else:
            for name in names:
                if name not in ("product_id", "index") and not name.startswith("option."):
                    problems.append(
                        f"{label}.id: {{{name}}} is not known: use {{product_id}} (the "
                        "record's id), {option.<path>} (a field of the option) or {index} "
                        "(the option's position, from 1)")
            if not any(n == "index" or n.startswith("option.") for n in names):
                problems.append(
                    f"{label}.id {template!r} gives every option the same id: use a field of "
                    "the option ({option.code}) or its position ({index})")
    fields = raw.get("fields", {})
    if not isinstance(fields, Mapping):
        problems.append(f"{label}.fields must be an object of internal field → spec "
                        "(paths inside the option)")
    else:
        for field, spec in fields.items():
            where = f"{label}.fields.{field}"
            if field == "product_id":
                problems.append(f"{where}: a variant's id comes from {label}.id")
            elif field not in PRODUCT_FIELDS:
                hint = difflib.get_close_matches(str(field), PRODUCT_FIELDS, n=1)
                problems.append(f"{where} is not an internal product field"
                                + (f" (did you mean {hint[0]!r}?)" if hint else ""))
            else:
                problems.extend(_spec_problems(field, spec, where))
    for key in ("price_delta", "stock"):
        if key in raw:
            problems.extend(_spec_problems(key, raw[key], f"{label}.{key}"))
    return problems


def _strict_template(template: str) -> Callable[[Mapping[str, Any]], str]:
    """A template renderer that refuses a placeholder without a value (ValueError: its name)."""
    pieces: list[str | tuple[str, Getter]] = []
    last = 0
    for match in _PLACEHOLDER.finditer(template):
        if template[last : match.start()]:
            pieces.append(template[last : match.start()])
        token = match.group(0)
        if token in ("{{", "}}"):
            pieces.append(token[0])
        else:
            name = match.group(1).strip()
            pieces.append((name, path_getter(name)))
        last = match.end()
    if template[last:]:
        pieces.append(template[last:])

    def render(context: Mapping[str, Any]) -> str:
        out = []
        for piece in pieces:
            if isinstance(piece, str):
                out.append(piece)
                continue
            name, getter = piece
            value = getter(context)
            if value is None or isinstance(value, dict | list) or not str(value).strip():
                raise ValueError(name)
            out.append(str(value).strip())
        return "".join(out)

    return render


Expanded = tuple[int, dict[str, Any] | RejectedRecord, dict[str, Any]]


class CompiledVariants:
    """A mapping's option expansion: one record with a list of options → one product per option.

    Each option's product starts as the record's mapped fields; then its id comes from the
    template, ``item_group_id`` is the record's id, the option's own fields replace the record's,
    its price is its own or the record's plus its difference (the sale price too), and its
    availability its own or from its stock. A record without options is a product by itself.
    """

    def __init__(self, spec: Mapping[str, Any], compile_spec: Callable[[str, Mapping[str, Any]],
                 Getter], zero_decimal: bool) -> None:
        self.options = path_getter(spec["path"])
        self.template = spec["id"]
        self.render = _strict_template(spec["id"])
        self.zero_decimal = zero_decimal
        fields = spec.get("fields", {})
        self.fields = [(field, compile_spec(field, _normalise_spec(raw) or {}))
                       for field, raw in fields.items()]
        self.price_delta = (compile_spec("price_delta", _normalise_spec(spec["price_delta"]) or {})
                            if "price_delta" in spec else None)
        self.stock = (compile_spec("stock", _normalise_spec(spec["stock"]) or {})
                      if "stock" in spec else None)
        roots = [_root(p) for raw in (*fields.values(), spec.get("price_delta"), spec.get("stock"))
                 if raw is not None for p in _spec_paths(raw)]
        roots += [_root(name[len("option."):]) for name in template_paths(spec["id"])
                  if name.startswith("option.")]
        self.option_consumed = frozenset(roots)

    def expand(self, fields: dict[str, Any], extra: dict[str, Any],
               record: Mapping[str, Any]) -> Iterator[Expanded]:
        """(option position from 1, the option's fields or why it cannot be one, its extra);
        position 0 for a record without options, which is its own product."""
        options = self.options(record)
        if isinstance(options, str) and options.strip():
            # A CSV cell (or any text) carries the list as JSON.
            try:
                options = json.loads(options)
            except ValueError as exc:
                yield 0, options_not_json(exc, options), extra
                return
        if isinstance(options, dict):
            options = [options]  # one XML child is not a list
        if options is None or options == "" or options == []:
            yield 0, fields, extra
            return
        if not isinstance(options, list):
            yield 0, options_not_list(options), extra
            return
        parent = fields.get("product_id")
        parent_id = None if parent is None or isinstance(parent, dict | list) else (
            str(parent).strip() or None)
        for index, option in enumerate(options, 1):
            if not isinstance(option, dict):
                yield index, option_not_object(index, option), extra
                continue
            if parent_id is None:
                yield index, option_without_parent(), extra
                continue
            try:
                variant_id = self.render({"product_id": parent_id, "option": option,
                                          "index": index})
            except ValueError as exc:
                yield index, option_without_id(index, exc, self.template, option), extra
                continue
            yield index, self._variant(fields, option, variant_id, parent_id), (
                self._extra(extra, option))

    def _variant(self, base: dict[str, Any], option: dict[str, Any], variant_id: str,
                 parent_id: str) -> dict[str, Any]:
        fields = dict(base)
        fields["product_id"] = variant_id
        fields["item_group_id"] = parent_id
        own = set()
        for field, getter in self.fields:
            value = getter(option)
            if value is not None and value != "" and value != []:
                fields[field] = value
                own.add(field)
        if self.price_delta is not None:
            delta = self.price_delta(option)
            if delta is not None and delta != "":
                for field in ("price", "sale_price"):
                    if field not in own and fields.get(field) not in (None, ""):
                        fields[field] = self._plus(fields[field], delta)
        if self.stock is not None and "availability" not in own:
            stock = self.stock(option)
            if stock is not None and stock != "":
                fields["availability"] = stock_availability(stock)
        return fields

    def _plus(self, price: Any, delta: Any) -> Any:
        return plus_price(price, delta, self.zero_decimal)

    def _extra(self, extra: dict[str, Any], option: dict[str, Any]) -> dict[str, Any]:
        rest = {k: v for k, v in option.items() if k not in self.option_consumed}
        return {**extra, "option": rest} if rest else extra


# What an expansion says and computes, shared with the compiled path (worker.collect.compiled).


def options_not_json(exc: ValueError, options: str) -> RejectedRecord:
    return RejectedRecord(
        f"the options ({VARIANTS}.path) are text that is not a JSON list: {exc}",
        field=VARIANTS, excerpt=options[:200])


def options_not_list(options: Any) -> RejectedRecord:
    return RejectedRecord(
        f"the options ({VARIANTS}.path) are a {type(options).__name__}, expected a list",
        field=VARIANTS, excerpt=repr(options)[:200])


def option_not_object(index: int, option: Any) -> RejectedRecord:
    return RejectedRecord(f"option {index} is a {type(option).__name__}, expected an object",
                          field=VARIANTS, excerpt=repr(option)[:200])


def option_without_parent() -> RejectedRecord:
    return RejectedRecord("missing required field product_id (the options' item_group_id)",
                          field="product_id")


def option_without_id(index: int, exc: ValueError, template: str, option: Any) -> RejectedRecord:
    return RejectedRecord(f"option {index} has no {exc} for its id ({template})",
                          field="product_id", excerpt=repr(option)[:200])


def stock_availability(stock: Any) -> Any:
    """An option's availability from its stock count (a ParseFailure when unreadable)."""
    count = attempt(parse_integer, stock) if not isinstance(stock, int) else stock
    if isinstance(count, ParseFailure):
        return ParseFailure(stock, f"the option's stock: {count.reason}")
    return "in_stock" if count > 0 else "out_of_stock"


def plus_price(price: Any, delta: Any, zero_decimal: bool) -> Any:
    """A price plus an option's price difference (a ParseFailure when either is unreadable)."""
    if isinstance(price, ParseFailure):
        return price
    base = attempt(parse_price, price, zero_decimal=zero_decimal)
    if isinstance(base, ParseFailure):
        return base
    difference = attempt(parse_price, delta, zero_decimal=zero_decimal)
    if isinstance(difference, ParseFailure):
        return ParseFailure(delta, f"the option's price difference: {difference.reason}")
    return base + difference


def _spec_paths(raw: Any) -> list[str]:
    spec = _normalise_spec(raw) or {}
    if "path" in spec:
        return spec["path"] if isinstance(spec["path"], list) else [spec["path"]]
    if "template" in spec:
        return template_paths(spec["template"])
    return []


class CompiledMapping:
    """A validated mapping, compiled once into getters: ``apply(record)`` → (fields, extra)."""

    def __init__(self, mapping: Mapping[str, Any], *, currency: str = "") -> None:
        self.mapping = dict(mapping)
        self.zero_decimal = CURRENCY_DECIMALS.get(currency.upper(), 2) == 0
        # Plain keys are read inline (no call per field); everything else through a getter.
        self.keys: list[tuple[str, str]] = []
        self.getters: list[tuple[str, Getter]] = []
        consumed: set[str] = set()
        for field in PRODUCT_FIELDS:
            if field in mapping:
                spec = _normalise_spec(mapping[field]) or {}
                if set(spec) == {"path"} and isinstance(spec["path"], str) and (
                    "." not in spec["path"]
                ):
                    self.keys.append((field, spec["path"]))
                else:
                    self.getters.append((field, self._compile(field, spec)))
            else:
                names = (field, *DEFAULT_ALIASES.get(field, ()))
                if len(names) == 1:
                    self.keys.append((field, field))
                else:
                    self.getters.append((field, _first_present(names)))
                consumed.update(names)
        for roots in _explicit_roots(mapping).values():
            consumed.update(roots)
        self.consumed = frozenset(consumed)
        self.variants = (CompiledVariants(mapping[VARIANTS], self._compile, self.zero_decimal)
                         if VARIANTS in mapping else None)

    def _compile(self, field: str, spec: Mapping[str, Any]) -> Getter:
        getter: Getter
        if "const" in spec:
            constant = spec["const"]
            getter = lambda record: constant  # noqa: E731
        elif "template" in spec:
            getter = _template_getter(spec["template"])
        else:
            paths = spec["path"] if isinstance(spec["path"], list) else [spec["path"]]
            getter = path_getter(paths[0]) if len(paths) == 1 else _coalesce(paths)
        steps: list[Callable[[Any], Any]] = []
        if "split" in spec:
            sep = spec["split"]
            steps.append(lambda v: [p.strip() for p in v.split(sep) if p.strip()]
                         if isinstance(v, str) else v)
        if spec.get("first"):
            steps.append(lambda v: (v[0] if v else None) if isinstance(v, list) else v)
        if "slice" in spec:
            bounds = slice(spec["slice"][0], spec["slice"][1] if len(spec["slice"]) > 1 else None)
            steps.append(lambda v: v[bounds] if isinstance(v, list) else
                         ([v][bounds] if v not in (None, "") else v))
        if "join" in spec:
            sep = spec["join"]
            steps.append(lambda v: sep.join(str(p) for p in v if p not in (None, ""))
                         if isinstance(v, list) else v)
        if "map" in spec:
            exact = {str(k): v for k, v in spec["map"].items()}
            folded = {str(k).strip().casefold(): v for k, v in spec["map"].items()}

            def lookup(value: Any) -> Any:
                key = str(value)
                if key in exact:
                    return exact[key]
                return folded.get(key.strip().casefold(), value)

            steps.append(lambda v: [lookup(p) for p in v] if isinstance(v, list) else
                         (lookup(v) if v is not None else v))
        if "parse" in spec:
            steps.append(self._parser(spec["parse"], spec.get("decimal_separator")))
        if not steps and "default" not in spec:
            return getter
        default = spec.get("default")
        has_default = "default" in spec

        def apply(record: Mapping[str, Any]) -> Any:
            value = getter(record)
            for step in steps:
                if value is None or value == "":
                    break
                value = step(value)
            if has_default and (value is None or value == "" or value == []):
                return default
            return value

        return apply

    def _parser(self, kind: str, separator: str | None) -> Callable[[Any], Any]:
        zero = self.zero_decimal
        if kind == "price":
            return lambda v: attempt(parse_price, v, decimal_separator=separator,
                                     zero_decimal=zero)
        if kind == "decimal":
            return lambda v: attempt(parse_decimal, v, decimal_separator=separator)
        if kind == "integer":
            return lambda v: attempt(parse_integer, v)
        return lambda v: v if isinstance(v, str) else str(v)

    def apply(self, record: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """The internal fields found in ``record`` (missing ones absent), and its unmapped rest."""
        fields: dict[str, Any] = {}
        get = record.get
        for field, key in self.keys:
            value = get(key)
            if value is not None:
                fields[field] = value
        for field, getter in self.getters:
            value = getter(record)
            if value is not None:
                fields[field] = value
        consumed = self.consumed
        extra = {k: v for k, v in record.items() if k not in consumed}
        return fields, extra


def _first_present(names: tuple[str, ...]) -> Getter:
    if len(names) == 1:
        name = names[0]
        return lambda record: record.get(name)

    def get(record: Mapping[str, Any]) -> Any:
        for name in names:
            value = record.get(name)
            if value is not None and value != "":
                return value
        return None

    return get


def _coalesce(paths: list[str]) -> Getter:
    getters = [path_getter(p) for p in paths]

    def get(record: Mapping[str, Any]) -> Any:
        for getter in getters:
            value = getter(record)
            if value is not None and value != "" and value != []:
                return value
        return None

    return get


def compile_mapping(
    mapping: Mapping[str, Any], fmt: str, format_options: Mapping[str, Any], *, currency: str
) -> CompiledMapping:
    """Validate and compile; ``ConfigError`` (exit 65) lists every problem."""
    problems = mapping_problems(mapping, fmt, format_options)
    if problems:
        raise ConfigError("invalid mapping or format options:\n" + "\n".join(
            f"  - {p}" for p in problems))
    return CompiledMapping(mapping, currency=currency)
