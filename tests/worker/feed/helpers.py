"""Running the feed pass in tests: a reject sink that remembers, reading a built file back."""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from worker.feed.channels import get_channel
from worker.feed.channels.base import ChannelOptions
from worker.feed.task import Build, build_feeds

# The build time of the tests' feeds: dates in the catalogs are relative to it.
NOW = datetime(2026, 11, 29, 3, 0, tzinfo=UTC)
# The golden catalog's shop: ships to Korea (Google and Meta get shipping).
GOLDEN_OPTIONS = ChannelOptions(now=NOW, country="KR")


@dataclass
class CountRejects:
    """Counts rejected records and keeps none (what RejectSink holds between flushes is bounded)."""

    count: int = 0

    def add(self, reason: str, **where: Any) -> None:
        self.count += 1


@dataclass
class ListRejects:
    """Remembers every rejected record (test catalogs are small)."""

    records: list[dict[str, Any]] = field(default_factory=list)

    def add(self, reason: str, **where: Any) -> None:
        self.records.append({"reason": reason, **where})

    def ids(self, channel: str, outcome: str = "excluded") -> set[str]:
        """The items the channel excluded (or, with ``outcome="dropped"``, lost an attribute)."""
        return {r["product_id"] for r in self.records
                if r["channel"] == channel and r["outcome"] == outcome}


def build(
    conn: psycopg.Connection, shop_id: str, names: Sequence[str], folder: Path,
    options: ChannelOptions | None = None, rejects: Any = None, **kwargs: Any,
) -> tuple[Build, Any]:
    rejects = ListRejects() if rejects is None else rejects
    folder.mkdir(parents=True, exist_ok=True)
    channels = [get_channel(n, options=options or ChannelOptions(now=NOW)) for n in names]
    return build_feeds(conn, shop_id, channels, folder, rejects=rejects, **kwargs), rejects


def read_text(path: Path) -> str:
    data = path.read_bytes()
    if path.suffix == ".gz":
        data = gzip.decompress(data)
    return data.decode("utf-8")
