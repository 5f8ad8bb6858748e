"""Google Merchant Center, tab-separated text: the ``google`` mapping in Google's text format.

A header row of attribute names, one product per line, tab between values (answer/160567);
``additional_image_link`` values comma-separated in one field (answer/6324370). Values never
contain a tab or a line break: the shared text rules collapse whitespace, and URLs have commas
encoded as %2C (answer/6324350), so the separator stays unambiguous.
"""

from __future__ import annotations

from worker.feed import lines
from worker.feed.channels.base import Channel, FeedProduct
from worker.feed.channels.google import FIELDS, google_fields, google_sql_values
from worker.feed.lines import LineSQL


class GoogleTsvChannel(Channel):
    name = "google_tsv"
    extension = "tsv"
    content_type = "text/tab-separated-values; charset=utf-8"

    def header(self) -> str:
        return "\t".join(FIELDS) + "\n"

    def row(self, p: FeedProduct) -> str:
        values = google_fields(self, p)
        return "\t".join(v if isinstance(v, str) else ",".join(v) for v in values) + "\n"

    def line_sql(self) -> LineSQL:
        values, v = lines.as_values(google_sql_values(self.name), f"{self.name}_")
        v["additional_image_link"] = f"replace({v['additional_image_link']}, chr(31), ',')"
        return LineSQL(lines.joined([v[name] for name in FIELDS], "\t"), values=values)


CHANNEL = GoogleTsvChannel
