"""Naver Shopping summary EP (요약 EP): what changed since the last published full or summary EP.

The EP 3.0 columns (``naver``) plus ``class`` — ``I`` new, ``U`` changed, ``D`` sold out or gone —
and ``update_time`` (``YYYY-MM-DD HH:MM:SS``, Korean time), per CHANNELS.md. The rows come from the
database's change tracking (first_seen_at, changed_at, gone_at against the last publication's data
time), never from diffing files. A ``D`` row carries the id only: Naver needs nothing else to take
a product down, and a gone product's other values may no longer pass the rules.
"""

from __future__ import annotations

from worker.common.errors import RejectedRecord
from worker.feed.channels.naver import FIELDS, ID_LIMIT, SOLD_OUT, NaverChannel, naver_values
from worker.feed.product import FeedProduct
from worker.feed.rules import check_id

SUMMARY_FIELDS = (*FIELDS, "class", "update_time")
_TAIL_EMPTY = "\t" * (len(FIELDS) - 1)


class NaverSummaryChannel(NaverChannel):
    name = "naver_summary"
    delta = True
    since_channels = ("naver", "naver_summary")

    def header(self) -> str:
        return "\t".join(SUMMARY_FIELDS) + "\n"

    def row(self, p: FeedProduct) -> str | None:
        if p.change is None:
            return None
        update_time = p.update_time or ""
        if p.change == "D" or p.availability in SOLD_OUT:
            try:
                pid = check_id(p.product_id, ID_LIMIT, ascii_only=True)
            except RejectedRecord:
                return None  # an id Naver's rules refuse was never listed: nothing to take down
            return f"{pid}{_TAIL_EMPTY}\tD\t{update_time}\n"
        values = naver_values(self, p)
        return "\t".join(values) + f"\t{p.change}\t{update_time}\n"


CHANNEL = NaverSummaryChannel
