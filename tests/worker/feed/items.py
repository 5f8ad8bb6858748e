"""One item through one channel, read back as the platform would read it (no database).

``item(**overrides)`` is a FeedProduct every channel accepts; ``publish(name, item, options)``
runs the channel and parses its whole file — the XML with a real XML parser, the text formats with
the csv module — into ``Outcome``: the item's published values, or why it was excluded, and the
attributes dropped from it.
"""

from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from dataclasses import field as attribute
from typing import Any

from tests.worker.feed.helpers import NOW
from worker.common.errors import RejectedRecord
from worker.feed.channels import get_channel
from worker.feed.channels.base import ChannelOptions, Dropped
from worker.feed.channels.naver_summary import SUMMARY_FIELDS
from worker.feed.product import LIST_SEP, FeedProduct

G = "{http://base.google.com/ns/1.0}"
ALL = ("google", "google_tsv", "meta", "naver", "naver_summary")
XML_AND_TEXT = ("google", "google_tsv")


def item(**overrides: Any) -> FeedProduct:
    """A product every channel accepts (KRW, shipping known), with ``overrides``."""
    values: dict[str, Any] = {name: None for name in FeedProduct._fields}
    values.update(
        product_id="P-1", title="Cotton shirt", description="A plain cotton shirt",
        link="https://shop.example/p/1", image_link="https://shop.example/img/1.jpg",
        price="12900", currency="KRW", availability="in_stock", condition="new", brand="Acme",
        mpn="M-1", product_type="Clothing > Shirts", shipping_cost="3000", change="I",
        update_time="2026-11-29 12:00:00",
    )
    if "additional_image_links" in overrides and isinstance(overrides["additional_image_links"], list):
        overrides["additional_image_links"] = LIST_SEP.join(overrides["additional_image_links"])
    unknown = set(overrides) - set(values)
    if unknown:
        raise KeyError(f"not a FeedProduct field: {unknown}")
    values.update(overrides)
    return FeedProduct(**values)


def options(**overrides: Any) -> ChannelOptions:
    return ChannelOptions(**{"now": NOW, "country": "KR", **overrides})


@dataclass
class Outcome:
    values: dict[str, Any] | None  # the published item, None when excluded (or left out)
    reason: str | None = None  # why it was excluded
    field: str | None = None
    dropped: list[Dropped] = attribute(default_factory=list)

    @property
    def excluded(self) -> bool:
        return self.values is None

    def dropped_fields(self) -> set[str]:
        return {d.field for d in self.dropped}


def publish(name: str, p: FeedProduct, opts: ChannelOptions | None = None) -> Outcome:
    """Run channel ``name`` on ``p`` and read the whole file back."""
    channel = get_channel(name, options=opts or options())
    try:
        text = channel.row(p)
    except RejectedRecord as rejected:
        return Outcome(None, rejected.reason, rejected.field, list(channel.dropped))
    dropped = list(channel.dropped)
    if text is None:
        return Outcome(None, None, None, dropped)
    rows = read(name, channel.header() + text + channel.footer())
    assert len(rows) == 1, rows
    return Outcome(rows[0], dropped=dropped)


def read(name: str, document: str) -> list[dict[str, Any]]:
    """A channel's file as the platform reads it: one dict per item."""
    if name == "google":
        root = ET.fromstring(document)  # noqa: S314 (our own output)
        items = []
        for element in root.iter("item"):
            values: dict[str, Any] = {}
            for child in element:
                key = child.tag.replace(G, "")
                if key == "shipping":
                    values[key] = {c.tag.replace(G, ""): c.text for c in child}
                elif key == "additional_image_link":
                    values.setdefault(key, []).append(child.text or "")
                else:
                    values[key] = child.text or ""
            items.append(values)
        return items
    if name in ("google_tsv",):
        reader = csv.DictReader(io.StringIO(document, newline=""), delimiter="\t")
        rows = [dict(r) for r in reader]
        for r in rows:
            r["additional_image_link"] = (
                r["additional_image_link"].split(",") if r["additional_image_link"] else []
            )
        return [{k: v for k, v in r.items() if v not in ("", [])} for r in rows]
    if name == "meta":
        return [{k: v for k, v in r.items() if v != ""}
                for r in csv.DictReader(io.StringIO(document, newline=""))]
    # Naver: plain tab-separated, no quoting.
    lines = document.split("\n")
    assert lines[-1] == ""
    header = lines[0].split("\t")
    assert header[-1] != "update_time" or header == list(SUMMARY_FIELDS)
    out = []
    for line in lines[1:-1]:
        values_ = line.split("\t")
        assert len(values_) == len(header), line
        out.append({k: v for k, v in zip(header, values_, strict=True) if v != ""})
    return out
