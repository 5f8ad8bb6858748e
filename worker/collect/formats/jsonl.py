"""JSON Lines catalogs: one object per line; a line that is not JSON is rejected, the rest goes on.

A line longer than ``max_record_bytes`` or nested deeper than ``max_depth`` is rejected too: it is
skipped to its newline in constant memory, never held.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Mapping
from decimal import Decimal

from worker.collect.formats.base import (
    Format,
    HeaderHook,
    Record,
    excerpt,
    json_depth,
    skip_bom,
)
from worker.collect.limits import Limits, size
from worker.common.errors import FatalError, RejectedRecord

_decoder = json.JSONDecoder(parse_float=Decimal)
SKIP_SIZE = 1 << 20


def skip_line(stream: io.BufferedReader) -> tuple[int, bool]:
    """Read past the rest of the current line in bounded pieces: (bytes skipped, ended by \\n)."""
    skipped = 0
    while True:
        part = stream.readline(SKIP_SIZE)
        skipped += len(part)
        if not part:
            return skipped, False
        if part.endswith(b"\n"):
            return skipped, True


class JsonLinesFormat(Format):
    name = "jsonl"
    position = "line"

    def records(
        self,
        stream: io.BufferedReader,
        options: Mapping[str, object],
        where: str,
        on_header: HeaderHook | None = None,
        limits: Limits | None = None,
    ) -> Iterator[Record]:
        limits = limits or Limits.from_options(options)
        limit = limits.max_record_bytes
        max_depth = limits.max_depth
        skip_bom(stream)
        decode = _decoder.decode
        n = 0
        offset = 0
        readline = stream.readline
        while True:
            raw = readline(limit + 1)
            if not raw:
                return
            n += 1
            start = offset
            offset += len(raw)
            if len(raw) > limit:
                # Rejected before it is skipped: a line that runs into the total limit is on record.
                yield n, RejectedRecord(
                    f"the line is longer than {size(limit)} (format_options.max_record_bytes), "
                    f"from byte {start}: skipped to the next line",
                    excerpt=excerpt(raw[:200]),
                )
                skipped, _ = skip_line(stream)
                offset += skipped
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield n, RejectedRecord(
                    f"invalid UTF-8 at byte {start + exc.start} (line {n}, column {exc.start + 1})",
                    excerpt=excerpt(raw),
                )
                continue
            if not text.strip():
                continue
            # Depth is at most the number of opening brackets: only a line with many is measured.
            if raw.count(b"[") + raw.count(b"{") > max_depth and json_depth(raw) > max_depth:
                yield n, RejectedRecord(
                    f"the line nests deeper than {max_depth} levels (format_options.max_depth)",
                    excerpt=excerpt(raw[:200]),
                )
                continue
            try:
                value = decode(text)
            except RecursionError:
                yield n, RejectedRecord(
                    "the line nests too deeply for the JSON decoder (format_options.max_depth)",
                    excerpt=excerpt(raw[:200]),
                )
                continue
            except ValueError as exc:
                if not raw.endswith(b"\n"):
                    # Only the file's last line can lack its newline: the export was cut short.
                    raise FatalError(
                        f"{where}: the last line ({n}, byte {start}) ends in the middle of a "
                        "record: the file looks truncated; re-export it"
                    ) from exc
                reason = getattr(exc, "msg", str(exc))
                column = getattr(exc, "colno", None)
                yield n, RejectedRecord(
                    f"not valid JSON: {reason}" + (f" at column {column}" if column else ""),
                    excerpt=excerpt(raw),
                )
                continue
            if isinstance(value, dict):
                yield n, value
            else:
                yield n, RejectedRecord(
                    f"the line is a JSON {type(value).__name__}, not an object",
                    excerpt=excerpt(raw),
                )


FORMAT = JsonLinesFormat()
