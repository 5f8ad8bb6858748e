"""Source formats: each module turns a binary stream into a generator of raw records.

A format module offers ``POSITION`` (what its positions count: "item" or "line"),
``option_problems(options) -> list[str]`` and ``records(stream, options, where, on_header=None)``,
a generator of ``(position, record)``: ``position`` is the record's line or item number (1-based);
``record`` is a dict, or a ``RejectedRecord`` for a row that
cannot be read (the task rejects it and goes on). A file that cannot be read at all raises
``FatalError`` naming the source and the position.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator, Mapping
from types import ModuleType
from typing import Any

from worker.common.errors import RejectedRecord

Record = tuple[int, "dict[str, Any] | RejectedRecord"]
HeaderHook = Callable[[list[str]], None]
BOM = b"\xef\xbb\xbf"


def module_for(fmt: str) -> ModuleType:
    """The format's module (json, jsonl, csv or xml)."""
    from worker.collect.formats import csv, json, jsonl, xml

    modules = {"json": json, "jsonl": jsonl, "csv": csv, "xml": xml}
    if fmt not in modules:
        raise ValueError(f"format {fmt!r} is not known: expected one of {', '.join(modules)}")
    return modules[fmt]


def records(
    fmt: str,
    stream: io.BufferedReader,
    options: Mapping[str, Any],
    where: str,
    on_header: HeaderHook | None = None,
) -> Iterator[Record]:
    """The raw records of ``stream`` in format ``fmt``."""
    module = module_for(fmt)
    result: Iterator[Record] = module.records(stream, options, where, on_header)
    return result


def skip_bom(stream: io.BufferedReader) -> None:
    """Consume a UTF-8 byte-order mark at the start of the stream, if there is one."""
    if stream.peek(3)[:3] == BOM:
        stream.read(3)


def excerpt(data: bytes | str, limit: int = 200) -> str:
    """A short, printable excerpt of raw input for a reject or an error message."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    text = text[:limit]
    return text.translate(_SHOW_CONTROLS)


_SHOW_CONTROLS = {c: f"\\x{c:02x}" for c in range(32) if c not in (9,)}
_SHOW_CONTROLS[10] = "\\n"
_SHOW_CONTROLS[13] = "\\r"


def unknown_options(options: Mapping[str, Any], known: tuple[str, ...], fmt: str) -> list[str]:
    return [
        f"format_options.{key} is not an option of {fmt}: expected one of {', '.join(known)}"
        for key in options
        if key not in known
    ]
