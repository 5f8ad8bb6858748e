"""Each source format on its own: shapes, options, and what a bad file or row becomes."""

from __future__ import annotations

import io
import tracemalloc
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from worker.collect import formats
from worker.collect.formats import json as json_format
from worker.common.errors import FatalError, RejectedRecord


def read(fmt: str, data: bytes, headers: list[list[str]] | None = None,
         **options: Any) -> list[tuple[int, Any]]:
    stream = io.BufferedReader(io.BytesIO(data))
    hook = headers.append if headers is not None else None
    return list(formats.records(fmt, stream, options, "shop s, source test", hook))


def good(records: list[tuple[int, Any]]) -> list[dict[str, Any]]:
    return [r for _, r in records if isinstance(r, dict)]


def rejected(records: list[tuple[int, Any]]) -> list[tuple[int, RejectedRecord]]:
    return [(p, r) for p, r in records if isinstance(r, RejectedRecord)]


# ---- JSON ----------------------------------------------------------------------------------


def test_json_uses_the_c_backend() -> None:
    assert json_format.backend.backend_name == "yajl2_c"


@pytest.mark.parametrize(
    ("document", "path"),
    [
        (b'[{"id": "a"}, {"id": "b"}]', "item"),
        (b'{"products": [{"id": "a"}, {"id": "b"}]}', "products.item"),
        (b'{"meta": {"n": 2}, "data": {"items": [{"id": "a"}, {"id": "b"}]}}', "data.items.item"),
    ],
)
def test_json_items_at_a_configurable_path(document: bytes, path: str) -> None:
    records = read("json", document, item_path=path)
    assert records == [(1, {"id": "a"}), (2, {"id": "b"})]


def test_json_numbers_are_decimal_never_float() -> None:
    [(_, record)] = read("json", b'[{"price": 12.90, "n": 3, "big": 1e2}]')
    assert record["price"] == Decimal("12.90") and isinstance(record["price"], Decimal)
    assert record["n"] == 3 and isinstance(record["n"], int)
    assert not any(isinstance(v, float) for v in record.values())


def test_json_with_a_bom_is_read() -> None:
    assert good(read("json", b'\xef\xbb\xbf[{"id": "a"}]')) == [{"id": "a"}]


def test_json_item_that_is_not_an_object_is_rejected_and_the_rest_goes_on() -> None:
    records = read("json", b'[{"id": "a"}, 5, {"id": "c"}]')
    assert good(records) == [{"id": "a"}, {"id": "c"}]
    [(position, reject)] = rejected(records)
    assert position == 2 and "not an object" in reject.reason


@pytest.mark.parametrize(
    ("document", "words"),
    [
        (b'[{"id": "a"}, {"id": "b", "title": "cut', ["after item 1", "premature EOF"]),
        (b'[{"id": "a"}, {"id": "\xff"}]', ["after item 1", "UTF8"]),
        (b"", ["after item 0"]),
    ],
)
def test_json_malformed_file_fails_naming_the_position(document: bytes, words: list[str]) -> None:
    with pytest.raises(FatalError) as caught:
        read("json", document)
    message = str(caught.value)
    assert "shop s, source test" in message
    for word in words:
        assert word in message


class _ReadSizes:
    """A stream that records the size of every read collect makes."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)
        self.sizes: list[int] = []

    def peek(self, n: int) -> bytes:
        return self._data.getvalue()[self._data.tell() : self._data.tell() + n]

    def read(self, n: int = -1) -> bytes:
        self.sizes.append(n)
        return self._data.read(n)


def test_json_reads_small_while_items_flow_and_grow_for_a_long_value() -> None:
    items = b",".join(b'{"id": "%d", "pad": "%s"}' % (i, b"x" * 500) for i in range(2000))
    long_value = b'{"id": "long", "desc": "' + b"y" * (12 << 20) + b'"}'
    data = b"[" + items + b"," + long_value + b"," + items + b"]"
    stream = _ReadSizes(data)
    records = list(json_format.FORMAT.records(
        stream, {"max_record_bytes": 16 << 20}, "shop s, source test"))  # type: ignore[arg-type]
    assert len(records) == 4001 and records[2000][1]["desc"] == "y" * (12 << 20)
    sizes = [s for s in stream.sizes if s]
    assert max(sizes) == json_format.BUF_SIZE  # the long value: reads doubled up to the cap
    assert sizes[0] == json_format.READ_SIZE and sizes[-1] <= 2 * json_format.READ_SIZE
    assert sorted(sizes).count(json_format.READ_SIZE) > len(sizes) // 2


# ---- JSON Lines ----------------------------------------------------------------------------


def test_jsonl_bad_lines_are_rejected_with_their_line_and_the_rest_goes_on() -> None:
    data = (
        b'\xef\xbb\xbf{"id": "a", "price": 1.5}\n'
        b"\n"
        b'{"id": "b", oops}\n'
        b'{"id": "\xff"}\n'
        b"[1, 2]\n"
        b'{"id": "c"}\n'
        b'{"id": "d", "title": "bad'
        b'\n{"id": "e"}'
    )
    records = read("jsonl", data)
    assert good(records) == [{"id": "a", "price": Decimal("1.5")}, {"id": "c"}, {"id": "e"}]
    reasons = {p: r.reason for p, r in rejected(records)}
    assert set(reasons) == {3, 4, 5, 7}
    assert "not valid JSON" in reasons[3]
    assert "invalid UTF-8" in reasons[4]
    assert "not an object" in reasons[5]
    assert "not valid JSON" in reasons[7]


@pytest.mark.parametrize(
    ("fmt", "data", "message"),
    [
        ("jsonl", b'{"id": "a"}\n{"id": "b", "ti', "the last line (2, byte 12) ends in the middle"),
        ("csv", b'id,title,price\na,T,1\nb,"cut\nstill', "the last row (line 3) ends early with 2 of"),
        ("csv", b"id,title,price\na,T,1\nb,T", "the last row (line 3) ends early with 2 of 3"),
    ],
)
def test_a_truncated_file_fails_instead_of_losing_its_tail(
    fmt: str, data: bytes, message: str
) -> None:
    with pytest.raises(FatalError, match="looks truncated") as caught:
        read(fmt, data)
    assert message in str(caught.value)


def test_the_last_line_without_a_newline_is_fine_when_complete() -> None:
    assert good(read("jsonl", b'{"id": "a"}\n{"id": "b"}')) == [{"id": "a"}, {"id": "b"}]
    assert good(read("csv", b"id,t\na,1\nb,2")) == [{"id": "a", "t": "1"}, {"id": "b", "t": "2"}]


def test_jsonl_line_past_the_limit_is_rejected_and_the_next_line_read() -> None:
    data = b'{"id": "a"}\n' + b'{"x": "' + b"y" * 5000 + b'"}\n{"id": "c"}\n'
    records = read("jsonl", data, max_record_bytes=2048)
    assert good(records) == [{"id": "a"}, {"id": "c"}]
    [(position, reject)] = rejected(records)
    assert position == 2
    assert reject.reason == ("the line is longer than 2 KiB (format_options.max_record_bytes), "
                             "from byte 12: skipped to the next line")


# ---- CSV -----------------------------------------------------------------------------------


def test_csv_header_names_the_fields_and_quotes_hold_newlines() -> None:
    headers: list[list[str]] = []
    data = b'id,title,price\r\na,"Shirt, blue","12,900\xec\x9b\x90"\r\nb,"two\nlines",5\r\n'
    records = read("csv", data, headers)
    assert headers == [["id", "title", "price"]]
    assert records == [
        (2, {"id": "a", "title": "Shirt, blue", "price": "12,900원"}),
        (3, {"id": "b", "title": "two\nlines", "price": "5"}),
    ]


def test_csv_utf8_bom_is_not_part_of_the_first_column() -> None:
    records = read("csv", "\ufeffid,title\na,T\n".encode())
    assert good(records) == [{"id": "a", "title": "T"}]


@pytest.mark.parametrize("encoding", ["cp949", "euc-kr"])
def test_csv_korean_legacy_encodings(encoding: str) -> None:
    data = "id,title\na,여름 티셔츠\nb,겨울 코트\n".encode(encoding)
    records = read("csv", data, encoding=encoding)
    assert good(records) == [{"id": "a", "title": "여름 티셔츠"}, {"id": "b", "title": "겨울 코트"}]


def test_csv_cp949_read_as_utf8_rejects_the_rows_that_do_not_decode() -> None:
    data = b"id,title\na,plain\n" + "b,여름\n".encode("cp949") + b"c,fine\n"
    records = read("csv", data)
    assert good(records) == [{"id": "a", "title": "plain"}, {"id": "c", "title": "fine"}]
    [(position, reject)] = rejected(records)
    assert position == 3
    assert "not valid utf-8 at line 3" in reject.reason and "encoding" in reject.reason


def test_tsv_and_rows_of_the_wrong_width() -> None:
    data = b"id\ttitle\na\tT\nb\tT\textra\nc\tU\n"
    records = read("csv", data, delimiter="tab")
    assert good(records) == [{"id": "a", "title": "T"}, {"id": "c", "title": "U"}]
    [(position, reject)] = rejected(records)
    assert position == 3 and "3 fields, the header has 2" in reject.reason


def test_csv_without_a_header_uses_fieldnames() -> None:
    records = read("csv", b"a;1\nb;2\n", delimiter=";", fieldnames=["id", "price"])
    assert good(records) == [{"id": "a", "price": "1"}, {"id": "b", "price": "2"}]


def test_csv_field_of_ten_megabytes_is_read_whole_under_a_raised_limit() -> None:
    big = "x" * (10 << 20)
    records = read("csv", f"id,description\na,{big}\nb,small\n".encode(),
                   max_record_bytes=16 << 20)
    assert [len(r["description"]) for r in good(records)] == [10 << 20, 5]


def test_csv_row_past_the_limit_is_rejected_and_reading_resumes_at_the_next_line() -> None:
    big = "x" * (5 << 20)
    data = f'id,description\na,one\nb,{big}\nc,"two\nlines"\nd,{big}'.encode()
    records = read("csv", data)
    assert good(records) == [{"id": "a", "description": "one"},
                             {"id": "c", "description": "two\nlines"}]
    assert [(p, r.reason) for p, r in rejected(records)] == [
        (3, "the row is longer than 4 MiB (format_options.max_record_bytes): skipped to line 4"),
        (6, "the row is longer than 4 MiB (format_options.max_record_bytes): skipped to line 7"),
    ]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"id,id\na,b\n", "names column 'id' twice"),
        (b"id,\na,b\n", "column 2 has no name"),
        (b"\xff\xfeid,title\n", "header row is not valid utf-8"),
    ],
)
def test_csv_unusable_header_fails_the_file(data: bytes, message: str) -> None:
    with pytest.raises(FatalError, match=message):
        read("csv", data)


# ---- XML -----------------------------------------------------------------------------------


def test_xml_items_become_records_shaped_like_xmltodict() -> None:
    data = b"""<?xml version="1.0"?>
    <catalog><meta>ignored</meta>
      <product id="p1">
        <title> Shirt &amp; tie </title>
        <price currency="KRW">12900</price>
        <images><image>https://a/1.jpg</image><image>https://a/2.jpg</image></images>
        <empty/>
      </product>
      <product id="p2"><title>Two</title><images><image>https://b/1.jpg</image></images></product>
    </catalog>"""
    records = read("xml", data)
    assert records == [
        (1, {
            "@id": "p1",
            "title": "Shirt & tie",
            "price": {"@currency": "KRW", "#text": "12900"},
            "images": {"image": ["https://a/1.jpg", "https://a/2.jpg"]},
            "empty": "",
        }),
        (2, {"@id": "p2", "title": "Two", "images": {"image": "https://b/1.jpg"}}),
    ]


GOOGLE_RSS = b"""<?xml version="1.0"?>
<rss version="2.0" xmlns:g="http://base.google.com/ns/1.0"><channel><title>Shop</title>
<item><g:id>A1</g:id><title>Shirt</title><g:price>15.00 USD</g:price></item>
<item><g:id>A2</g:id><title>Hat</title><g:price>9.50 USD</g:price></item>
</channel></rss>"""


@pytest.mark.parametrize("item", ["item", "{http://www.w3.org/2005/Atom}entry", "g:item"])
def test_xml_namespaces_keep_the_documents_prefix(item: str) -> None:
    if item == "g:item":
        data = GOOGLE_RSS.replace(b"<item>", b"<g:item>").replace(b"</item>", b"</g:item>")
    elif item.startswith("{"):
        data = (
            b'<feed xmlns="http://www.w3.org/2005/Atom" xmlns:g="http://base.google.com/ns/1.0">'
            b"<entry><g:id>A1</g:id><title>Shirt</title><g:price>15.00 USD</g:price></entry>"
            b"<entry><g:id>A2</g:id><title>Hat</title><g:price>9.50 USD</g:price></entry></feed>"
        )
    else:
        data = GOOGLE_RSS
    records = read("xml", data, item_element=item)
    assert good(records) == [
        {"g:id": "A1", "title": "Shirt", "g:price": "15.00 USD"},
        {"g:id": "A2", "title": "Hat", "g:price": "9.50 USD"},
    ]


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<catalog><product><id>x</id><title>&lol9;</title></product></catalog>"""


def test_xml_billion_laughs_is_refused_in_constant_memory() -> None:
    tracemalloc.start()
    try:
        with pytest.raises(FatalError, match="declares an entity") as caught:
            read("xml", BILLION_LAUGHS)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "'lol'" in str(caught.value) and "line 3" in str(caught.value)
    # Fully expanded, &lol9; is 3 GB; refused at its first declaration, nothing grows.
    assert peak < 2 << 20


def test_xml_external_entity_is_refused_and_never_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-VALUE")
    data = (
        b'<?xml version="1.0"?><!DOCTYPE c [<!ENTITY xxe SYSTEM "file://'
        + str(secret).encode()
        + b'">]><catalog><product><id>x</id><title>&xxe;</title></product></catalog>'
    )
    with pytest.raises(FatalError, match="declares an entity") as caught:
        read("xml", data)
    assert "TOP-SECRET-VALUE" not in str(caught.value)


def test_xml_external_dtd_is_not_fetched(tmp_path: Path) -> None:
    dtd = tmp_path / "evil.dtd"
    dtd.write_text('<!ENTITY leak "TOP-SECRET-VALUE">')
    data = (
        b'<?xml version="1.0"?><!DOCTYPE catalog SYSTEM "file://' + str(dtd).encode()
        + b'"><catalog><product><id>x</id><title>T</title></product></catalog>'
    )
    assert good(read("xml", data)) == [{"id": "x", "title": "T"}]


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"<catalog><product><id>a</id></product><product><id>b", ["after item 1", "line 1"]),
        (b"<catalog><product><id>a</id></prodct></catalog>", ["mismatched tag"]),
        (b"<html><body><p>Error 500<br></p></body></html>", ["mismatched tag", "after item 0"]),
    ],
)
def test_xml_malformed_file_fails_naming_the_position(data: bytes, words: list[str]) -> None:
    with pytest.raises(FatalError) as caught:
        read("xml", data)
    for word in words:
        assert word in str(caught.value)


# ---- options -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "options", "message"),
    [
        ("json", {"item_path": ""}, "item_path"),
        ("json", {"itempath": "x"}, "not an option of json"),
        ("csv", {"encoding": "klingon"}, "not a known encoding"),
        ("csv", {"encoding": "utf-16"}, "convert to UTF-8"),
        ("csv", {"delimiter": ",,"}, "one character"),
        ("csv", {"quoting": "all"}, "minimal or none"),
        ("xml", {"item_element": ""}, "element name"),
        ("jsonl", {"max_line_bytes": 10}, "not an option of jsonl"),
        ("jsonl", {"max_record_bytes": 10}, "max_record_bytes=10 must be a whole number from 1024"),
        ("json", {"max_depth": "64"}, "max_depth='64' must be a whole number"),
        ("csv", {"max_total_bytes": True}, "max_total_bytes=True must be"),
    ],
)
def test_format_option_problems(fmt: str, options: dict[str, Any], message: str) -> None:
    problems = formats.get_format(fmt).option_problems(options)
    assert any(message in p for p in problems), problems


@pytest.mark.parametrize(
    ("fmt", "options"),
    [("json", {"item_path": "a.b.item"}), ("csv", {"encoding": "cp949", "delimiter": "tab"}),
     ("xml", {"item_element": "g:item", "max_text_chars": 4096}), ("jsonl", {}),
     ("json", {"max_depth": 8, "max_record_bytes": 1 << 20, "max_inflate_ratio": 100})],
)
def test_good_format_options_have_no_problems(fmt: str, options: dict[str, Any]) -> None:
    assert formats.get_format(fmt).option_problems(options) == []


# ---- the registry --------------------------------------------------------------------------


def test_the_registry_is_the_one_list_of_formats() -> None:
    found = formats.registry()
    modules = {p.stem for p in Path(formats.__file__).parent.glob("*.py")} - {"__init__", "base"}
    assert set(found) == modules  # adding a format is adding a module
    for name, fmt in found.items():
        assert isinstance(fmt, formats.Format) and fmt.name == name
        assert fmt.position in ("item", "line")
    with pytest.raises(ValueError, match="format 'yaml' is not known: expected one of csv, json, "
                                         "jsonl, xml"):
        formats.get_format("yaml")


def test_the_shop_file_check_asks_the_registry() -> None:
    from submitter.shopfile import parse_shop
    from worker.common.errors import ConfigError

    raw = {"id": "s", "source_url": "https://x.example/c", "currency": "KRW"}
    for name in formats.registry():
        assert parse_shop({**raw, "format": name}, "test").format == name
    with pytest.raises(ConfigError, match="format 'yaml' is not known: expected one of "
                                          + ", ".join(sorted(formats.registry()))):
        parse_shop({**raw, "format": "yaml"}, "test")
    with pytest.raises(ConfigError, match="max_depth=0 must be a whole number from 4"):
        parse_shop({**raw, "format": "json", "format_options": {"max_depth": 0}}, "test")
