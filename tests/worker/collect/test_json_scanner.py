"""The JSON format's reader on the standard library's scanner against ijson, the reference: on
arbitrary documents (and documents cut anywhere, with invalid UTF-8, a BOM, deep nesting, NaN,
trailing garbage), read in arbitrary pieces, both give the same items at the same positions, or
both refuse the file."""

from __future__ import annotations

import io
import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import catalogs as catalog_gen
from worker.collect.formats import json as json_format
from worker.collect.limits import Limits
from worker.common.errors import FatalError

# Keys that make ijson prefixes meet the tested paths in every way they can: "item" as a key, a
# dot inside a key, the empty key, a key that escapes as \u.
KEYS = st.sampled_from(["products", "item", "a", "b", "a.b", "", "x", "é", "prod\\u0075cts"])
PATHS = ["item", "products.item", "a.b.item", "a.item", "products.x.item", "item.a.item", "a.b"]
WS = st.sampled_from(["", " ", "\n", " \t", "\r\n  "])
NUMBERS = st.from_regex(r"-?(0|[1-9][0-9]{0,30})(\.[0-9]{1,20})?([eE][+-]?[0-9]{1,3})?",
                        fullmatch=True)
# Escapes the two parsers might read differently: surrogates alone, paired and escaped-away.
ODD_ESCAPES = st.sampled_from(["", "\\ud800", "\\udc00", "\\ud83d\\ude00", "\\\\ud800", "\\u0000",
                               "\\/", "\\uD7A3", "\\udbff\\udfff"])


def _string(text: str, ascii_only: bool, odd: str) -> str:
    literal = json.dumps(text, ensure_ascii=ascii_only)
    return literal[:-1] + odd + '"'


STRINGS = st.builds(_string, st.text(max_size=12), st.booleans(), ODD_ESCAPES)
KEY_LITERALS = st.builds(lambda key, raw: f'"{key}"' if raw else json.dumps(key), KEYS,
                         st.booleans())
SCALARS = st.one_of(st.sampled_from(["true", "false", "null"]), NUMBERS, STRINGS)


def _containers(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    arrays = st.lists(st.tuples(WS, children, WS), max_size=5).map(
        lambda xs: "[" + ",".join(a + v + b for a, v, b in xs) + "]")
    objects = st.lists(st.tuples(WS, KEY_LITERALS, WS, WS, children, WS), max_size=5).map(
        lambda xs: "{" + ",".join(a + k + b + ":" + c + v + d for a, k, b, c, v, d in xs) + "}")
    return st.one_of(arrays, objects)


VALUES = st.recursive(SCALARS, _containers, max_leaves=25)
# The catalog shapes the scanner is for: items in an array under keys, siblings around them.
SHAPED = st.builds(
    lambda before, items, after, key: "{" + "".join(f'"s{n}": {v}, ' for n, v in
                                                     enumerate(before))
    + f'"{key}": [' + ", ".join(items) + "]"
    + "".join(f', "t{n}": {v}' for n, v in enumerate(after)) + "}",
    st.lists(VALUES, max_size=2), st.lists(VALUES, max_size=6), st.lists(VALUES, max_size=2),
    st.sampled_from(["products", "item", "a"]),
)
DOCUMENTS = st.one_of(VALUES, SHAPED, SHAPED.map(lambda d: '{"a": {"b": ' + d + "}}"))
INSERTS = st.sampled_from([b"\xff", b"\xc3", b"\xe2\x82", b"\xed\xa0\x80", b"\xc0\x80", b"\x00",
                           b"\x01", b"NaN", b"-Infinity", b"}", b",", b'"', b"\\", b"0"])


@st.composite
def damaged(draw: st.DrawFn) -> bytes:
    """A document, perhaps damaged: cut, a byte inserted, wrapped deep, a BOM, garbage after."""
    data = draw(DOCUMENTS).encode("utf-8", "surrogatepass")
    kind = draw(st.sampled_from(["whole", "whole", "cut", "insert", "deep", "bom", "after"]))
    if kind == "cut":
        data = data[: draw(st.integers(0, len(data)))]
    elif kind == "insert":
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(INSERTS) + data[at:]
    elif kind == "deep":
        depth = draw(st.integers(1, 70))
        data = b"[" * depth + data + b"]" * depth
    elif kind == "bom":
        data = b"\xef\xbb\xbf" + data
    elif kind == "after":
        data += draw(st.sampled_from([b" \n", b"x", b"[]", b"\xff"]))
    return data


class _Pieces:
    """A stream that answers every read with at most ``size`` bytes (a short read is valid)."""

    def __init__(self, data: bytes, size: int) -> None:
        self._data = data
        self._at = 0
        self._size = size

    def peek(self, n: int) -> bytes:
        return self._data[self._at : self._at + max(n, 1)]

    def read(self, n: int = -1) -> bytes:
        if n == 0:
            return b""
        take = self._size if n < 0 else min(n, self._size)
        chunk = self._data[self._at : self._at + take]
        self._at += len(chunk)
        return chunk


def _read(data: bytes, path: str, size: int, *, scanner: bool,
          limits: Limits | None = None) -> tuple[list[str], str | None]:
    """The records as text (values, types and positions), and the refusal's message, if any."""
    got: list[str] = []
    try:
        for position, record in json_format.read_records(
                _Pieces(data, size), {"item_path": path}, "w", limits,  # type: ignore[arg-type]
                scanner=scanner):
            got.append(f"{position} {record!r}")
    except FatalError as exc:
        return got, str(exc)
    return got, None


def _agree(data: bytes, path: str, size: int, limits: Limits | None = None) -> None:
    ours, refused = _read(data, path, size, scanner=True, limits=limits)
    theirs, ijson_refused = _read(data, path, size, scanner=False, limits=limits)
    if refused is not None and ijson_refused is None and "trailing garbage" in refused:
        # The one difference: yajl lets a document end in an unterminated string after its
        # value ('[1] "abc'); closed, ijson refuses it too. The scanner refuses it at once.
        assert ours == theirs
        assert _read(data + b'"', path, size, scanner=False, limits=limits)[1] is not None
    elif refused is None or ijson_refused is None:
        assert (ours, refused) == (theirs, ijson_refused)
    else:
        # Both refuse the file (and so collect nothing; which limit or error each meets first
        # depends on how far it has read): what each gave before must agree.
        shorter = min(len(ours), len(theirs))
        assert ours[:shorter] == theirs[:shorter]


@settings(max_examples=600, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(damaged(), st.sampled_from(PATHS), st.sampled_from([1, 2, 3, 7, 64, 1 << 16]))
def test_the_scanner_reads_what_ijson_reads(data: bytes, path: str, size: int) -> None:
    _agree(data, path, size)


@settings(max_examples=100, deadline=None, derandomize=True, database=None)
@given(st.lists(SHAPED, min_size=1, max_size=40), st.sampled_from([5, 64, 1000]))
def test_long_catalogs_read_in_pieces_agree(parts: list[str], size: int) -> None:
    # Many items in one array: items cut by reads everywhere, the fast loop and its way out.
    items = ", ".join(parts)
    _agree(f'{{"products": [{items}]}}'.encode(), "products.item", size)


@settings(max_examples=100, deadline=None, derandomize=True, database=None)
@given(damaged(), st.sampled_from(["item", "products.item"]), st.sampled_from([3, 4096]))
def test_under_small_limits_both_refuse_the_same_files(data: bytes, path: str,
                                                       size: int) -> None:
    _agree(data, path, size, Limits(max_record_bytes=1024, max_depth=4))


@pytest.mark.parametrize("size", [7, 4096, 1 << 16])
def test_the_benchmark_catalog_reads_the_same(size: int) -> None:
    # The generated catalog of the tests and the benchmark (Korean text, nested prices, options).
    out = io.StringIO()
    catalog_gen.write_json(out, catalog_gen.products(300, seed=3))
    data = out.getvalue().encode()
    ours, refused = _read(data, "products.item", size, scanner=True)
    assert refused is None and len(ours) == 300
    assert (ours, refused) == _read(data, "products.item", size, scanner=False)


def test_the_scanner_reads_the_common_paths_and_ijson_the_rest() -> None:
    limits = Limits()
    assert json_format.scannable("item", limits)
    assert json_format.scannable("data.items.item", limits)
    assert not json_format.scannable("item.products.item", limits)  # an item in the middle
    assert not json_format.scannable("products", limits)  # the value itself, not an array's items
    # The C scanner recurses per level: a document allowed to be deeper is ijson's.
    assert not json_format.scannable("item", Limits(max_depth=1024))


@pytest.mark.parametrize(
    ("document", "item"),
    [
        (b'[{"p": 1.50, "q": 1e400, "n": -0, "i": 12345678901234567890123}]',
         {"p": Decimal("1.50"), "q": Decimal("1E+400"), "n": 0, "i": 12345678901234567890123}),
        # yajl writes a lone high surrogate as "?"; the scanner's items say the same.
        (b'[{"t": "a\\ud800b", "e": "\\ud83d\\ude00"}]', {"t": "a?b", "e": "\U0001f600"}),
        (b'[{"a": 1, "a": 2}]', {"a": 2}),
    ],
)
def test_values_are_ijsons(document: bytes, item: dict[str, Any]) -> None:
    ours, refused = _read(document, "item", 1 << 16, scanner=True)
    assert refused is None and ours == [f"1 {item!r}"]


@pytest.mark.parametrize(
    ("document", "words"),
    [
        (b"[1, NaN]", "after item 1"),
        (b'[{"a": -Infinity}]', "Infinity is not JSON"),
        (b'["\\udc00"]', "invalid \\u escape"),  # ijson: a UnicodeDecodeError, now exit 65 too
        (b"[1] [2]", "trailing garbage"),
        (b"[" + b"9" * 5000 + b"]", "an integer of more than 4300 digits"),
    ],
)
def test_what_yajl_refuses_is_refused(document: bytes, words: str) -> None:
    _, refused = _read(document, "item", 1 << 16, scanner=True)
    assert refused is not None and words in refused


def test_a_sibling_beside_the_path_is_walked_not_held() -> None:
    # 3 MiB of metadata beside the items, in many small values: never more than a read at a time.
    sibling = b"[" + b",".join(b'{"k": "%d"}' % i for i in range(200_000)) + b"]"
    data = b'{"meta": ' + sibling + b', "products": [{"id": "a"}, {"id": "b"}]}'
    stream = _Pieces(data, 1 << 16)
    held: list[int] = []

    def read(n: int) -> bytes:
        held.append(len(text.buf) - text.pos)
        return stream.read(n)

    text = json_format._Text(read)
    items = list(json_format._scanned_items(text, "products.item"))
    assert items == [{"id": "a"}, {"id": "b"}]
    assert len(held) > 40 and max(held) < 100


# Integers longer than int() reads: ijson 3.6.0's C backend crashed the process on them (SIGSEGV,
# exit -11); both readers now refuse them with exit 65. Run in a child process, so that a crash
# fails this test instead of ending the test run.
_LONG_INTEGERS = r"""
import io, json, sys
from worker.collect.formats import json as json_format
from worker.common.errors import FatalError

class Pieces(io.BytesIO):
    def __init__(self, data, size):
        super().__init__(data)
        self.size = size
    def read(self, n=-1):
        return super().read(self.size if n < 0 else min(n, self.size))
    def peek(self, n):
        return self.getvalue()[self.tell():self.tell() + max(n, 1)]

out = []
for document, size, scanner in json.loads(sys.stdin.read()):
    try:
        items = [repr(r) for _, r in json_format.read_records(
            Pieces(document.encode(), size), {"item_path": "products.item"}, "w",
            scanner=scanner)]
        out.append(["ok", items])
    except FatalError as exc:
        out.append(["refused", str(exc)])
print(json.dumps(out))
"""


def test_an_integer_longer_than_int_reads_is_refused_by_both_readers_without_a_crash() -> None:
    import subprocess
    import sys

    digits = "9" * (json_format.INT_DIGITS + 1)
    refused = [f'{{"products": [{{"id": "a"}}, {{"n": {digits}}}]}}',
               f'{{"products": [{{"n": -{digits}, "s": "x"}}]}}',
               f'{{"products": [{{"s": "1.5", "n": [1, {digits}]}}]}}']
    accepted = [f'{{"products": [{{"s": "{digits}"}}]}}',  # digits in a string
                f'{{"products": [{{"s": "a\\"{digits}"}}]}}',  # after an escaped quote
                f'{{"products": [{{"f": 1.{digits}}}]}}',  # a fraction: a Decimal (a read of
                # 11 bytes ends right after its point)
                f'{{"products": [{{"f": 1{digits}.5}}]}}',
                f'{{"products": [{{"f": 1{digits}e5, "g": 1{digits}E+5}}]}}',
                f'{{"products": [{{"f": {digits[1:]}}}]}}']  # exactly the limit
    cases = [[document, size, scanner] for document in refused + accepted
             for size in (7, 11, 12, 13, 4096, 1 << 16) for scanner in (True, False)]
    child = subprocess.run([sys.executable, "-c", _LONG_INTEGERS], input=json.dumps(cases),
                           capture_output=True, text=True, timeout=300)
    assert child.returncode == 0, child.stderr[-2000:]
    results = json.loads(child.stdout)
    for (document, size, scanner), (outcome, detail) in zip(cases, results, strict=True):
        where = (document[:40], size, scanner)
        if document in refused:
            assert outcome == "refused", where
            assert f"an integer of more than {json_format.INT_DIGITS} digits" in detail, where
        else:
            assert outcome == "ok" and len(detail) == 1, (where, detail)
    # Both readers give the same answers, piece size whatever (where each stopped differs: ijson
    # reads ahead of the items it gives).
    same = [[outcome, str(detail).partition("(uncompressed): ")[2] or detail]
            for outcome, detail in results]
    assert same[0::2] == same[1::2]
