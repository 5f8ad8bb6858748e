"""CSV and TSV catalogs: a header row of column names, then one product per row.

Options: ``encoding`` (``utf-8``, with or without BOM, default; ``cp949`` / ``euc-kr`` for many
Korean shops), ``delimiter`` (default ``,``; ``\\t`` or ``tab`` for TSV), ``quotechar`` (default
``"``), ``quoting`` (``minimal``, default, or ``none``), ``fieldnames`` (the column names when the
file has no header row). A row that cannot be decoded or has the wrong number of fields is
rejected; the rest goes on.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator, Mapping
from typing import Any

from worker.collect.formats import BOM, HeaderHook, Record, excerpt, unknown_options
from worker.common.errors import FatalError, RejectedRecord

POSITION = "line"
OPTIONS = ("encoding", "delimiter", "quotechar", "quoting", "fieldnames")
# Large enough for any real field (a 10 MB description is read, then rejected by its length);
# the csv module's default (128 KiB) would fail the whole file instead.
MAX_FIELD_CHARS = 64 << 20
csv.field_size_limit(MAX_FIELD_CHARS)

_QUOTING: dict[str, Any] = {"minimal": csv.QUOTE_MINIMAL, "none": csv.QUOTE_NONE}


def _delimiter(options: Mapping[str, Any]) -> Any:
    value = options.get("delimiter", ",")
    return "\t" if value in ("tab", "\\t") else value


def option_problems(options: Mapping[str, Any]) -> list[str]:
    problems = unknown_options(options, OPTIONS, "csv")
    encoding = options.get("encoding", "utf-8")
    try:
        info = codecs.lookup(str(encoding))
        if info.name.startswith("utf-16") or info.name.startswith("utf-32"):
            problems.append(
                f"format_options.encoding={encoding!r} is not supported: convert to UTF-8"
            )
    except LookupError:
        problems.append(
            f"format_options.encoding={encoding!r} is not a known encoding: "
            "expected e.g. utf-8, cp949, euc-kr"
        )
    delimiter = _delimiter(options)
    if not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in "\r\n\"":
        problems.append(
            f"format_options.delimiter={options.get('delimiter')!r} must be one character "
            "(e.g. ',' or 'tab')"
        )
    quotechar = options.get("quotechar", '"')
    if not isinstance(quotechar, str) or len(quotechar) != 1:
        problems.append(f"format_options.quotechar={quotechar!r} must be one character")
    if options.get("quoting", "minimal") not in _QUOTING:
        problems.append(
            f"format_options.quoting={options.get('quoting')!r} must be minimal or none"
        )
    names = options.get("fieldnames")
    if names is not None and (
        not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names)
    ):
        problems.append("format_options.fieldnames must be a non-empty list of column names")
    return problems


def records(
    stream: io.BufferedReader,
    options: Mapping[str, Any],
    where: str,
    on_header: HeaderHook | None = None,
) -> Iterator[Record]:
    encoding = codecs.lookup(str(options.get("encoding", "utf-8"))).name
    is_utf8 = encoding in ("utf-8", "utf-8-sig")
    decode_as = "utf-8" if is_utf8 else encoding
    # Lines that did not decode: line number → the error; the row spanning one is rejected.
    bad: dict[int, UnicodeDecodeError] = {}
    offsets = {"line": 0, "byte": 0, "newline": 1}

    def lines() -> Iterator[str]:
        for n, raw_line in enumerate(stream, 1):
            raw = raw_line
            if n == 1 and is_utf8 and raw.startswith(BOM):
                raw = raw[3:]
            offsets["line"] = n
            offsets["newline"] = raw.endswith(b"\n")
            try:
                yield raw.decode(decode_as)
            except UnicodeDecodeError as exc:
                bad[n] = exc
                yield raw.decode(decode_as, "replace")
            offsets["byte"] += len(raw)

    reader = csv.reader(
        lines(),
        delimiter=_delimiter(options),
        quotechar=str(options.get("quotechar", '"')),
        quoting=_QUOTING[str(options.get("quoting", "minimal"))],
        strict=False,
    )
    header: list[str]
    previous_end = 0
    try:
        if options.get("fieldnames"):
            header = [str(n) for n in options["fieldnames"]]
        else:
            first = next(reader, None)
            if first is None:
                raise FatalError(f"{where}: the CSV file is empty: expected a header row")
            previous_end = reader.line_num
            if 1 in bad:
                raise FatalError(
                    f"{where}: the header row is not valid {encoding} "
                    f"({_describe(bad[1])}): set format_options.encoding (e.g. cp949)"
                )
            header = [name.strip() for name in first]
        _check_header(header, where)
        if on_header is not None:
            on_header(header)
        width = len(header)
        for row in reader:
            start, end = previous_end + 1, reader.line_num
            previous_end = end
            if not row:
                continue
            if bad:
                broken = [n for n in bad if start <= n <= end]
                if broken:
                    error = bad[broken[0]]
                    for n in broken:
                        del bad[n]
                    yield start, RejectedRecord(
                        f"not valid {encoding} at line {broken[0]} ({_describe(error)}); "
                        "is format_options.encoding right?",
                        excerpt=excerpt(error.object),
                    )
                    continue
            if len(row) != width:
                if not offsets["newline"]:
                    # Only the last line can lack its newline: the export was cut short.
                    raise FatalError(
                        f"{where}: the last row (line {start}) ends early with {len(row)} of "
                        f"{width} fields: the file looks truncated; re-export it"
                    )
                yield start, RejectedRecord(
                    f"the row has {len(row)} fields, the header has {width}",
                    excerpt=excerpt(str(_delimiter(options)).join(row)),
                )
                continue
            yield start, dict(zip(header, row, strict=True))
    except csv.Error as exc:
        raise FatalError(
            f"{where}: malformed CSV at line {offsets['line']} (byte {offsets['byte']}): {exc}"
        ) from exc


def _describe(error: UnicodeDecodeError) -> str:
    bad = error.object[error.start : error.start + 4]
    return f"byte {error.start} of the line, {bad.hex(' ')}"


def _check_header(header: list[str], where: str) -> None:
    if not any(header):
        raise FatalError(f"{where}: the CSV header row is empty: expected column names")
    seen: set[str] = set()
    for i, name in enumerate(header, 1):
        if not name:
            raise FatalError(f"{where}: CSV header column {i} has no name")
        if name in seen:
            raise FatalError(f"{where}: CSV header names column {name!r} twice")
        seen.add(name)
