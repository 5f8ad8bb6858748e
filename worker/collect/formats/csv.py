"""CSV and TSV catalogs: a header row of column names, then one product per row.

Options: ``encoding`` (``utf-8``, with or without BOM, default; ``cp949`` / ``euc-kr`` for many
Korean shops), ``delimiter`` (default ``,``; ``\\t`` or ``tab`` for TSV), ``quotechar`` (default
``"``), ``quoting`` (``minimal``, default, or ``none``), ``fieldnames`` (the column names when the
file has no header row). A row that cannot be decoded or has the wrong number of fields is
rejected; the rest goes on. So is a row longer than ``max_record_bytes``: lines are read in pieces
of at most that size, the rest of the line is skipped in constant memory, and reading resumes at
the next line.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from worker.collect.formats.base import BOM, Format, HeaderHook, Record, excerpt
from worker.collect.formats.jsonl import skip_line
from worker.collect.limits import LIMITS, Limits, size
from worker.common.errors import FatalError, RejectedRecord

# A field can never be longer than its row, and the row is held to max_record_bytes: the csv
# module's own field limit (128 KiB by default, which would fail the whole file) is set to the
# largest max_record_bytes a shop may choose.
csv.field_size_limit(LIMITS["max_record_bytes"][2])

_QUOTING: dict[str, Any] = {"minimal": csv.QUOTE_MINIMAL, "none": csv.QUOTE_NONE}


def _delimiter(options: Mapping[str, Any]) -> Any:
    value = options.get("delimiter", ",")
    return "\t" if value in ("tab", "\\t") else value


class _RowTooLong(Exception):
    pass


class _Lines:
    """The stream's lines as text for csv.reader, read in pieces of at most the record limit.

    ``record_bytes`` counts the bytes of the row being read (a quoted field may span lines); past
    the limit, ``_RowTooLong`` stops the reader and the caller skips to the next line.
    """

    def __init__(self, stream: io.BufferedReader, limit: int, encoding: str) -> None:
        self._readline = stream.readline
        self._stream = stream
        self._limit = limit
        self.is_utf8 = encoding in ("utf-8", "utf-8-sig")
        self._decode_as = "utf-8" if self.is_utf8 else encoding
        self.line = 0
        self.byte = 0
        self.newline = True
        self.record_bytes = 0
        self.last = b""
        # Lines that did not decode: line number → the error; the row spanning one is rejected.
        self.bad: dict[int, UnicodeDecodeError] = {}

    def skip_rest_of_line(self) -> None:
        """Read past the rest of the line that passed the limit, in bounded pieces."""
        if not self.newline:
            skipped, self.newline = skip_line(self._stream)
            self.byte += skipped

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        raw = self._readline(self._limit + 1)
        if not raw:
            raise StopIteration
        self.line += 1
        if self.line == 1 and self.is_utf8 and raw.startswith(BOM):
            raw = raw[3:]
        self.newline = raw.endswith(b"\n")
        self.record_bytes += len(raw)
        self.byte += len(raw)
        if self.record_bytes > self._limit:
            self.last = raw[:200]
            raise _RowTooLong
        try:
            return raw.decode(self._decode_as)
        except UnicodeDecodeError as exc:
            self.bad[self.line] = exc
            return raw.decode(self._decode_as, "replace")


class CsvFormat(Format):
    name = "csv"
    position = "line"
    options: ClassVar[tuple[str, ...]] = (
        "encoding", "delimiter", "quotechar", "quoting", "fieldnames")

    def own_option_problems(self, options: Mapping[str, Any]) -> list[str]:
        problems = []
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
            not isinstance(names, list) or not names
            or not all(isinstance(n, str) for n in names)
        ):
            problems.append("format_options.fieldnames must be a non-empty list of column names")
        return problems

    def records(
        self,
        stream: io.BufferedReader,
        options: Mapping[str, Any],
        where: str,
        on_header: HeaderHook | None = None,
        limits: Limits | None = None,
    ) -> Iterator[Record]:
        limits = limits or Limits.from_options(options)
        encoding = codecs.lookup(str(options.get("encoding", "utf-8"))).name
        lines = _Lines(stream, limits.max_record_bytes, encoding)
        bad = lines.bad

        def reader() -> Any:
            return csv.reader(
                lines,
                delimiter=_delimiter(options),
                quotechar=str(options.get("quotechar", '"')),
                quoting=_QUOTING[str(options.get("quoting", "minimal"))],
                strict=False,
            )

        rows = reader()
        header: list[str]
        previous_end = 0
        try:
            if options.get("fieldnames"):
                header = [str(n) for n in options["fieldnames"]]
            else:
                try:
                    first = next(rows, None)
                except _RowTooLong:
                    raise FatalError(
                        f"{where}: the CSV header row is longer than "
                        f"{size(limits.max_record_bytes)} (format_options.max_record_bytes): "
                        "not a CSV file?"
                    ) from None
                if first is None:
                    raise FatalError(f"{where}: the CSV file is empty: expected a header row")
                previous_end = lines.line
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
            while True:
                lines.record_bytes = 0
                try:
                    row = next(rows)
                except StopIteration:
                    return
                except _RowTooLong:
                    start, previous_end = previous_end + 1, lines.line
                    for n in [n for n in bad if n <= previous_end]:
                        del bad[n]
                    # Rejected before it is skipped: a row that runs into the total is on record.
                    yield start, RejectedRecord(
                        f"the row is longer than {size(limits.max_record_bytes)} "
                        f"(format_options.max_record_bytes): skipped to line {previous_end + 1}",
                        excerpt=excerpt(lines.last),
                    )
                    lines.skip_rest_of_line()
                    # The reader was stopped mid-row: a fresh one starts at the next line.
                    rows = reader()
                    continue
                start, end = previous_end + 1, lines.line
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
                    if not lines.newline:
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
                f"{where}: malformed CSV at line {lines.line} (byte {lines.byte}): {exc}"
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


FORMAT = CsvFormat()
