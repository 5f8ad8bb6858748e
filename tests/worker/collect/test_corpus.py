"""The corpus of bad inputs, per source format, through the whole task: each either fails the file
(exit 65, a message naming shop, source and position) or rejects exactly the bad rows."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests import catalogs as catalog_gen
from tests.worker.collect.conftest import products_table, register, rejects_table
from worker.common.errors import FatalError

N = 20
Items = list[dict[str, Any]]


def _dupe(items: Items) -> None:
    items[6] = {**items[5], "name": "second copy"}


def _missing(items: Items) -> None:
    del items[4]["url"]


def _wrong_type(items: Items) -> None:
    items[3]["price"] = {"amount": "['1']", "currency": "KRW"}


def _huge(items: Items) -> None:
    items[2]["desc"] = "설명" * (5 << 20)  # 10 Mi characters


def _controls(items: Items) -> None:
    items[1]["name"] = "bad\x01name\x00here"


ITEM_CASES: dict[str, Callable[[Items], None]] = {
    "duplicate ids": _dupe, "missing required": _missing, "wrong types": _wrong_type,
    "10 MB field": _huge, "control characters": _controls,
}


def _bytes_case(case: str, data: bytes, fmt: str) -> bytes:
    if case == "truncated":
        return data[: len(data) * 2 // 3]
    if case == "invalid utf-8":
        return data.replace(b"P00000003", b"P0000\xff\xfe03", 1) if fmt != "xml" else (
            data.replace(b"P00000003", b"P0000\xff03", 1))
    if case == "bom":
        return b"\xef\xbb\xbf" + data
    if case == "empty":
        return b""
    if case == "html error page":
        return b"<!DOCTYPE html>\n<html><head><title>503</title></head><body>busy</body></html>"
    raise AssertionError(case)


# (format, case) → ("fatal", message) | ("rejected", {position: reason fragment}) | ("ok", …)
EXPECTED: dict[tuple[str, str], tuple[str, Any]] = {}
for fmt in catalog_gen.FORMATS:
    label = "line" if fmt in ("jsonl", "csv") else "item"
    offset = 2 if fmt == "csv" else 1  # the CSV header is line 1
    EXPECTED.update({
        (fmt, "duplicate ids"): ("rejected", {f"{label} {6 + offset}": "duplicate product id"}),
        (fmt, "missing required"): ("rejected", {f"{label} {4 + offset}":
                                                 "missing required field link"}),
        (fmt, "wrong types"): ("rejected", {f"{label} {3 + offset}":
                                            "price cannot be read: \"['1']\" has more than"}),
        (fmt, "10 MB field"): ("rejected", {f"{label} {2 + offset}": "longer than 4 MiB"}),
        (fmt, "control characters"): ("ok", None),
        (fmt, "bom"): ("ok", None),
        (fmt, "empty"): ("fatal", "the catalog is empty"),
        # A local file is never quoted (test_task shows a remote page quoted).
        (fmt, "html error page"): ("fatal", "not " + fmt + " but an HTML page: check"),
    })
EXPECTED.update({
    # One JSON document cannot skip an item: the file is refused, naming the limit.
    ("json", "10 MB field"): ("fatal", "a string longer than 4 MiB (format_options.max_record_bytes)"
                                       " after item 2"),
    ("xml", "10 MB field"): ("rejected", {"item 3": "the text of element 'desc' is longer than "
                                                    "1000000 characters"}),
    ("json", "truncated"): ("fatal", "malformed JSON after item"),
    ("jsonl", "truncated"): ("fatal", "looks truncated"),
    ("csv", "truncated"): ("fatal", "looks truncated"),
    ("xml", "truncated"): ("fatal", "malformed XML at line"),
    ("json", "invalid utf-8"): ("fatal", "invalid bytes in UTF8 string"),
    ("jsonl", "invalid utf-8"): ("rejected", {"line 4": "invalid UTF-8 at byte"}),
    ("csv", "invalid utf-8"): ("rejected", {"line 5": "not valid utf-8 at line 5"}),
    ("xml", "invalid utf-8"): ("fatal", "not well-formed (invalid token)"),
    # Raw control characters are not XML 1.0: the file itself is malformed.
    ("xml", "control characters"): ("fatal", "not well-formed (invalid token)"),
})


@pytest.mark.parametrize(("fmt", "case"), sorted(EXPECTED))
def test_bad_input(
    conn: psycopg.Connection, run_collect: Any, tmp_path: Path, fmt: str, case: str
) -> None:
    items = list(catalog_gen.products(N))
    if case in ITEM_CASES:
        ITEM_CASES[case](items)
    path = tmp_path / f"catalog.{fmt}"
    catalog_gen.write(path, fmt, items)
    if case not in ITEM_CASES:
        path.write_bytes(_bytes_case(case, path.read_bytes(), fmt))
    register(conn, fmt, path)
    outcome, detail = EXPECTED[(fmt, case)]
    if outcome == "fatal":
        with pytest.raises(FatalError) as caught:
            run_collect()
        assert caught.value.exit_code == 65
        assert detail in str(caught.value) and f"shop synthetic, source {path}" in str(
            caught.value)
        assert products_table(conn) == {}
        return
    result, _ = run_collect()
    rejects = {r["position"]: r["reason"] for r in rejects_table(conn)}
    if outcome == "ok":
        assert rejects == {} and result.rows_out == N
        if case == "control characters":
            assert products_table(conn)["P00000001"]["title"].endswith("badnamehere")
        return
    assert set(rejects) == set(detail)
    for position, fragment in detail.items():
        assert fragment in rejects[position]
    assert result.rows_out == N - 1 and len(products_table(conn)) == N - 1
