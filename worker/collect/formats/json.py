"""JSON catalogs: one document, its items found at a configurable ijson path, parsed in C.

Options: ``item_path`` (ijson prefix of the items; default ``item``, a top-level array; e.g.
``products.item`` or ``data.items.item``). Numbers that are not whole come as ``Decimal``.

ijson never sees a byte the guard has not measured first: nesting deeper than ``max_depth`` (ijson
builds a prefix per level, so cost grows with the square of the depth), one string or one item
longer than ``max_record_bytes`` (yajl keeps a token whole) refuse the file before the parser
holds them. One document cannot be resynchronised, so either is exit 65, not a reject.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import ijson

from worker.collect.formats.base import (
    JSON_STRING,
    NOT_BRACKETS,
    OPEN_BRACKETS,
    Format,
    HeaderHook,
    Record,
    excerpt,
    skip_bom,
)
from worker.collect.limits import Limits, size
from worker.common.errors import FatalError, RejectedRecord

# The C backend, named explicitly: the pure-Python fallback is ten times slower, never silently.
backend = ijson.get_backend("yajl2_c")
# yajl rescans a token that spans two reads from its start, so one huge value costs
# size² / read size: reads of up to 4 MiB keep a 10 MB field to seconds (256 KiB took a minute).
# But reading 4 MiB at once builds thousands of items before the first is used, which made the
# parse alone half as slow again as 64 KiB reads do (items are processed while still in cache).
# So reads start small and double, up to BUF_SIZE, while no item completes (a long value).
BUF_SIZE = 4 << 20
READ_SIZE = 64 << 10

# The rest of a string that began in an earlier chunk, up to and including its closing quote.
_STRING_REST = re.compile(rb'[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
# A string, whole, or one bracket, or the quote of a string that goes on past the chunk.
_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]|"', re.DOTALL)
NOT_QUOTES_OR_BRACKETS = bytes(b for b in range(256) if b not in b'"[]{}')


class _Over(Exception):
    """A limit was passed: ``args`` are (limit name, what was found)."""


class _Guard:
    """Measures every byte before ijson gets it: depth, string and item lengths (constant memory).

    Each chunk is reduced, in C (``bytes.translate``, ``replace``; a regular expression when it
    holds an escaped quote), to the brackets outside strings, which are then followed one by one:
    a product has a handful, so this costs ~2.5 µs a product. ``item_depth`` is the depth of the
    item array's elements: bytes spent continuously deeper than that belong to one item, measured
    token by token only when one could be near the limit.
    """

    def __init__(self, limits: Limits, item_depth: int) -> None:
        self.limits = limits
        self.item_depth = item_depth
        self.depth = 0
        self.in_string = False
        self.escaped = False  # the previous chunk ended inside a string on an odd backslash
        self.string_bytes = 0
        self.item_bytes = 0
        self.bare_bytes = 0  # bytes of a token that is neither a string nor structure

    def check(self, chunk: bytes) -> None:
        rest = chunk
        if self.in_string:
            if self.escaped:
                rest = rest[1:]
                self.escaped = False
            end = _STRING_REST.match(rest)
            if end is None:
                self._string_goes_on(rest, chunk)
                return
            self.in_string = False
            rest = rest[end.end():]
        if b'\\"' in rest or len(rest) > self.limits.max_record_bytes:
            # An escaped quote, or a chunk that could hold a string over the limit: the exact way.
            structure = JSON_STRING.sub(b"", rest)
            if len(rest) > self.limits.max_record_bytes:
                for m in JSON_STRING.finditer(rest):
                    if m.end() - m.start() - 2 > self.limits.max_record_bytes:
                        raise _Over("max_record_bytes", "a string longer than "
                                    f"{size(self.limits.max_record_bytes)}")
            quote = structure.find(b'"')
            tail = None if quote < 0 else structure[quote + 1 :]
            brackets = structure[: None if quote < 0 else quote].translate(None, NOT_BRACKETS)
        else:
            # No escaped quote: a bracket is inside a string when an odd number of quotes comes
            # before it. Keep only quotes and brackets; two adjacent quotes change no bracket's
            # parity, so they go (most strings hold no bracket); what is left is short.
            reduced = rest.translate(None, NOT_QUOTES_OR_BRACKETS).replace(b'""', b"")
            if b'"' in reduced:
                parts = reduced.split(b'"')
                brackets = b"".join(parts[0::2])
                unterminated = len(parts) % 2 == 0
            else:
                brackets, unterminated = reduced, False
            tail = rest[rest.rfind(b'"') + 1 :] if unterminated else None
        if tail is not None:
            # A string begins and does not end in this chunk: nothing after its quote is structure.
            self.in_string = True
            self.string_bytes = 0
            self._string_goes_on(tail, b"")
        if brackets or tail is not None or b'"' in rest or b"," in rest or b":" in rest:
            self.bare_bytes = 0
        elif rest.strip():
            # Nothing but one number or literal, which yajl keeps whole until it ends.
            self.bare_bytes += len(rest)
            if self.bare_bytes > self.limits.max_record_bytes:
                raise _Over("max_record_bytes", "a number or literal longer than "
                            f"{size(self.limits.max_record_bytes)}")
        lowest = depth_before = self.depth
        if brackets:
            depth, limit = self.depth, self.limits.max_depth
            for b in brackets:
                if b in OPEN_BRACKETS:
                    depth += 1
                    if depth > limit:
                        raise _Over("max_depth", f"nesting deeper than {limit} levels")
                else:
                    depth -= 1
                    if depth < lowest:
                        lowest = depth
            self.depth = depth
        if lowest > self.item_depth:
            self.item_bytes += len(chunk)
            self._check_item()
        elif self.item_bytes + len(chunk) > self.limits.max_record_bytes:
            # An item ends (or starts) in this chunk, and this much could be over the limit:
            # measure each item of the chunk exactly (rare: only near the limit).
            self._measure_items(chunk, len(chunk) - len(rest), rest, depth_before)
        else:
            self.item_bytes = 0 if self.depth <= self.item_depth else len(chunk)

    def _measure_items(self, chunk: bytes, skipped: int, rest: bytes, depth: int) -> None:
        """Follow the chunk token by token (positions known) and measure every item in it."""
        item_depth, limit = self.item_depth, self.limits.max_record_bytes
        # Where the open item began, relative to this chunk (before it, when one was open).
        start: int | None = -self.item_bytes if depth > item_depth else None
        if start is not None and self.item_bytes == 0:
            start = 0
        for m in _TOKEN.finditer(rest):
            token = m.group()
            if token == b'"':  # a string that ends in a later chunk: nothing after it counts
                break
            if token[0] == 0x22:  # a string: no bracket inside counts
                continue
            at = skipped + m.start()
            if token[0] in OPEN_BRACKETS:
                depth += 1
                if depth == item_depth + 1:
                    start = at
            else:
                depth -= 1
                if depth == item_depth and start is not None:
                    if at + 1 - start > limit:
                        raise _Over("max_record_bytes",
                                    f"an item longer than {size(limit)}")
                    start = None
        self.item_bytes = 0 if start is None else len(chunk) - start
        self._check_item()

    def _string_goes_on(self, part: bytes, chunk: bytes) -> None:
        self.string_bytes += len(part)
        self.escaped = (len(part) - len(part.rstrip(b"\\"))) % 2 == 1
        if self.string_bytes > self.limits.max_record_bytes:
            raise _Over("max_record_bytes",
                        f"a string longer than {size(self.limits.max_record_bytes)}")
        self.item_bytes += len(chunk)
        self._check_item()

    def _check_item(self) -> None:
        if self.item_bytes > self.limits.max_record_bytes:
            raise _Over("max_record_bytes",
                        f"an item longer than {size(self.limits.max_record_bytes)}")


class _Guarded:
    """The stream as ijson reads it: counted and guarded, reads sized as READ_SIZE says.

    ijson asks for BUF_SIZE each time; a short read is a valid answer. ``items`` is the number
    of items the caller has taken so far: no new one since the last read means a value is
    still open, and the next read is twice as large.
    """

    def __init__(self, stream: io.BufferedReader, guard: _Guard) -> None:
        self._stream = stream
        self._guard = guard
        self.count = 0
        self.items = 0
        self._items_before = -1
        self._size = READ_SIZE

    def read(self, n: int = -1) -> bytes:
        if n == 0:
            return self._stream.read(0)  # ijson's probe: bytes or text?
        if self.items == self._items_before:
            self._size = min(self._size * 2, BUF_SIZE)
        else:
            self._size = READ_SIZE
        self._items_before = self.items
        data = self._stream.read(self._size if n < 0 else min(n, self._size))
        self._guard.check(data)
        self.count += len(data)
        return data


def _item_depth(path: str) -> int:
    """How deep the items are: each part of an ijson prefix is one container level."""
    return len(path.split("."))


class JsonFormat(Format):
    name = "json"
    position = "item"
    options: ClassVar[tuple[str, ...]] = ("item_path",)

    def own_option_problems(self, options: Mapping[str, Any]) -> list[str]:
        path = options.get("item_path", "item")
        if not isinstance(path, str) or not path or path.startswith(".") or ".." in path:
            return [
                f"format_options.item_path={path!r} is not an ijson path: expected e.g. item, "
                "products.item, data.items.item"
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
        path = str(options.get("item_path", "item"))
        limits = limits or Limits.from_options(options)
        skip_bom(stream)
        counted = _Guarded(stream, _Guard(limits, _item_depth(path)))
        n = 0
        try:
            for item in backend.items(counted, path, use_float=False, buf_size=BUF_SIZE):
                n += 1
                counted.items = n
                if isinstance(item, dict):
                    yield n, item
                else:
                    yield n, RejectedRecord(
                        f"the item is a JSON {type(item).__name__}, not an object",
                        excerpt=excerpt(repr(item)),
                    )
        except _Over as over:
            name, found = over.args
            raise FatalError(
                f"{where}: {found} (format_options.{name}) after item {n}, within the first "
                f"{counted.count} bytes (uncompressed): one JSON document cannot skip it, so the "
                f"file is refused; fix the export, or raise format_options.{name} if it is real"
            ) from None
        except ijson.JSONError as exc:
            detail = exc.args[0] if exc.args else str(exc)
            if isinstance(detail, bytes):
                detail = detail.decode("utf-8", "replace")
            detail = str(detail).strip().splitlines()[0] if str(detail).strip() else "malformed"
            raise FatalError(
                f"{where}: malformed JSON after item {n}, within the first {counted.count} bytes "
                f"(uncompressed): {detail[:200]}; fix the export"
            ) from exc


FORMAT = JsonFormat()
