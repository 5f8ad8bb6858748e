"""JSON Lines catalogs: one object per line; a line that is not JSON is rejected, the rest goes on.

Options: ``max_line_bytes`` (default 64 MiB; a longer line fails the file).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any

from worker.collect.formats import HeaderHook, Record, excerpt, skip_bom, unknown_options
from worker.common.errors import FatalError, RejectedRecord

POSITION = "line"
OPTIONS = ("max_line_bytes",)
MAX_LINE_BYTES = 64 << 20

_decoder = json.JSONDecoder(parse_float=Decimal)


def option_problems(options: Mapping[str, Any]) -> list[str]:
    problems = unknown_options(options, OPTIONS, "jsonl")
    limit = options.get("max_line_bytes", MAX_LINE_BYTES)
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1024:
        problems.append(f"format_options.max_line_bytes={limit!r} must be a whole number ≥ 1024")
    return problems


def records(
    stream: io.BufferedReader,
    options: Mapping[str, Any],
    where: str,
    on_header: HeaderHook | None = None,
) -> Iterator[Record]:
    limit = int(options.get("max_line_bytes", MAX_LINE_BYTES))
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
        if len(raw) > limit:
            raise FatalError(
                f"{where}: line {n} (byte {offset}) is longer than {limit} bytes: not JSON Lines? "
                "Raise format_options.max_line_bytes if the rows really are that long"
            )
        start = offset
        offset += len(raw)
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
        try:
            value = decode(text)
        except ValueError as exc:
            if not raw.endswith(b"\n"):
                # Only the file's last line can lack its newline: the export was cut short.
                raise FatalError(
                    f"{where}: the last line ({n}, byte {start}) ends in the middle of a record: "
                    "the file looks truncated; re-export it"
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
                f"the line is a JSON {type(value).__name__}, not an object", excerpt=excerpt(raw)
            )
