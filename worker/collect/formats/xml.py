"""XML catalogs, streamed with expat: each item element becomes one record; nothing else is kept.

Options: ``item_element`` (default ``product``): a local name (``item``), a prefixed name as the
document writes it (``g:item``) or ``{namespace-uri}local``. A record is the item's children the
way xmltodict shapes them: a leaf is its text; an element with attributes or children is a dict
(``@attr`` for attributes, ``#text`` for its text); a repeated child is a list. Names keep the
document's prefix (``g:price``). Entity declarations are refused outright, so neither a
billion-laughs file nor an external entity can expand or reach anything.

Limits: an item longer than ``max_record_bytes`` or an element whose text is longer than
``max_text_chars`` is rejected, its content dropped as it streams past (expat reports text in
pieces, so nothing holds it whole); nesting deeper than ``max_depth`` and one token (a tag with
its attributes, a comment) longer than ``max_record_bytes`` refuse the file: expat keeps both.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar
from xml.parsers import expat

from worker.collect.formats.base import Format, HeaderHook, Record
from worker.collect.limits import Limits, size
from worker.common.errors import FatalError, RejectedRecord

CHUNK = 256 * 1024


class _EntityRefused(Exception):
    pass


class _Over(Exception):
    """A limit that refuses the file: (limit name, what was found)."""


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


class XmlFormat(Format):
    name = "xml"
    position = "item"
    options: ClassVar[tuple[str, ...]] = ("item_element",)

    def own_option_problems(self, options: Mapping[str, Any]) -> list[str]:
        item = options.get("item_element", "product")
        if not isinstance(item, str) or not item.strip() or " " in item:
            return [
                f"format_options.item_element={item!r} must be an element name such as "
                "product, g:item or {http://example.com/ns}item"
            ]
        return []

    def records(
        self,
        stream: io.BufferedReader,
        options: Mapping[str, Any],
        where: str,
        on_header: HeaderHook | None = None,
        limits: Limits | None = None,
    ) -> Iterator[Record]:
        limits = limits or Limits.from_options(options)
        return _records(stream, str(options.get("item_element", "product")), where, limits)


def _records(stream: io.BufferedReader, item: str, where: str, limits: Limits) -> Iterator[Record]:
    is_item = _matcher(item)
    parser = expat.ParserCreate(namespace_separator=" ")
    parser.namespace_prefixes = True
    parser.buffer_text = True
    parser.ordered_attributes = False
    ready: list[tuple[int, Any]] = []
    # Frames of the item being read: [name, attributes, children, text parts, text length].
    stack: list[list[Any]] = []
    count = 0
    outer = 0  # open elements outside an item (the document's own)
    room = 0  # how many levels the current item may have: max_depth - outer at its start
    item_start = 0
    # While an item over a limit streams past: why it is rejected, and its elements still open.
    skipping: str | None = None
    skip_depth = 0
    max_depth, max_record = limits.max_depth, limits.max_record_bytes
    max_text = limits.max_text_chars
    item_too_long = f"the item is longer than {size(max_record)} (format_options.max_record_bytes)"

    def refuse_entity(name: str, *args: Any) -> None:
        raise _EntityRefused(name)

    def skip(reason: str) -> None:
        nonlocal skipping, skip_depth
        skipping = reason
        skip_depth = len(stack)
        stack.clear()  # what was read of the item is dropped now, not at its end
        # Rejected now, not at its end: an item that runs into the total limit is on record.
        ready.append((count, RejectedRecord(reason)))

    def too_long(end: int) -> bool:
        if end - item_start > max_record:
            skip(item_too_long)
            return True
        return False

    def start(raw: str, attrs: dict[str, str]) -> None:
        nonlocal count, outer, room, item_start, skip_depth
        if stack:
            if len(stack) >= room:
                raise _Over("max_depth", f"elements nested deeper than {max_depth} levels")
            stack.append([_name(raw), attrs, {}, [], 0])
        elif skipping is not None:
            skip_depth += 1
            if skip_depth > room:
                raise _Over("max_depth", f"elements nested deeper than {max_depth} levels")
        elif is_item(raw):
            count += 1
            item_start = parser.CurrentByteIndex
            room = max_depth - outer  # the item's own levels, its element included
            if room < 1:
                raise _Over("max_depth", f"elements nested deeper than {max_depth} levels")
            stack.append([None, attrs, {}, [], 0, count])
        else:
            outer += 1
            if outer > max_depth:
                raise _Over("max_depth", f"elements nested deeper than {max_depth} levels")

    def end(raw: str) -> None:
        nonlocal outer, skipping, skip_depth
        if skipping is not None:
            skip_depth -= 1
            if skip_depth == 0:
                skipping = None
            return
        if not stack:
            outer -= 1
            return
        frame = stack.pop()
        name, attrs, children, texts = frame[0], frame[1], frame[2], frame[3]
        if not stack:
            if parser.CurrentByteIndex - item_start > max_record:  # at its end tag: known now
                ready.append((frame[5], RejectedRecord(item_too_long)))
                return
            record = children
            for key, attr_value in attrs.items():
                record["@" + _name(key)] = attr_value
            text = "".join(texts).strip()
            if text and not children:
                record["#text"] = text
            ready.append((frame[5], record))
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
        if not stack:
            return
        frame = stack[-1]
        frame[4] += len(data)
        if frame[4] > max_text:
            skip(f"the text of element {frame[0] or item!r} is longer than {max_text} "
                 "characters (format_options.max_text_chars)")
            return
        frame[3].append(data)

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    parser.EntityDeclHandler = refuse_entity
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)

    position = 0
    while True:
        chunk = stream.read(CHUNK)
        try:
            parser.Parse(chunk, not chunk)
            # An item still open has at least the bytes fed since it began: what was read of one
            # past the limit is dropped here, so an item holds at most the limit and one chunk.
            if stack and skipping is None:
                too_long(position + len(chunk))
            # expat keeps an unfinished token (a tag and its attributes, a comment) whole.
            if position + len(chunk) - max(parser.CurrentByteIndex, 0) > max_record + CHUNK:
                raise _Over("max_record_bytes",
                            f"one XML token (a tag, an attribute, a comment) longer than "
                            f"{size(max_record)}")
        except _EntityRefused as exc:
            raise FatalError(
                f"{where}: the XML declares an entity ({exc.args[0]!r}) at line "
                f"{parser.CurrentLineNumber}: entity declarations are refused (they can expand "
                "into gigabytes or read local files); export the catalog without a DTD"
            ) from None
        except _Over as over:
            name, found = over.args
            raise FatalError(
                f"{where}: {found} (format_options.{name}) at line {parser.CurrentLineNumber}, "
                f"in item {count}, within the first {position + len(chunk)} bytes "
                f"(uncompressed): the file is refused; fix the export, or raise "
                f"format_options.{name} if it is real"
            ) from None
        except expat.ExpatError as exc:
            complete = count - (1 if stack or skipping is not None else 0)
            raise FatalError(
                f"{where}: malformed XML at line {exc.lineno}, column {exc.offset} (after item "
                f"{complete}, within the first {position + len(chunk)} bytes): "
                f"{expat.errors.messages[exc.code]}"
            ) from None
        position += len(chunk)
        # ready is drained before the next Parse refills it.
        yield from ready
        ready.clear()
        if not chunk:
            return


FORMAT = XmlFormat()
