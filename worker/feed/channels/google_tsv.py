"""Google Merchant Center, tab-separated text: the ``google`` mapping in Google's text format.

A header row of attribute names, one product per line, tab between values
(https://support.google.com/merchants/answer/160567); ``additional_image_link`` values
comma-separated in one field (https://support.google.com/merchants/answer/6324370), so every URL
has ``,`` encoded as ``%2C`` (https://support.google.com/merchants/answer/6324350); ``shipping`` as
``country:region:service:price`` with the optional parts empty
(https://support.google.com/merchants/answer/6324484). Google reads a field that starts with ``"``
as a quoted one: such a value (and one holding a tab or line break, which the shared text rules
never leave) is quoted, ``"`` doubled (``rules.tsv_field``), so Google reads the same text.
"""

from __future__ import annotations

from worker.feed.channels.google import FIELDS, GoogleChannel, google_fields
from worker.feed.product import FeedProduct
from worker.feed.rules import tsv_line

_EXTRA = FIELDS.index("additional_image_link")
_SHIPPING = FIELDS.index("shipping")


class GoogleTsvChannel(GoogleChannel):
    """Google's channel (its rules and image sizes) in the text format."""

    name = "google_tsv"
    extension = "tsv"
    content_type = "text/tab-separated-values; charset=utf-8"

    def header(self) -> str:
        return "\t".join(FIELDS) + "\n"

    def row(self, p: FeedProduct) -> str:
        values = google_fields(self, p, text=True)
        shipping = values.shipping
        if shipping:
            shipping = f"{self.options.country}:::{shipping}"
        fields: list[str] = list(values)  # type: ignore[arg-type]  # the list is joined next
        fields[_EXTRA] = ",".join(values.additional_image_link)
        fields[_SHIPPING] = shipping
        return tsv_line(fields)

    def footer(self) -> str:
        return ""


CHANNEL = GoogleTsvChannel
