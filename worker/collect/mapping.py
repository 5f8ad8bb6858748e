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
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from worker.common.errors import ConfigError
from worker.common.product import CURRENCY_DECIMALS, PRODUCT_FIELDS

SOURCES = ("path", "const", "template")
TRANSFORMS = ("split", "first", "slice", "join", "map", "parse", "decimal_separator", "default")
PARSERS = ("price", "decimal", "integer", "text")
# Where an unmapped internal field also looks, after its own name.
DEFAULT_ALIASES: dict[str, tuple[str, ...]] = {"product_id": ("id",)}

Getter = Callable[[Mapping[str, Any]], Any]
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_SPACES = re.compile(r"\s+")


# ---- prices ---------------------------------------------------------------------------------

# Words, spaces and currency signs may surround the number ("KRW 3,700", "12,900원", "$15");
# the number itself is digits with group and decimal separators.
_PRICE = re.compile(r"^(\D*?)(\d(?:[\d.,'\s]*\d)?)(\D*)$")
_GROUP_SPACES = re.compile(r"['\s]")
_PLAIN = re.compile(r"^\d+(\.\d+)?$")


def _around_ok(text: str) -> bool:
    return all(c.isalpha() or c.isspace() or c == "." or unicodedata.category(c) == "Sc"
               for c in text)


def parse_price(value: Any, *, decimal_separator: str | None = None,
                zero_decimal: bool = False) -> Decimal:
    """A price as a Decimal: ``12,900원`` → 12900, ``1.234,56 €`` → 1234.56, ``15.00`` → 15.00.

    Currency symbols, codes and words around the number are ignored; spaces and apostrophes
    inside it group digits. With one kind of separator, a comma followed by exactly three digits
    groups thousands; so does a dot in a zero-decimal currency (``zero_decimal``: KRW, JPY …).
    ``decimal_separator`` settles the rest. Raises ``ValueError`` with the reason otherwise.
    """
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a price")
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} is not a price")
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        # A float can only come from a caller outside the formats (which read Decimals); its
        # shortest repr is the number the source wrote.
        return parse_price(repr(value))
    if not isinstance(value, str):
        raise ValueError(f"a {type(value).__name__} is not a price")
    match = _PRICE.match(value.strip())
    if not match:
        raise ValueError(f"{value!r} is not one number with an optional currency")
    before, number, after = match.groups()
    negative = before.rstrip().endswith("-")
    if negative:
        before = before.rstrip()[:-1]
    if not _around_ok(before) or not _around_ok(after):
        raise ValueError(f"{value!r} has more than a currency around the number")
    digits = _GROUP_SPACES.sub("", number)
    if decimal_separator is not None:
        thousands = "." if decimal_separator == "," else ","
        digits = digits.replace(thousands, "").replace(decimal_separator, ".")
    else:
        comma, dot = digits.rfind(","), digits.rfind(".")
        if comma >= 0 and dot >= 0:
            decimal_mark = "," if comma > dot else "."
            other = "." if decimal_mark == "," else ","
            digits = digits.replace(other, "").replace(decimal_mark, ".")
        elif comma >= 0:
            groups = digits.split(",")
            if len(groups) == 2 and len(groups[1]) != 3:
                digits = digits.replace(",", ".")
            else:
                digits = digits.replace(",", "")
        elif dot >= 0:
            groups = digits.split(".")
            if len(groups) > 2 or (zero_decimal and len(groups[1]) == 3):
                digits = digits.replace(".", "")
    if not _PLAIN.match(digits):
        raise ValueError(f"{value!r} is not a price this parser can read")
    amount = Decimal(digits)
    return -amount if negative else amount


# ---- paths ----------------------------------------------------------------------------------


def path_getter(path: str) -> Getter:
    """A function reading ``path`` from a record: a key, or dotted keys and list indexes.

    A key that literally contains dots (a CSV column "price.krw") is found before the dotted walk.
    Walking into a list with a key reads that key from every element. (Records are plain
    dicts, from every format: ``dict`` checks are much cheaper than ``Mapping`` ones.)
    """
    if "." not in path:
        return lambda record: record.get(path)
    parts = tuple(int(p) if p.isdigit() else p for p in path.split("."))

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


def _spec_problems(field: str, raw: Any) -> list[str]:
    label = f"mapping.{field}"
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
        if field not in PRODUCT_FIELDS:
            hint = difflib.get_close_matches(str(field), PRODUCT_FIELDS, n=1)
            problems.append(
                f"mapping.{field} is not an internal product field"
                + (f" (did you mean {hint[0]!r}?)" if hint else "")
                + f": expected one of {', '.join(PRODUCT_FIELDS)}"
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
            return lambda v: _parsed(parse_price, v, separator, zero)
        if kind == "decimal":
            return lambda v: _parsed(parse_price, v, separator or ".", False)
        if kind == "integer":
            return lambda v: _parsed(_integer, v, None, False)
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


class ParseFailure:
    """A value a ``parse`` transform could not read; validation rejects the record with it."""

    __slots__ = ("reason", "value")

    def __init__(self, value: Any, reason: str) -> None:
        self.value = value
        self.reason = reason


def _parsed(fn: Callable[..., Any], value: Any, separator: str | None, zero: bool) -> Any:
    try:
        if fn is parse_price:
            return parse_price(value, decimal_separator=separator, zero_decimal=zero)
        return fn(value)
    except ValueError as exc:
        return ParseFailure(value, str(exc))


def _integer(value: Any) -> int:
    amount = parse_price(value, decimal_separator=".")
    if amount != amount.to_integral_value():
        raise ValueError(f"{value!r} is not a whole number")
    return int(amount)


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
