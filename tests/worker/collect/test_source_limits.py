"""The limits every format and source reads under: each refused or rejected naming the limit and
the position, in constant memory; the JSON guard measures exactly what a JSON parser would."""

from __future__ import annotations

import gzip
import io
import json
import re
import tracemalloc
import zlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.collect import formats
from worker.collect.formats import json as json_format
from worker.collect.formats.base import json_depth
from worker.collect.limits import INFLATE_FLOOR, Limits
from worker.collect.sources import open_source
from worker.common.errors import FatalError, RejectedRecord
from worker.common.settings import Settings

WHERE = "shop s, source test"


def read(fmt: str, data: bytes, **options: Any) -> list[tuple[int, Any]]:
    return list(formats.records(fmt, io.BufferedReader(io.BytesIO(data)), options, WHERE))


def peak_of(fn: Any) -> tuple[Any, int]:
    """What ``fn`` returned (or raised) and the peak of Python memory it took."""
    tracemalloc.start()
    try:
        try:
            result: Any = fn()
        except FatalError as exc:
            result = exc
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# ---- nesting depth ------------------------------------------------------------------------


def test_json_of_100000_nested_arrays_is_refused_in_flat_memory() -> None:
    bomb = b"[" * 100_000 + b"]" * 100_000  # 200 KB; ijson alone took > 4 GB
    small = b"[" * 1_000 + b"]" * 1_000
    outcome, peak = peak_of(lambda: read("json", bomb))
    small_outcome, small_peak = peak_of(lambda: read("json", small))
    for caught in (outcome, small_outcome):
        assert isinstance(caught, FatalError)
        assert "nesting deeper than 64 levels (format_options.max_depth)" in str(caught)
        assert str(caught).startswith(WHERE)
    # Flat: a hundred times the nesting costs no more than the read buffer it arrived in.
    assert peak < 2 << 20 and peak < small_peak + (1 << 20)


def test_jsonl_line_nested_past_the_limit_is_rejected_and_the_rest_read() -> None:
    data = b'{"id": "a"}\n' + b"[" * 100_000 + b"]" * 100_000 + b'\n{"id": "b"}\n'
    (records), peak = peak_of(lambda: read("jsonl", data))
    assert [r for _, r in records if isinstance(r, dict)] == [{"id": "a"}, {"id": "b"}]
    [(position, reject)] = [(p, r) for p, r in records if isinstance(r, RejectedRecord)]
    assert position == 2 and "deeper than 64 levels (format_options.max_depth)" in reject.reason
    assert peak < 4 << 20


def test_xml_nested_past_the_limit_is_refused_in_flat_memory() -> None:
    outcome, peak = peak_of(lambda: read("xml", b"<catalog>" + b"<a>" * 100_000))
    assert isinstance(outcome, FatalError)
    assert "elements nested deeper than 64 levels (format_options.max_depth) at line 1" in str(
        outcome)
    assert peak < 2 << 20


def test_depth_is_a_per_shop_option() -> None:
    nested = b'[{"id": "a", "x": ' + b"[" * 80 + b"]" * 80 + b"}]"
    with pytest.raises(FatalError, match="max_depth"):
        read("json", nested)
    assert read("json", nested, max_depth=100)[0][1]["id"] == "a"


# ---- the JSON guard agrees with a JSON parser ----------------------------------------------

_text = st.text(alphabet=st.sampled_from('ab[]{}"\\/\n é'), max_size=12)
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | _text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=30,
)


def _true_depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((_true_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_true_depth(v) for v in value.values()), default=0)
    return 0


@settings(max_examples=300, deadline=None)
@given(items=st.lists(_json, min_size=1, max_size=5), cut=st.integers(1, 64))
def test_guard_measures_depth_exactly_whatever_the_chunks(items: list[Any], cut: int) -> None:
    document = json.dumps(items, ensure_ascii=False).encode()
    depth = _true_depth(items)
    assert json_depth(document) == depth
    guard = json_format._Guard(Limits(max_depth=depth), item_depth=1)
    for i in range(0, len(document), cut):  # strings and escapes cut anywhere
        guard.check(document[i : i + cut])
    assert guard.depth == 0 and not guard.in_string
    if depth > 1:
        guard = json_format._Guard(Limits(max_depth=depth - 1), item_depth=1)
        with pytest.raises(json_format._Over):
            for i in range(0, len(document), cut):
                guard.check(document[i : i + cut])


# ---- one record's bytes --------------------------------------------------------------------


def test_json_string_past_the_record_limit_refuses_the_file_before_it_is_held() -> None:
    data = b'[{"id": "a"}, {"id": "b", "d": "' + b"x" * (3 << 20) + b'"}]'
    outcome, peak = peak_of(lambda: read("json", data, max_record_bytes=1 << 20))
    assert isinstance(outcome, FatalError)
    assert "longer than 1 MiB (format_options.max_record_bytes) after item 1" in str(outcome)
    assert peak < 12 << 20  # the 3 MiB input itself, and reads that stopped past 1 MiB


def test_json_item_past_the_record_limit_is_refused_even_when_its_strings_are_short() -> None:
    data = b'{"products": [{"id": "a", "v": [' + b'"ab",' * 300_000 + b'"z"]}]}'
    with pytest.raises(FatalError, match=r"an item longer than 1 MiB .* after item 0"):
        read("json", data, item_path="products.item", max_record_bytes=1 << 20)
    # The same items fit under the default.
    assert read("json", data, item_path="products.item")[0][1]["id"] == "a"


def test_json_number_past_the_record_limit_refuses_the_file() -> None:
    with pytest.raises(FatalError, match="a number or literal longer than 1 MiB"):
        read("json", b"[" + b"1" * (3 << 20) + b"]", max_record_bytes=1 << 20)


def test_xml_item_and_text_past_their_limits_are_rejected_and_reading_goes_on() -> None:
    data = (b"<c><product><id>1</id></product>"
            b"<product><id>2</id><d>" + b"x" * 300_000 + b"</d></product>"
            b"<product><id>3</id>" + b"<o>x</o>" * 150_000 + b"</product>"
            b"<product><id>4</id></product></c>")
    records, peak = peak_of(
        lambda: read("xml", data, max_record_bytes=1 << 20, max_text_chars=200_000))
    assert [(p, r) for p, r in records if isinstance(r, dict)] == [(1, {"id": "1"}),
                                                                    (4, {"id": "4"})]
    reasons = {p: r.reason for p, r in records if isinstance(r, RejectedRecord)}
    assert reasons == {
        2: "the text of element 'd' is longer than 200000 characters "
           "(format_options.max_text_chars)",
        3: "the item is longer than 1 MiB (format_options.max_record_bytes)",
    }
    assert peak < 8 << 20


def test_xml_attribute_past_the_record_limit_refuses_the_file() -> None:
    data = b'<c><product id="' + b"x" * (5 << 20) + b'"></product></c>'
    with pytest.raises(FatalError, match=r"one XML token .* longer than 4 MiB"):
        read("xml", data)


# ---- the whole file ------------------------------------------------------------------------


def _gzip_of_zeros(path: Path, inflated: int) -> int:
    """A gzip file of ``inflated`` zero bytes, streamed through zlib (never held)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(1 << 20)
    with path.open("wb") as out:
        for _ in range(inflated >> 20):
            out.write(packer.compress(block))
        out.write(packer.flush())
    return path.stat().st_size


def test_gzip_past_its_inflate_ratio_is_refused_naming_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "bomb.gz"
    packed = _gzip_of_zeros(path, 64 << 20)
    settings = Settings.from_env({"DATABASE_URL": "postgresql://x@h/d",
                                  "SOURCE_FILE_ROOT": str(tmp_path)})
    with pytest.raises(FatalError) as caught, open_source(
        str(path), settings=settings, where=WHERE, limits=Limits()
    ) as source:
        while source.stream.read(1 << 20):
            pass
    message = str(caught.value)
    assert message.startswith(WHERE)
    assert f"format_options.max_inflate_ratio (20 × the {packed} compressed bytes)" in message
    # Below 16 MiB the ratio never refuses; past it, at the first read that crosses it.
    at = int(re.search(r"at byte (\d+) \(uncompressed\)", message).group(1))  # type: ignore[union-attr]
    assert INFLATE_FLOOR < at <= INFLATE_FLOOR + (1 << 20)
    # The same file under a shop's raised ratio reads to its end.
    with open_source(str(path), settings=settings, limits=Limits(max_inflate_ratio=10_000)) as s:
        total = 0
        while chunk := s.stream.read(1 << 20):
            total += len(chunk)
    assert total == 64 << 20


def test_plain_file_past_max_total_bytes_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    path.write_bytes(b"id\n" + b"a\n" * (1 << 20))
    settings = Settings.from_env({"DATABASE_URL": "postgresql://x@h/d",
                                  "SOURCE_FILE_ROOT": str(tmp_path)})
    with pytest.raises(FatalError, match=r"format_options.max_total_bytes \(1 MiB\) at byte"), \
            open_source(str(path), settings=settings, where=WHERE,
                        limits=Limits(max_total_bytes=1 << 20)) as source:
        source.stream.read()


def test_a_small_gzip_of_repeated_text_is_never_refused_by_the_ratio(tmp_path: Path) -> None:
    path = tmp_path / "small.gz"
    path.write_bytes(gzip.compress(b"same line\n" * 100_000))  # 1 MB from ~3 KB: 300:1
    settings = Settings.from_env({"DATABASE_URL": "postgresql://x@h/d",
                                  "SOURCE_FILE_ROOT": str(tmp_path)})
    with open_source(str(path), settings=settings, limits=Limits()) as source:
        assert len(source.stream.read()) == 1_000_000
