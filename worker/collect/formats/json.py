"""JSON catalogs: one document, its items found at a configurable ijson path, parsed in C.

Options: ``item_path`` (ijson prefix of the items; default ``item``, a top-level array; e.g.
``products.item`` or ``data.items.item``). Numbers that are not whole come as ``Decimal``.

ijson never sees a byte the guard has not measured first: nesting deeper than ``max_depth`` (ijson
builds a prefix per level, so cost grows with the square of the depth), one string or one item
longer than ``max_record_bytes`` (yajl keeps a token whole) refuse the file before the parser
holds them. One document cannot be resynchronised, so either is exit 65, not a reject.

The common paths (object keys, then the item array: ``item``, ``products.item``) are read by the
standard library's C scanner instead (``_scanned_items``): the guarded bytes decoded into a text
buffer, each item decoded whole by ``JSONDecoder.scan_once``, what lies beside the path walked
without holding it. The format's reading of a benchmark product, guard included, costs 12.8 µs
of CPU instead of ijson's 17.0 (yajl's events, then ijson's builder, in Python objects twice;
bench/results-collect.md, 2026-12-02). It gives ijson's items, values and refusals (a
differential property test, tests/worker/collect/test_json_scanner.py, holds it to ijson, which
stays the reference and reads every other path, and any document allowed deeper than
``_SCANNER_DEPTH``). One difference, on purpose: a document followed by an unterminated string
(``[1] "abc``), which yajl lets pass, is refused as trailing garbage.
"""

from __future__ import annotations

import codecs
import io
import json
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
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


class _Malformed(Exception):
    """The document is not JSON: ``args[0]`` says why (yajl's words where tests read them)."""


# The most digits int() reads (Python's int_max_str_digits; 0 would mean none, then the default).
INT_DIGITS = sys.get_int_max_str_digits() or 4300
# A run of digits longer than that, from its first digit (the look-behind keeps the search linear).
_LONG_RUN = re.compile(rb"(?<![0-9])[0-9]{%d}" % (INT_DIGITS + 1))
_DIGITS = b"0123456789"
_NOT_INT = (b".", b"e", b"E")  # next to digits: a fraction or an exponent, not an integer


class _Integers:
    """Refuses an integer longer than ``int()`` reads before yajl meets it, on ijson's path.

    ijson 3.6.0's C backend crashes the process (SIGSEGV) when ``int()`` refuses the digits of an
    integer of more than INT_DIGITS digits (reproduced with ``{"products": [{"n": 9…}]}`` of
    4,301 nines); lifting the limit instead makes one 4 MiB integer cost a minute of CPU (the
    conversion is quadratic). The scanner's path refuses such an integer itself. Only a run of
    digits outside strings that is an integer (no fraction or exponent around it) counts: a
    chunk is searched in C for a run that long, and followed token by token only when one is
    there, or when a number runs on into the next chunk.
    """

    def __init__(self) -> None:
        self.carry = 0  # digits of a number still open at the end of the last chunk
        self.carry_int = False  # ... and whether they are an integer's
        self.tail = b""  # the last chunk's last two bytes: what comes before this one's first

    def check(self, chunk: bytes, in_string: bool, escaped: bool, ends_in_string: bool) -> None:
        search_from = 0
        if self.carry:
            lead = len(chunk) - len(chunk.lstrip(_DIGITS))
            if lead == len(chunk):
                self.carry += lead
                self.tail = (self.tail + chunk)[-2:]
                return
            digits, self.carry = self.carry + lead, 0
            if self.carry_int and digits > INT_DIGITS and chunk[lead:lead + 1] not in _NOT_INT:
                raise _Malformed(f"an integer of more than {INT_DIGITS} digits")
            search_from = lead
        for match in _LONG_RUN.finditer(chunk, search_from):
            start = match.start()
            end = len(chunk) - len(chunk[start:].lstrip(_DIGITS))
            if end < len(chunk) and self._integer(chunk, start, end) and _outside_strings(
                    chunk, start, in_string, escaped):
                raise _Malformed(f"an integer of more than {INT_DIGITS} digits")
        if chunk[-1:].isdigit() and not ends_in_string:
            start = len(chunk.rstrip(_DIGITS))
            self.carry = len(chunk) - start
            self.carry_int = self._integer(chunk, start, len(chunk))
        self.tail = (self.tail + chunk)[-2:]

    def _integer(self, chunk: bytes, start: int, end: int) -> bool:
        """Whether the digits chunk[start:end] are an integer's: no fraction or exponent before
        or after them (a minus sign is an integer's, unless it follows an exponent's e)."""
        before = (self.tail + chunk[max(0, start - 2):start])[-2:]
        if before[-1:] in _NOT_INT or before[-1:] == b"+":
            return False
        if before == b"e-" or before == b"E-":
            return False
        return chunk[end:end + 1] not in _NOT_INT


def _outside_strings(chunk: bytes, at: int, in_string: bool, escaped: bool) -> bool:
    """Whether ``chunk[at]`` lies outside every string, the chunk starting inside one or not."""
    pos = 0
    if in_string:
        rest = _STRING_REST.match(chunk, 1 if escaped else 0)
        if rest is None or at < rest.end():
            return False
        pos = rest.end()
    for token in _TOKEN.finditer(chunk, pos):
        if token.start() > at:
            return True
        if token.group() == b'"' or (token.end() > at and token.group()[0] == 0x22):
            return False  # after the quote of a string that goes on, or inside this string
    return True


class _Guarded:
    """The stream as ijson reads it: counted and guarded, reads sized as READ_SIZE says.

    ijson asks for BUF_SIZE each time; a short read is a valid answer. ``items`` is the number
    of items the caller has taken so far: no new one since the last read means a value is
    still open, and the next read is twice as large. ``integers``: also refuse an integer too
    long for ``int()`` (ijson's path; the scanner refuses those itself).
    """

    def __init__(self, stream: io.BufferedReader, guard: _Guard, *,
                 integers: bool = False) -> None:
        self._stream = stream
        self._guard = guard
        self._integers = _Integers() if integers else None
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
        guard = self._guard
        in_string, escaped = guard.in_string, guard.escaped
        guard.check(data)
        if self._integers is not None and data:
            self._integers.check(data, in_string, escaped, guard.in_string)
        self.count += len(data)
        return data


def _item_depth(path: str) -> int:
    """How deep the items are: each part of an ijson prefix is one container level."""
    return len(path.split("."))


# ---- the standard library's scanner for the common paths --------------------------------------


def _no_constant(name: str) -> Any:
    raise _Malformed(f"{name} is not JSON")  # yajl refuses NaN and Infinity; the stdlib would not


_DECODER = json.JSONDecoder(parse_float=Decimal, parse_constant=_no_constant)
# The C scanner: (text, index) → (value, end).
_scan: Callable[[str, int], tuple[Any, int]] = _DECODER.scan_once  # type: ignore[attr-defined]
_scanstring: Callable[[str, int, bool], tuple[str, int]] = json.decoder.scanstring  # type: ignore[attr-defined]
_WS = re.compile(r"[ \t\n\r]*")
_COMMA = re.compile(r"[ \t\n\r]*,[ \t\n\r]*")
# A \u escape of a surrogate: yajl writes a lone high one as "?" and refuses a lone low one; such a
# value is decoded by ijson itself (rare: text that is not Unicode).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
# An error this close to the end of the text may be the text's end cutting a token (a literal
# of at most nine characters, a number, an escape): read on and decode again.
_NEAR_END = 16
# The C scanner recurses per level (the interpreter's recursion limit, ~1000): deeper documents
# (max_depth raised past this) are ijson's.
_SCANNER_DEPTH = 256


def scannable(path: str, limits: Limits) -> bool:
    """Whether ``_scanned_items`` reads this path: object keys, then one array of items."""
    parts = path.split(".")
    return parts[-1] == "item" and "item" not in parts[:-1] and limits.max_depth <= _SCANNER_DEPTH


class _Text:
    """The document decoded as it is read: ``buf[pos:]`` is what is not parsed yet.

    UTF-8 is decoded strictly, a read at a time (a character cut by a read waits for the next);
    invalid bytes end the text before them, and reading past that point refuses the document,
    as yajl does when it reaches them.
    """

    def __init__(self, read: Callable[[int], bytes]) -> None:
        self._read = read
        self.buf = ""
        self.pos = 0
        self.eof = False
        self._pending = b""
        self._bad = False
        # Where the last \u escape of a surrogate in ``buf`` starts (-1: none): values from
        # before it cannot hold one. One search per read instead of one per item.
        self.last_escape = -1

    def more(self) -> bool:
        """Append the next read (``buf`` starts again at ``pos``); False at the end."""
        while True:
            if self._bad:
                raise _Malformed("invalid bytes in UTF8 string")
            if self.eof:
                return False
            data = self._read(BUF_SIZE)
            if not data:
                self.eof = True
                self._bad = bool(self._pending)  # a character cut by the end of the file
                continue
            if self._pending:
                data = self._pending + data
            try:
                text, used = codecs.utf_8_decode(data, "strict", False)
            except UnicodeDecodeError as exc:
                text, used = data[: exc.start].decode(), len(data)
                self._bad = True
            self._pending = data[used:]
            if text:
                kept = len(self.buf) - self.pos
                self.buf = self.buf[self.pos :] + text if self.pos else self.buf + text
                self.last_escape -= self.pos
                self.pos = 0
                # An escape may also begin in the last characters kept.
                since = max(0, kept - 5)
                if self.buf.find("\\", since) >= 0:
                    for match in _SURROGATE_ESCAPE.finditer(self.buf, since):
                        self.last_escape = match.start()
                return True

    def skip_space(self, pos: int) -> int:
        """The position of the next character that is not white space; reads on for it."""
        while True:
            pos = _WS.match(self.buf, pos).end()  # type: ignore[union-attr]
            if pos < len(self.buf):
                return pos
            self.pos = pos
            if not self.more():
                raise _Malformed("premature EOF")
            pos = self.pos

    def decode(self, pos: int) -> tuple[Any, int]:
        """The value that starts at ``pos``, and where it ends; reads on while it may be cut."""
        while True:
            buf = self.buf
            try:
                value, end = _scan(buf, pos)
            except StopIteration as stop:
                at, message = stop.value, "Expecting value"
            except json.JSONDecodeError as exc:
                at, message = exc.pos, exc.msg
            except RecursionError:
                raise _Malformed("nested too deeply for the scanner") from None
            except _Malformed:
                raise
            except ValueError:  # an integer longer than int() reads (4,300 digits)
                if self.eof or not _long_number_at_end(buf):
                    raise _Malformed("an integer of more than "
                                     f"{INT_DIGITS} digits") from None
                at, message = len(buf), "Expecting value"  # cut: the guard measures it on
            else:
                # A number near the end may go on ("0." is "0" of a cut "0.5").
                if end < len(buf) - _NEAR_END or self.eof or not _is_number(value):
                    if self.last_escape >= pos and _SURROGATE_ESCAPE.search(buf, pos, end):
                        return _by_ijson(buf[pos:end]), end
                    return value, end
                at, message = end, ""
            cut = at >= len(buf) - _NEAR_END or message.startswith("Unterminated string")
            if not cut:
                raise _Malformed(message)
            self.pos = pos
            if not self.more() and message:
                raise _Malformed("premature EOF" if at >= len(self.buf) or message.startswith(
                    "Unterminated string") else message)
            pos = self.pos

    def key(self, pos: int) -> tuple[str, int]:
        """The object key whose quote is at ``pos``, and where it ends."""
        while True:
            buf = self.buf
            try:
                key, end = _scanstring(buf, pos + 1, True)
            except json.JSONDecodeError as exc:
                if not (exc.pos >= len(buf) - _NEAR_END or exc.msg.startswith("Unterminated")):
                    raise _Malformed(exc.msg) from None
                self.pos = pos
                if not self.more():
                    raise _Malformed("premature EOF") from None
                pos = self.pos
                continue
            if self.last_escape >= pos and _SURROGATE_ESCAPE.search(buf, pos, end):
                key = _by_ijson(buf[pos:end])
            return key, end


def _is_number(value: Any) -> bool:
    return value.__class__ is int or value.__class__ is Decimal


# The text ends in a run of digits too long for int(), perhaps then a point or an exponent's e
# and sign: a number the read may have cut (the scanner read "12…9." as the integer "12…9").
_LONG_NUMBER_AT_END = re.compile(rf"[0-9]{{{INT_DIGITS + 1}}}(?:\.|[eE][+-]?)?\Z")


def _long_number_at_end(buf: str) -> bool:
    return _LONG_NUMBER_AT_END.search(buf, max(0, len(buf) - INT_DIGITS - 4)) is not None


def _by_ijson(text: str) -> Any:
    """One value as ijson gives it (the rare text whose meaning the two parsers disagree on)."""
    try:
        for value in backend.items(io.BytesIO(text.encode()), "", use_float=False):
            return value
    except (ijson.JSONError, UnicodeDecodeError) as exc:
        raise _Malformed(f"invalid \\u escape: {exc}") from None
    raise _Malformed("premature EOF")  # pragma: no cover - the scanner read a whole value


def _scanned_items(text: _Text, target: str) -> Iterator[Any]:
    """ijson's ``items(stream, target)`` for a path ``scannable`` accepts, on the C scanner.

    A value's prefix is ijson's: its object keys and ``item`` for an array's elements, joined by
    dots (``_member_prefix``). The values on the way to ``target`` (containers whose prefix
    begins it) are walked; a value at ``target`` is decoded whole; any other is walked without
    keeping anything (a container) or decoded and dropped (a string or number, which the guard
    keeps short).
    """
    # The containers open around the current position: (an object?, prefix, or None when skipped).
    stack: list[tuple[bool, str | None]] = []
    prefix: str | None = ""
    pos = 0
    expecting_value = True
    scan, comma = _scan, _COMMA.match
    while True:
        if expecting_value:
            pos = text.skip_space(pos)
            char = text.buf[pos]
            if prefix == target:
                if stack and not stack[-1][0]:
                    # The hot loop: a run of items in their array, one C call each.
                    buf = text.buf
                    while True:
                        try:
                            value, end = scan(buf, pos)
                        except (StopIteration, ValueError, RecursionError):
                            value, end = text.decode(pos)  # cut by the read, or malformed
                            buf = text.buf
                        else:
                            if (end >= len(buf) - _NEAR_END and _is_number(value)) or (
                                    text.last_escape >= pos and
                                    _SURROGATE_ESCAPE.search(buf, pos, end)):
                                value, end = text.decode(pos)
                                buf = text.buf
                        yield value
                        match = comma(buf, end)
                        if match is None or match.end() >= len(buf):
                            break
                        pos = match.end()
                    pos = end
                else:
                    value, pos = text.decode(pos)
                    yield value
            elif char == "{" or char == "[":
                stack.append((char == "{", prefix))
                pos = text.skip_space(pos + 1)
                if text.buf[pos] == ("}" if char == "{" else "]"):
                    stack.pop()
                    pos += 1
                else:
                    prefix = _member_prefix(text, pos, stack, target)
                    pos = text.pos
                    continue
            else:
                pos = text.decode(pos)[1]
        # After a value: the end of the document, or of its container, or the next member.
        if not stack:
            while True:
                pos = _WS.match(text.buf, pos).end()  # type: ignore[union-attr]
                if pos < len(text.buf):
                    raise _Malformed("trailing garbage")
                text.pos = pos
                if not text.more():
                    return
                pos = text.pos
        pos = text.skip_space(pos)
        char = text.buf[pos]
        is_object = stack[-1][0]
        if char == ",":
            pos = text.skip_space(pos + 1)
            text.pos = pos
            prefix = _member_prefix(text, pos, stack, target)
            pos = text.pos
            expecting_value = True
        elif char == ("}" if is_object else "]"):
            stack.pop()
            pos += 1
            expecting_value = False
        else:
            raise _Malformed(f"after {'an object member' if is_object else 'an array element'}"
                             f", expected ',' or '{'}' if is_object else ']'}'")


def _member_prefix(text: _Text, pos: int, stack: list[tuple[bool, str | None]],
                   target: str) -> str | None:
    """The prefix of the member that starts at ``pos`` (an object's key and colon are read:
    ``text.pos`` is then at its value), or None when it leads nowhere near ``target``."""
    is_object, prefix = stack[-1]
    if is_object:
        if text.buf[pos] != '"':
            raise _Malformed("invalid object key (must be a string)")
        key, pos = text.key(pos)
        pos = text.skip_space(pos)
        if text.buf[pos] != ":":
            raise _Malformed("object key and value must be separated by a colon (':')")
        text.pos = pos + 1
        part = key
    else:
        text.pos = pos
        part = "item"
    if prefix is None:
        return None
    # ijson's C backend: a key is joined to its object's prefix by a dot unless the object is the
    # document itself; "item" to its array's unless that prefix is empty.
    if is_object:
        child = part if len(stack) == 1 else f"{prefix}.{part}"
    else:
        child = f"{prefix}.item" if prefix else "item"
    # An empty prefix leads anywhere: its arrays' elements are "item".
    return child if not child or child == target or target.startswith(child + ".") else None


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
        return read_records(stream, options, where, limits)


def read_records(stream: io.BufferedReader, options: Mapping[str, Any], where: str,
                 limits: Limits | None = None, *, scanner: bool = True) -> Iterator[Record]:
    """``JsonFormat.records``; ``scanner=False`` reads with ijson whatever the path (the
    reference: the differential test and the benchmark's parse limit)."""
    path = str(options.get("item_path", "item"))
    limits = limits or Limits.from_options(options)
    skip_bom(stream)
    scanned = scanner and scannable(path, limits)
    counted = _Guarded(stream, _Guard(limits, _item_depth(path)), integers=not scanned)
    items: Iterator[Any]
    if scanned:
        items = _scanned_items(_Text(counted.read), path)
    else:
        items = backend.items(counted, path, use_float=False, buf_size=BUF_SIZE)
    n = 0
    try:
        for item in items:
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
    except (ijson.JSONError, _Malformed, UnicodeDecodeError) as exc:
        detail = exc.args[0] if exc.args else str(exc)
        if isinstance(detail, bytes):
            detail = detail.decode("utf-8", "replace")
        detail = str(detail).strip().splitlines()[0] if str(detail).strip() else "malformed"
        raise FatalError(
            f"{where}: malformed JSON after item {n}, within the first {counted.count} bytes "
            f"(uncompressed): {detail[:200]}; fix the export"
        ) from exc


FORMAT = JsonFormat()
