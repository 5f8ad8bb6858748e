"""JSON catalogs: one document, its items found at a configurable ijson path, parsed in C.

Options: ``item_path`` (ijson prefix of the items; default ``item``, a top-level array; e.g.
``products.item`` or ``data.items.item``). Numbers that are not whole come as ``Decimal``.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping
from typing import Any

import ijson

from worker.collect.formats import HeaderHook, Record, excerpt, skip_bom, unknown_options
from worker.common.errors import FatalError, RejectedRecord

# The C backend, named explicitly: the pure-Python fallback is ten times slower, never silently.
backend = ijson.get_backend("yajl2_c")
POSITION = "item"
OPTIONS = ("item_path",)
# yajl rescans a token that spans two reads from its start, so one huge value costs
# size² / read size: reads of up to 4 MiB keep a 10 MB field to seconds (256 KiB took a minute).
# But reading 4 MiB at once builds thousands of items before the first is used, which made the
# parse alone half as slow again as 64 KiB reads do (items are processed while still in cache).
# So reads start small and double, up to BUF_SIZE, while no item completes (a long value).
BUF_SIZE = 4 << 20
READ_SIZE = 64 << 10


def option_problems(options: Mapping[str, Any]) -> list[str]:
    problems = unknown_options(options, OPTIONS, "json")
    path = options.get("item_path", "item")
    if not isinstance(path, str) or not path or path.startswith(".") or ".." in path:
        problems.append(
            f"format_options.item_path={path!r} is not an ijson path: expected e.g. item, "
            "products.item, data.items.item"
        )
    return problems


class _Counted:
    """The stream as ijson reads it: counts bytes (for errors) and sizes reads (see READ_SIZE).

    ijson asks for BUF_SIZE each time; a short read is a valid answer. ``items`` is the number
    of items the caller has taken so far: no new one since the last read means a value is
    still open, and the next read is twice as large.
    """

    def __init__(self, stream: io.BufferedReader) -> None:
        self._stream = stream
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
        self.count += len(data)
        return data


def records(
    stream: io.BufferedReader,
    options: Mapping[str, Any],
    where: str,
    on_header: HeaderHook | None = None,
) -> Iterator[Record]:
    path = str(options.get("item_path", "item"))
    skip_bom(stream)
    counted = _Counted(stream)
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
    except ijson.JSONError as exc:
        detail = exc.args[0] if exc.args else str(exc)
        if isinstance(detail, bytes):
            detail = detail.decode("utf-8", "replace")
        detail = str(detail).strip().splitlines()[0] if str(detail).strip() else "malformed"
        raise FatalError(
            f"{where}: malformed JSON after item {n}, within the first {counted.count} bytes "
            f"(uncompressed): {detail[:200]}; fix the export"
        ) from exc
