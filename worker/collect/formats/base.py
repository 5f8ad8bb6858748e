"""The small Format interface every source format implements, and the helpers they share.

A format turns a binary, decompressed stream into a generator of ``(position, record)``:
``position`` is the record's line or item number (1-based); ``record`` is a dict, or a
``RejectedRecord`` for a record that cannot be read (the task rejects it and goes on). A file that
cannot be read at all raises ``FatalError`` naming the source and the position.
"""

from __future__ import annotations

import io
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar

from worker.collect.limits import OPTIONS as LIMIT_OPTIONS
from worker.collect.limits import Limits, limit_problems
from worker.common.errors import RejectedRecord

Record = tuple[int, "dict[str, Any] | RejectedRecord"]
HeaderHook = Callable[[list[str]], None]
BOM = b"\xef\xbb\xbf"


class Format(ABC):
    """A source format: one module each under ``worker.collect.formats``, exposing ``FORMAT``."""

    name: ClassVar[str]
    # What positions count: "item" or "line".
    position: ClassVar[str]
    # The format's own ``format_options`` (the limits of worker.collect.limits come on top).
    options: ClassVar[tuple[str, ...]] = ()

    def option_problems(self, options: Mapping[str, Any]) -> list[str]:
        """Everything wrong with a shop's ``format_options`` for this format."""
        known = (*self.options, *LIMIT_OPTIONS)
        problems = [
            f"format_options.{key} is not an option of {self.name}: expected one of "
            f"{', '.join(known)}"
            for key in options
            if key not in known
        ]
        problems.extend(limit_problems(options))
        problems.extend(self.own_option_problems(options))
        return problems

    def own_option_problems(self, options: Mapping[str, Any]) -> list[str]:
        return []

    @abstractmethod
    def records(
        self,
        stream: io.BufferedReader,
        options: Mapping[str, Any],
        where: str,
        on_header: HeaderHook | None = None,
        limits: Limits | None = None,
    ) -> Iterator[Record]:
        """The raw records of ``stream``, each a dict or a ``RejectedRecord``, with positions."""


def skip_bom(stream: io.BufferedReader) -> None:
    """Consume a UTF-8 byte-order mark at the start of the stream, if there is one."""
    if stream.peek(3)[:3] == BOM:
        stream.read(3)


def excerpt(data: bytes | str, limit: int = 200) -> str:
    """A short, printable excerpt of raw input for a reject or an error message."""
    text = data[: limit * 4].decode("utf-8", "replace") if isinstance(data, bytes) else data
    text = text[:limit]
    return text.translate(_SHOW_CONTROLS)


_SHOW_CONTROLS = {c: f"\\x{c:02x}" for c in range(32) if c not in (9,)}
_SHOW_CONTROLS[10] = "\\n"
_SHOW_CONTROLS[13] = "\\r"


# A complete JSON string (escapes included); what is left once they are gone is structure.
JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
OPEN_BRACKETS = frozenset(b"[{")


def json_depth(raw: bytes) -> int:
    """How deeply a complete JSON text nests (brackets inside strings do not count)."""
    depth = deepest = 0
    for b in JSON_STRING.sub(b"", raw).translate(None, NOT_BRACKETS):
        if b in OPEN_BRACKETS:
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest
