"""The feed's rules that do not depend on the channel, written once: pure functions.

Text cleaning (what XML 1.0 forbids, HTML, whitespace), trimming at a word, escaping, prices, ids,
URLs (IRI → URI, hosts a platform cannot reach), GTINs (GS1 check digit, restricted prefixes),
dates and variant values. A channel module applies them with its own limits and spellings; nothing
here knows a channel. Pure, so that they can be tested by the thousand (tests/worker/feed/).

Sources of the channel-independent rules:
- RFC 3987 §3.1 (IRI → URI: non-ASCII as UTF-8 percent-encoding, IDNA host names) and RFC 3986
  (the URI syntax the platforms require): https://www.rfc-editor.org/rfc/rfc3987#section-3.1,
  https://www.rfc-editor.org/rfc/rfc3986; Google asks for RFC 3986 links and image URLs,
  https://support.google.com/merchants/answer/6324416 (link),
  https://support.google.com/merchants/answer/6324350 (image_link).
- XML 1.0 characters: https://www.w3.org/TR/xml/#charsets.
- GS1 check digit and GTIN lengths 8/12/13/14: https://www.gs1.org/services/how-calculate-check-digit-manually,
  https://support.google.com/merchants/answer/6324461 (gtin); restricted-circulation prefixes 02,
  04, 2 (the first digit of a GTIN-14 is no part of a prefix):
  https://support.google.com/merchants/answer/6286293 and 7000684; coupon prefixes 05, 981–984,
  99: https://support.google.com/merchants/answer/6286302 (we refuse all of 98, as the issue's
  rule book says: 980 and 985–989 are GS1 "refund receipts" and coupon ranges too); GS1 General
  Specifications (RCN-8 prefixes 0 and 2):
  https://www.gs1.org/standards/barcodes-epcrfid-id-keys/gs1-general-specifications.
- ISO 8601 dates and intervals: https://support.google.com/merchants/answer/6324460.
"""

from __future__ import annotations

import html
import ipaddress
import re
import socket
from collections.abc import Sequence
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from urllib.parse import quote, urlsplit, urlunsplit

from stdnum import ean

from worker.common.errors import RejectedRecord
from worker.common.net import blocked_reason
from worker.common.product import CURRENCY_DECIMALS
from worker.common.settings import Network

# --- text rules ----------------------------------------------------------------------------------

# What XML 1.0 forbids (its Char production, inverted), which breaks a whole feed; and DEL and the
# C1 controls, which XML 1.0 only discourages but which are never text and trip other parsers.
_XML_FORBIDDEN = re.compile(
    "[^\t\n\r\u0020-\u007e\u00a0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
)
_DROP_ELEMENTS = re.compile(r"<(script|style)\b[^>]*>.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_SCRIPT_OR_STYLE = re.compile(r"<(?:script|style)", re.IGNORECASE)
_TAG = re.compile(r"<!--.*?-->|<[A-Za-z/!][^>]*>", re.DOTALL)


def strip_forbidden(text: str) -> str:
    """Remove what XML 1.0 forbids (C0 controls but tab/LF/CR, U+FFFE/FFFF, surrogates), DEL, C1."""
    # Every forbidden character is unprintable (Cc, Cs, Cn): a printable text has none, and
    # str.isprintable is one C loop where the regex is a slower one.
    if text.isprintable():
        return text
    return _XML_FORBIDDEN.sub("", text)


def one_line(text: str) -> str:
    """Collapse every run of whitespace (tabs, newlines) into one space; trim the ends."""
    # str.split() walks Unicode whitespace in C: many times faster than a regex substitution.
    return " ".join(text.split())


def strip_html(text: str) -> str:
    """Plain text from HTML: tags and comments out, script/style bodies out, entities decoded.

    Repeated until nothing changes: an encoded tag (``&lt;b&gt;``) or a twice-encoded entity
    (``&amp;eacute;``) decodes into markup again, and Meta takes descriptions without HTML tags
    or entities. Every change shortens the text, so this ends.
    """
    while True:
        before = text
        if "<" in text:
            # "<script" and "<style" in any case start "<s" or "<S": the regex only when one does.
            if ("<s" in text or "<S" in text) and _SCRIPT_OR_STYLE.search(text):
                text = _DROP_ELEMENTS.sub(" ", text)
            text = _TAG.sub(" ", text)
        if "&" in text:
            text = html.unescape(text)
        if text == before:
            return text


# A character clean_text would remove or replace: what XML forbids, DEL, C1, and every whitespace
# character but the plain space (str.isspace's set, spelled out so that it is one class: one scan).
_BAD_CHAR = re.compile(
    "[\x00-\x1f\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
    "\ud800-\udfff\ufffe\uffff]"
)


def is_clean(text: str) -> bool:
    """Whether ``clean_text`` would leave ``text`` as it is (without HTML); much cheaper than it."""
    return not text or not (
        _BAD_CHAR.search(text) or "  " in text or text[0] == " " or text[-1] == " "
    )


def clean_text(text: str | None, *, html: bool = False) -> str:
    """A single-line value: forbidden characters out, whitespace collapsed; HTML out if ``html``.

    ``html`` is for fields shops fill with markup (descriptions). A title's "<Deluxe>" is text.
    """
    if not text:
        return ""
    if html:
        # Until nothing changes: a decoded entity (&#1;) may be a character XML forbids, and
        # removing one may join an entity again ("&am\x01p;"). Both steps only shorten the text.
        # strip_html's result is its own fixed point, so when strip_forbidden removes nothing
        # from it the next round would change nothing: stop there, without running it.
        while True:
            stripped = strip_html(text)
            forbidden_out = strip_forbidden(stripped)
            if forbidden_out == stripped:
                text = stripped
                break
            text = forbidden_out
        # Nothing forbidden is left, so what remains is the whitespace rule: one_line, which
        # leaves a clean text as it is.
        return one_line(text)
    if is_clean(text):
        return text
    return one_line(strip_forbidden(text))


def trim_at_word(text: str, limit: int) -> str:
    """At most ``limit`` characters, cut at the last word boundary when one is near enough.

    "Near enough" is the last fifth of the limit: a text with no space there (Korean without
    spaces, a long URL) is cut at the limit itself rather than losing most of its length.
    """
    if len(text) <= limit:
        return text
    cut = text[: limit + 1]
    space = cut.rfind(" ")
    if space >= limit * 4 // 5:
        return cut[:space].rstrip()
    return text[:limit].rstrip()


def xml_escape(text: str) -> str:
    """Escape for XML element content (the three characters that matter there)."""
    if "&" in text:
        text = text.replace("&", "&amp;")
    if "<" in text:
        text = text.replace("<", "&lt;")
    if ">" in text:
        text = text.replace(">", "&gt;")
    return text


def format_price(amount: Decimal | str | int, currency: str) -> str:
    """``15.00 USD``, ``12900 KRW``: the currency's ISO 4217 decimals, '.' always, no grouping.

    Half-up rounding, as PostgreSQL's ``round(numeric, n)`` does, so that the database-formatted
    stream and this function agree (tested).
    """
    decimals = CURRENCY_DECIMALS.get(currency, 2)
    value = Decimal(amount).quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)
    return f"{value:f} {currency}"


def is_positive_amount(text: str | None) -> bool:
    """Whether a database-formatted amount is above zero (numeric's NaN is not)."""
    return text is not None and text[:1].isdigit() and text.strip("0.") != ""


def _digits(text: str) -> bool:
    """ASCII digits without a leading zero (a lone "0" is fine): the database's integer part."""
    return text.isascii() and text.isdigit() and (text[0] != "0" or len(text) == 1)


def less_than(a: str, b: str) -> bool:
    """Whether amount ``a`` < ``b``, both database-formatted decimals."""
    # The database writes both with the currency's decimals: when the two have the same number of
    # fraction digits and plain integer parts, they compare as (integer length, text) without a
    # Decimal each; anything else (a sign, an exponent, NaN) goes through Decimal.
    ia, _, fa = a.partition(".")
    ib, _, fb = b.partition(".")
    if (len(fa) == len(fb) and _digits(ia) and _digits(ib)
            and (not fa or (fa.isascii() and fa.isdigit() and fb.isascii() and fb.isdigit()))):
        return (len(ia), ia, fa) < (len(ib), ib, fb)
    return Decimal(a) < Decimal(b)


def amount(text: str | None) -> Decimal | None:
    """A database-formatted amount as a finite Decimal, None when there is none (or NaN)."""
    if not text:
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def plain_amount(text: str) -> bool:
    """Whether an amount is plain ASCII digits with at most one "." inside: finite, ≥ 0."""
    whole, _, fraction = text.partition(".")
    return (whole.isascii() and whole.isdigit()
            and (not fraction or (fraction.isascii() and fraction.isdigit())))


def whole_number(text: str) -> int | None:
    """The integer a database-formatted amount holds, None when it has a fraction or is not one."""
    value = amount(text)
    if value is None or value != value.to_integral_value():
        return None
    return int(value)


# --- required fields and ids ---------------------------------------------------------------------


def require(value: str, field: str, reason: str | None = None) -> str:
    """The value, or a rejection naming the field when it is empty."""
    if not value:
        raise RejectedRecord(reason or f"{field} is missing", field=field)
    return value


_ASCII_ID = re.compile(r"[A-Za-z0-9_-]+\Z")


def check_id(product_id: str, limit: int, *, ascii_only: bool = False) -> str:
    """A product id the platform keeps: present, single-line, at most ``limit`` characters.

    An id is never trimmed nor rewritten: two products trimmed alike would collide on the platform,
    and a changed id loses the item's history. ``ascii_only``: letters, digits, ``-`` and ``_``.
    """
    value = product_id
    if not value.strip():
        raise RejectedRecord("id is missing", field="id")
    if value != value.strip():
        # Trimmed, "A1 " would publish as "A1", colliding with a product of that id.
        raise RejectedRecord(
            "id has leading or trailing whitespace", field="id", excerpt=value[:120]
        )
    if len(value) > limit:
        raise RejectedRecord(f"id longer than {limit} characters", field="id", excerpt=value[:120])
    if ascii_only and not _ASCII_ID.match(value):
        raise RejectedRecord(
            "id holds characters other than ASCII letters, digits, '-' and '_'",
            field="id", excerpt=value[:120],
        )
    if _BAD_CHAR.search(value):
        raise RejectedRecord(
            "id holds control characters or line breaks", field="id", excerpt=value[:120]
        )
    return value


# --- URLs ----------------------------------------------------------------------------------------


class UrlProblem(ValueError):
    """Why a URL cannot be published (its ``reason`` completes "link …")."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# What stays as it is in each part (RFC 3986's unreserved, sub-delims, ":" "@", "/" and "?"
# where the part allows them, and "%" so that existing escapes stay single): everything else —
# non-ASCII as UTF-8, spaces, quotes, "<>[]{}|\^`" — is percent-encoded.
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"
_QUERY_SAFE = _PATH_SAFE + "?"
_LONE_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_NUMERIC_HOST = re.compile(r"(?i)(?:0x[0-9a-f]*|[0-9]+)\Z")


def _encode(part: str, safe: str) -> str:
    if not part:
        return part
    encoded = quote(part, safe=safe, encoding="utf-8", errors="strict")
    # A "%" that starts no escape is a character of its own: encode it, keep real escapes.
    return _LONE_PERCENT.sub("%25", encoded) if "%" in encoded else encoded


def _host(hostname: str) -> tuple[str, ipaddress.IPv4Address | ipaddress.IPv6Address | None]:
    """The ASCII host (IDNA for an internationalised name) and its address when it is a literal."""
    if ":" in hostname:  # an IPv6 literal (urlsplit took the brackets off)
        if "%" in hostname:
            raise UrlProblem("has an IPv6 zone index, which means nothing off this machine")
        try:
            return f"[{hostname}]", ipaddress.IPv6Address(hostname)
        except ValueError:
            raise UrlProblem("has an invalid IPv6 host") from None
    host = hostname.rstrip(".")
    if not host:
        raise UrlProblem("has no host")
    if not host.isascii():
        try:
            # encodings.idna (IDNA 2003, label by label, nameprep): what str.encode("idna") runs.
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise UrlProblem("has a host name that IDNA cannot encode") from None
    host = host.lower()
    if _NUMERIC_HOST.match(host.rsplit(".", 1)[-1]):
        # A browser reads 2130706433, 0x7f.1 or 0177.0.0.1 as an IPv4 address (WHATWG URL
        # standard); inet_aton takes the same forms, so the check sees the address a fetcher sees.
        try:
            return host, ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            raise UrlProblem("has a numeric host that is not an IPv4 address") from None
    if not re.fullmatch(r"[a-z0-9_](?:[a-z0-9_.-]*[a-z0-9_])?", host) or ".." in host:
        raise UrlProblem("has an invalid host name")
    return host, None


# A URL already in the form normalise_url gives, whose host is a DNS name (its last label starts
# with a letter: never an IPv4 number, never "localhost" alone): most shops' URLs. Checked by one
# regex instead of a parse; test_url_rules holds it to the full path's result.
_LABEL = r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"
_PCHARS = r"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/]|%[0-9A-Fa-f]{2})"
# The last label is never "localhost" (a lookahead: a label holds no "." and is followed by "/").
_PLAIN_URL = re.compile(
    rf"https?://(?:{_LABEL}\.)+(?!localhost/)[a-z](?:[a-z0-9-]*[a-z0-9])?"
    rf"/{_PCHARS}*(?:\?(?:{_PCHARS}|\?)+)?(?:#(?:{_PCHARS}|\?)+)?\Z"
)
_plain_match = _PLAIN_URL.match


def is_plain_url(url: str) -> bool:
    """Whether a URL is already in normalise_url's form with a DNS host name: published as is."""
    return _plain_match(url) is not None


_plain = is_plain_url


def normalise_url(url: str, *, fast: bool = True) -> str:
    """An absolute http(s) URI from a shop's URL or IRI (RFC 3987 §3.1), or ``UrlProblem``.

    Non-ASCII characters become UTF-8 percent-escapes, an internationalised host name its IDNA
    form, spaces and other characters RFC 3986 does not allow are escaped; existing ``%XX``
    escapes stay as they are (never escaped twice). Credentials in the URL are refused: a
    published link must not carry them. ``fast=False`` always parses (tests hold the shortcut to it).
    """
    value = url.strip()
    if fast and _plain(value):
        return value
    if not value:
        raise UrlProblem("is empty")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise UrlProblem("cannot be parsed as a URL") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UrlProblem("is not an http(s) URL")
    if parts.username is not None or parts.password is not None:
        raise UrlProblem("holds credentials (user:password@)")
    hostname = parts.hostname
    if not hostname:
        raise UrlProblem("has no host")
    host, _ = _host(hostname)
    netloc = host if port is None else f"{host}:{port}"
    try:
        return urlunsplit((
            scheme, netloc, _encode(parts.path, _PATH_SAFE) or "/",
            _encode(parts.query, _QUERY_SAFE), _encode(parts.fragment, _QUERY_SAFE),
        ))
    except UnicodeEncodeError:  # a lone surrogate: not text at all
        raise UrlProblem("holds characters that are not text") from None


def unreachable_host(url: str, allow: tuple[Network, ...] = ()) -> str | None:
    """Why a public platform could not fetch this (normalised) URL's host, None when it could.

    ``localhost`` and literal loopback, private, link-local, unspecified (and other non-public)
    addresses, unless in ``allow`` (the deployment's FETCH_ALLOW_NETWORKS): the same
    classification that guards the fetches (worker.common.net). Names are not resolved: a name
    is the platform's to resolve.
    """
    hostname = urlsplit(url).hostname or ""
    name = hostname.rstrip(".").lower()
    _, address = _host(hostname) if hostname else ("", None)
    if address is None:
        if name == "localhost" or name.endswith(".localhost"):
            address = ipaddress.IPv4Address("127.0.0.1")
            if blocked_reason(address, allow) is None:
                return None
            return "host is localhost, which a platform cannot fetch"
        return None
    reason = blocked_reason(address, allow)
    if reason is None:
        return None
    # The reason is counted per channel: its class, not the address (that is in the excerpt).
    kind, embedded, _ = reason.partition(", embedded in IPv6")
    return f"host is a {kind} address{' (in IPv6)' if embedded else ''}, which a platform cannot fetch"


# url → (normalise_url's result, whether the URL was already plain) or the problem's reason.
# Every channel of a pass checks the same product's URLs: the first one pays, the others look it
# up. Bounded (cleared when full), so memory stays constant over a catalog.
_NORMALISED: dict[str, tuple[str, bool] | str] = {}
_NORMALISED_MAX = 512


def _normalised(url: str) -> tuple[str, bool] | str:
    found = _NORMALISED.get(url)
    if found is None:
        if len(_NORMALISED) >= _NORMALISED_MAX:
            _NORMALISED.clear()
        if _plain_match(url) is not None:
            found = (url, True)
        else:
            try:
                found = (normalise_url(url), False)
            except UrlProblem as problem:
                found = problem.reason
        _NORMALISED[url] = found
    return found


def publishable_url(
    url: str, *, limit: int, allow: tuple[Network, ...] = (), encode_comma: bool = False
) -> str:
    """``normalise_url``, then the host and length checks; ``UrlProblem`` names what failed.

    ``limit`` applies to the encoded URL (what the platform reads). ``encode_comma``: ``,`` as
    ``%2C`` (Google's image_link page; the text formats split lists on commas).
    """
    found = _normalised(url)
    if isinstance(found, str):
        raise UrlProblem(found)
    value, plain = found
    if encode_comma and "," in value:
        value = value.replace(",", "%2C")
    if len(value) > limit:
        raise UrlProblem(f"is longer than {limit} characters once encoded")
    reason = None if plain else unreachable_host(value, allow)
    if reason is not None:
        raise UrlProblem(reason)
    return value


# --- GTIN ----------------------------------------------------------------------------------------

GTIN_LENGTHS = (8, 12, 13, 14)
_DIGITS = re.compile(r"[0-9]+\Z")
# GTIN-13 prefixes Google refuses as "restricted GTIN": restricted circulation (020–029, 040–049,
# 200–299: in-store and variable-measure numbers) and coupons (05, 98, 99).
_RESTRICTED_13 = re.compile(r"0[245]|2|9[89]")


def normalise_gtin(value: str | None) -> tuple[str, str | None]:
    """``(gtin, None)`` for a valid GTIN-8/12/13/14, ``("", reason)`` for a wrong one, ``("", None)``
    for none at all. Spaces and hyphens are removed; the GS1 check digit is verified by stdnum."""
    if not value:
        return "", None
    digits = value.replace(" ", "").replace("-", "")
    if not digits:
        return "", None
    if not _DIGITS.match(digits):
        return "", "gtin holds characters other than digits, spaces and hyphens"
    if len(digits) not in GTIN_LENGTHS:
        return "", "gtin is not 8, 12, 13 or 14 digits long"
    if not ean.is_valid(digits):
        return "", "gtin check digit is wrong"
    if digits.strip("0") == "":
        return "", "gtin is all zeros"
    return digits, None


def gtin13_form(gtin: str) -> str:
    """The 13 digits a GTIN-12/13/14 prefix rule reads (UPC-A padded, GTIN-14's indicator off)."""
    if len(gtin) == 12:
        return "0" + gtin
    if len(gtin) == 14:
        return gtin[1:]
    return gtin


def restricted_gtin(gtin: str) -> bool:
    """Whether a valid GTIN carries a restricted-circulation or coupon prefix (Google refuses it).

    GTIN-12/13/14 by their GTIN-13 form ("the first digit of a 14-digit GTIN is not considered a
    part of a prefix", answer/6286293). A GTIN-8 starting with 0 or 2 is a GS1 restricted
    circulation number (RCN-8), and one starting 98/99 a coupon, as the GTIN-13 rule reads them.
    """
    if len(gtin) == 8:
        return gtin[0] in "02" or gtin[:2] in ("98", "99")
    return _RESTRICTED_13.match(gtin13_form(gtin)) is not None


def gtin13_or_8(gtin: str) -> tuple[str, str | None]:
    """A valid GTIN as GTIN-13 or GTIN-8 (Naver's barcode), or ``("", reason)``.

    UPC-A takes a leading 0; a GTIN-14 with indicator 0 is its GTIN-13 (the check digit holds:
    GS1 weights run from the right). Another GTIN-14 names a case of the item, not the item.
    """
    if len(gtin) in (8, 13):
        return gtin, None
    if len(gtin) == 12:
        return "0" + gtin, None
    if gtin[0] == "0":
        return gtin[1:], None
    return "", "gtin is a GTIN-14 of a trade unit (indicator 1–9): no GTIN-13 or GTIN-8 form"


# --- dates ---------------------------------------------------------------------------------------


def iso_utc(moment: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ``: the stream's format for dates, so that they compare as strings."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def window_open(start: str | None, end: str | None, now: str) -> bool:
    """Whether ``now`` lies in [start, end) (an open side is unbounded); all ``iso_utc`` strings."""
    return (start is None or start <= now) and (end is None or now < end)


# --- variant values ------------------------------------------------------------------------------

# What shops write (English, Korean, abbreviations) → the neutral value; channels spell it.
GENDERS = {
    "male": "male", "men": "male", "man": "male", "mens": "male", "men's": "male", "m": "male",
    "boy": "male", "boys": "male", "남성": "male", "남자": "male", "남": "male",
    "female": "female", "women": "female", "woman": "female", "womens": "female",
    "women's": "female", "f": "female", "w": "female", "girl": "female", "girls": "female",
    "여성": "female", "여자": "female", "여": "female",
    "unisex": "unisex", "u": "unisex", "남녀공용": "unisex", "공용": "unisex", "유니섹스": "unisex",
    "all": "unisex",
}
AGE_GROUPS = {
    "newborn": "newborn", "신생아": "newborn",
    "infant": "infant", "baby": "infant", "영아": "infant", "유아": "toddler",
    "toddler": "toddler",
    "kids": "kids", "kid": "kids", "child": "kids", "children": "kids", "아동": "kids",
    "키즈": "kids", "어린이": "kids",
    "teen": "teen", "teens": "teen", "teenager": "teen", "청소년": "teen",
    "adult": "adult", "adults": "adult", "성인": "adult",
    "all ages": "all ages", "all_ages": "all ages", "전연령": "all ages",
}


def canonical(value: str | None, table: dict[str, str]) -> tuple[str, str | None]:
    """``(neutral value, None)``, ``("", reason)`` when the value is not one the table knows,
    ``("", None)`` when there is none. Reasons never quote the value: they are counted."""
    if not value:
        return "", None
    found = table.get(value.strip().lower())
    if found is None:
        return "", "is not one of the supported values"
    return found, None


# --- text formats --------------------------------------------------------------------------------


def tsv_field(value: str) -> str:
    """A tab-separated field a quote-aware reader (Google's, Python's csv) reads back as ``value``.

    A field starting with ``"`` would be read as a quoted one, and a tab or line break would split
    it: such a value is quoted with ``"`` doubled; any other is written as it is.
    """
    if value and (value[0] == '"' or "\t" in value or "\n" in value or "\r" in value):
        return '"' + value.replace('"', '""') + '"'
    return value


def tsv_line(values: Sequence[str]) -> str:
    """One tab-separated line of ``tsv_field`` values, ending in a line break."""
    line = "\t".join(values)
    # No value starts with '"' nor holds a line break or a tab (the count of tabs tells): then
    # tsv_field leaves every one as it is, and the joined line is the answer.
    if ('"' not in line and "\n" not in line and "\r" not in line
            and line.count("\t") == len(values) - 1):
        return line + "\n"
    return "\t".join(tsv_field(v) for v in values) + "\n"
