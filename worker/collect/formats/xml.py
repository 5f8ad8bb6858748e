"""XML catalogs, streamed with expat: each item element becomes one record; nothing else is kept.

Options: ``item_element`` (default ``product``): a local name (``item``), a prefixed name as the
document writes it (``g:item``) or ``{namespace-uri}local``. A record is the item's children the
way xmltodict shapes them: a leaf is its text; an element with attributes or children is a dict
(``@attr`` for attributes, ``#text`` for its text); a repeated child is a list. Names keep the
document's prefix (``g:price``). Entity declarations are refused outright, so neither a
billion-laughs file nor an external entity can expand or reach anything.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping
from typing import Any
from xml.parsers import expat

from worker.collect.formats import HeaderHook, Record, excerpt, unknown_options
from worker.common.errors import FatalError

POSITION = "item"
OPTIONS = ("item_element",)
CHUNK = 256 * 1024


class _EntityRefused(Exception):
    pass


def option_problems(options: Mapping[str, Any]) -> list[str]:
    problems = unknown_options(options, OPTIONS, "xml")
    item = options.get("item_element", "product")
    if not isinstance(item, str) or not item.strip() or " " in item:
        problems.append(
            f"format_options.item_element={item!r} must be an element name such as product, "
            "g:item or {http://example.com/ns}item"
        )
    return problems


def _name(raw: str) -> str:
    """expat's 'uri local prefix' (namespace_prefixes) → the document's own 'prefix:local'."""
    if " " not in raw:
        return raw
    parts = raw.split(" ")
    return f"{parts[2]}:{parts[1]}" if len(parts) == 3 else parts[1]


def _matcher(item: str) -> Any:
    if item.startswith("{") and "}" in item:
        uri, local = item[1:].split("}", 1)
        return lambda raw: raw == f"{uri} {local}" or raw.startswith(f"{uri} {local} ")
    if ":" in item:
        return lambda raw: _name(raw) == item
    return lambda raw: raw == item or (" " in raw and raw.split(" ")[1] == item)


def records(
    stream: io.BufferedReader,
    options: Mapping[str, Any],
    where: str,
    on_header: HeaderHook | None = None,
) -> Iterator[Record]:
    is_item = _matcher(str(options.get("item_element", "product")))
    parser = expat.ParserCreate(namespace_separator=" ")
    parser.namespace_prefixes = True
    parser.buffer_text = True
    parser.ordered_attributes = False
    ready: list[tuple[int, dict[str, Any]]] = []
    # Frames of the item being read: [name, attributes, children, text parts].
    stack: list[list[Any]] = []
    count = 0

    def refuse_entity(name: str, *args: Any) -> None:
        raise _EntityRefused(name)

    def start(raw: str, attrs: dict[str, str]) -> None:
        nonlocal count
        if not stack:
            if not is_item(raw):
                return
            count += 1
            stack.append([None, attrs, {}, [], count])
            return
        stack.append([_name(raw), attrs, {}, []])

    def end(raw: str) -> None:
        if not stack:
            return
        frame = stack.pop()
        name, attrs, children, texts = frame[0], frame[1], frame[2], frame[3]
        if not stack:
            record = children
            for key, attr_value in attrs.items():
                record["@" + _name(key)] = attr_value
            text = "".join(texts).strip()
            if text and not children:
                record["#text"] = text
            ready.append((frame[4], record))
            return
        text = "".join(texts).strip()
        value: Any
        if not attrs and not children:
            value = text
        else:
            value = children
            for key, attr in attrs.items():
                value["@" + _name(key)] = attr
            if text:
                value["#text"] = text
        siblings = stack[-1][2]
        if name in siblings:
            existing = siblings[name]
            if isinstance(existing, list):
                existing.append(value)
            else:
                siblings[name] = [existing, value]
        else:
            siblings[name] = value

    def chars(data: str) -> None:
        if stack:
            stack[-1][3].append(data)

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    parser.EntityDeclHandler = refuse_entity
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)

    position = 0
    first = b""
    while True:
        chunk = stream.read(CHUNK)
        if not first:
            first = chunk[:200]
        try:
            parser.Parse(chunk, not chunk)
        except _EntityRefused as exc:
            raise FatalError(
                f"{where}: the XML declares an entity ({exc.args[0]!r}) at line "
                f"{parser.CurrentLineNumber}: entity declarations are refused (they can expand "
                "into gigabytes or read local files); export the catalog without a DTD"
            ) from None
        except expat.ExpatError as exc:
            complete = count - (1 if stack else 0)
            shown = f"; it begins {excerpt(first, 120)!r}" if complete == 0 else ""
            raise FatalError(
                f"{where}: malformed XML at line {exc.lineno}, column {exc.offset} (after item "
                f"{complete}, within the first {position + len(chunk)} bytes): "
                f"{expat.errors.messages[exc.code]}{shown}"
            ) from None
        position += len(chunk)
        # ready is drained before the next Parse refills it.
        yield from ready
        ready.clear()
        if not chunk:
            return
