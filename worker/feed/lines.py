"""Channel lines built by PostgreSQL: one ``COPY … TO STDOUT`` per channel, its bytes straight to the file.

Python spent 40–55 µs per row and channel applying the rules; PostgreSQL builds the same line for a
row whose values it can vouch for (clean text within the limits, plain ASCII http(s) URLs, valid
prices…) and hands the row back to Python otherwise. Each output line is one of:

- the channel's finished line (what ``Channel.row`` would return, without its newline);
- ``\\x1d``: left out by the channel's policy (``excluded``);
- ``\\x1e{position}\\x1f{json array of the FeedProduct values}``: Python's turn — the rows a rule
  rejects, and the rare values (HTML entities, non-ASCII URLs, text to trim, …) whose rules are
  Python's. ``normalise`` + ``Channel.row`` decide, exactly as on the Python path.

The SQL below mirrors ``base``'s rules conservatively: when unsure it yields NULL, and a NULL
anywhere in a line makes the row Python's (``||`` propagates NULL). The differential test
(tests/worker/feed/test_lines.py) checks that both paths write the same bytes.

COPY runs in CSV mode with a delimiter and a quote character that no line holds (control
characters the text rules remove, and JSON escapes), so PostgreSQL writes each line verbatim.
"""

from __future__ import annotations

from typing import NamedTuple

from worker.feed.channels.base import LIST_SEP, FeedProduct

EXCLUDED = 0x1D
PYTHON = 0x1E
POSITION_END = b"\x1f"
# COPY (FORMAT csv) quotes a value only when it holds the delimiter, the quote, CR or LF.
COPY_OPTIONS = "FORMAT csv, DELIMITER E'\\x02', QUOTE E'\\x01'"

# Characters is_clean objects to (base._BAD_CHAR; PostgreSQL text holds no NUL nor surrogates).
_BAD = "\x01-\x1f\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufffe\uffff"
UNCLEAN_RE = f"[{_BAD}]|  |^ | $"
# base.strip_forbidden's set, then the whitespace str.split() knows that survives it.
FORBIDDEN_RE = "[\x01-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffe\uffff]"
OTHER_BAD_RE = f"[{_BAD}]"
SPACES_RE = "[\t\n\r \xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+"
# A URL check_url keeps as it is: printable ASCII only (anything else is Python's to judge).
URL_RE = "^[hH][tT][tT][pP][sS]?://[!-~]+$"
# Descriptions whose HTML the database strips as strip_html does: no script/style (nor any tag
# starting with an s, case-folded as Python's re does), no comment, no '&' html.unescape could
# decode. Tags then go as ``base._TAG``'s second branch.
HTML_HARD_RE = "<[sS\u017f]|<!--|&[^\t\n\f <&]"
TAG_RE = "<[A-Za-z/!][^>]*>"
URL_LIMIT = 2000


def lit(text: str) -> str:
    """A constant as an SQL string literal (standard_conforming_strings; our constants only)."""
    if "\x00" in text:
        raise ValueError("NUL in an SQL literal")
    return "'" + text.replace("'", "''") + "'"


def clean(x: str) -> str:
    """base.clean_text without HTML: forbidden characters out, whitespace runs to one space.

    Each step only when needed: a regexp_replace over a Unicode class costs PostgreSQL ~20 µs a
    description. ``x`` must be a column (it is repeated).
    """
    stripped = (
        f"CASE WHEN {x} ~ {lit(FORBIDDEN_RE)} THEN regexp_replace({x}, {lit(FORBIDDEN_RE)}, '',"
        f" 'g') ELSE {x} END"
    )
    unclean = (
        f"({x} ~ {lit(OTHER_BAD_RE)} OR strpos({x}, '  ') > 0 OR left({x}, 1) = ' '"
        f" OR right({x}, 1) = ' ')"
    )
    return (
        f"CASE WHEN NOT {unclean} THEN {x}"
        # Plain spaces only (HTML tags turned into spaces, most often): collapse just those.
        f" WHEN {x} !~ {lit(OTHER_BAD_RE)} THEN btrim(regexp_replace({x}, '  +', ' ', 'g'), ' ')"
        f" ELSE btrim(regexp_replace({stripped}, {lit(SPACES_RE)}, ' ', 'g'), ' ') END"
    )


def url(x: str) -> str:
    """base.check_url for a URL the database can vouch for ('' → ''), else NULL."""
    return (
        f"CASE WHEN {x} ~ {lit(URL_RE)} AND char_length({x}) <= {URL_LIMIT}"
        f" THEN replace({x}, ',', '%2C') END"
    )


def optional_url(x: str) -> str:
    """check_url(required=False) of an optional field: '' when absent, NULL when Python's."""
    return f"CASE WHEN coalesce({x}, '') = '' THEN '' ELSE {url(x)} END"


def within(x: str, limit: int) -> str:
    """A required text no longer than ``limit`` (trim_at_word would leave it alone), else NULL."""
    return f"CASE WHEN {x} <> '' AND char_length({x}) <= {limit} THEN {x} END"


def optional_within(x: str, limit: int) -> str:
    """An optional text: '' when absent, itself when within ``limit``, else NULL (Python trims)."""
    return f"CASE WHEN coalesce({x}, '') = '' THEN '' WHEN char_length({x}) <= {limit} THEN {x} END"


def xml(x: str) -> str:
    """base.xml_escape."""
    return f"replace(replace(replace({x}, '&', '&amp;'), '<', '&lt;'), '>', '&gt;')"


def image(channel: str) -> str:
    """Channel.image: the processed image when public and fit for ``channel``, else the shop's."""
    return (
        "CASE WHEN c.image_url <> '' AND (left(c.image_url, 8) = 'https://'"
        " OR left(c.image_url, 7) = 'http://')"
        f" AND NOT coalesce({lit(channel)} = ANY(string_to_array(c.unfit, ',')), false)"
        " THEN c.image_url ELSE c.image_link END"
    )


def extra_images(channel: str) -> str:
    """Channel.additional_images checked by check_url(required=False), joined by U+001F ('' for
    none), NULL when Python's."""
    return (
        f"CASE WHEN c.additional_image_urls <> '' AND ({image(channel)}) IS NOT DISTINCT FROM"
        " c.image_url THEN c.extra_urls ELSE c.extra_links END"
    )


def _extra_list(joined: str, array: str) -> str:
    # The first 10 non-empty URLs, commas encoded, joined by U+001F; NULL when any URL is one
    # check_url may drop. Most lists are short and plain: one regex over the joined list (which is
    # the stream's LIST_SEP-joined column), the array itself only otherwise.
    one = URL_RE[1:-1]
    return (
        f"CASE WHEN coalesce({joined}, '') = '' THEN ''"
        f" WHEN cardinality({array}) <= 10 AND char_length({joined}) <= {URL_LIMIT}"
        f" AND {joined} ~ {lit(f'^{one}(?:{LIST_SEP}{one})*$')} THEN replace({joined}, ',', '%2C')"
        f" ELSE (SELECT CASE WHEN bool_and(u ~ {lit(URL_RE)} AND char_length(u) <= {URL_LIMIT})"
        " IS NOT FALSE THEN array_to_string((array_agg(replace(u, ',', '%2C') ORDER BY o))[1:10],"
        f" {lit(LIST_SEP)}) END FROM unnest({array}) WITH ORDINALITY AS a(u, o) WHERE u <> '')"
        " END"
    )


def gtin(x: str) -> str:
    """google.clean_gtin for an ASCII value; NULL (Python's) for anything else."""
    digits = f"replace(replace({x}, ' ', ''), '-', '')"
    return (
        f"CASE WHEN coalesce({x}, '') = '' THEN '' WHEN {x} ~ '^[ -~]+$' THEN CASE WHEN"
        f" {digits} ~ '^[0-9]+$' AND char_length({digits}) IN (8, 12, 13, 14) THEN {digits}"
        " ELSE '' END END"
    )


def sale_price() -> str:
    """The sale price with its currency when positive and below the price, else ''."""
    return (
        "CASE WHEN c.sale_price <> '' AND c.sale_price::numeric > 0"
        " AND c.sale_price::numeric < c.price::numeric"
        " THEN c.sale_price || ' ' || c.currency ELSE '' END"
    )


def positive_price() -> str:
    """The price when above zero (else the row is Python's: it rejects it)."""
    return "CASE WHEN c.price::numeric > 0 THEN c.price END"


def product_id(limit: int) -> str:
    """check_id for an id that is clean and within ``limit``, else NULL."""
    return f"CASE WHEN c.id_clean AND char_length(c.product_id) <= {limit} THEN c.product_id END"


class LineSQL(NamedTuple):
    """A channel's line in SQL: NULL hands the row to Python.

    ``values`` are computed once per row over ``c`` (the stream's row and the shared values of
    ``middle_columns``); ``line`` and ``excluded`` read them, and ``c``'s columns, from ``v``.
    """

    line: str
    excluded: str = "false"  # a row the channel leaves out by policy
    middle: tuple[str, ...] = ()  # more shared per-row values over ``m`` (``… AS name``)
    values: tuple[str, ...] = ()  # the channel's values over ``c`` (``… AS name``)


def middle_columns() -> str:
    """The shared per-row values the channels' lines read, over ``m`` (computed once per row)."""
    text = ("title", "brand", "gtin", "mpn", "item_group_id", "product_type",
            "google_product_category", "naver_category")
    cols = [f"{clean('m.' + name)} AS {name}_c" for name in text]
    cols.append(f"CASE WHEN m.html_ok THEN {clean('m.description_s')} END AS description_c")
    cols.append(f"m.product_id <> '' AND m.product_id !~ {lit(UNCLEAN_RE)} AS id_clean")
    cols.append(f"{_extra_list('m.additional_image_urls', 'm.extra_urls_array')} AS extra_urls")
    cols.append(f"{_extra_list('m.additional_image_links', 'm.extra_links_array')} AS extra_links")
    return ",\n".join(cols)


def _inner_columns() -> str:
    # The description without its tags, once (clean() repeats its argument).
    stripped = (
        f"CASE WHEN strpos(r.description, '<') > 0 THEN regexp_replace(r.description,"
        f" {lit(TAG_RE)}, ' ', 'g') ELSE r.description END"
    )
    return (
        f"r.description <> '' AND r.description !~ {lit(HTML_HARD_RE)} AS html_ok,"
        f" {stripped} AS description_s"
    )


FIELDS = FeedProduct._fields
ROW_COLUMNS = (*FIELDS, "extra_urls_array", "extra_links_array")


def python_row() -> str:
    """The marker line that hands a row to Python: its position and its values as JSON."""
    values = ", ".join(f"v.{name}" for name in FIELDS)
    return f"E'\\x1e' || v.pos || E'\\x1f' || json_build_array({values})::text"


def as_values(exprs: dict[str, str], prefix: str) -> tuple[tuple[str, ...], dict[str, str]]:
    """``exprs`` as LineSQL.values named ``{prefix}{key}``, and each key's reference in ``v``."""
    return (
        tuple(f"({e}) AS {prefix}{k}" for k, e in exprs.items()),
        {k: f"v.{prefix}{k}" for k in exprs},
    )


# Markup written as U+0003 / U+0004 while a line is built, so that the values are escaped in one go
# (three replace() over the line instead of three per value), then turned into "<" and ">".
LT, GT = "\x03", "\x04"


def tag(name: str, x: str) -> str:
    """``<name>x</name>`` in placeholder markup, '' when x is '', NULL when x is NULL."""
    opening, closing = lit(f"{LT}{name}{GT}"), lit(f"{LT}/{name}{GT}")
    return f"CASE WHEN ({x}) = '' THEN '' ELSE {opening} || {x} || {closing} END"


def xml_line(marked: str) -> str:
    """A line built with ``tag``: its values escaped (base.xml_escape), then its markup restored.

    Values never hold the placeholders: the text rules remove control characters, and URLs, ids,
    prices and dates the database vouches for are printable.
    """
    return f"replace(replace({xml(marked)}, {lit(LT)}, '<'), {lit(GT)}, '>')"


def joined(values: list[str], sep: str) -> str:
    """The values joined by ``sep`` with ``||``: NULL when any is NULL (concat_ws would skip it)."""
    return f" || {lit(sep)} || ".join(f"({v})" for v in values)


def line_query(base: str, spec: LineSQL, *, delta: bool) -> str:
    """The COPY's SELECT over ``base`` (feed_query's text, arrays=True): one line per row."""
    middle = ",\n".join((middle_columns(), *spec.middle))
    # A gone product ("D") is only news to a summary; a summary takes only the changed rows.
    target = "c.change IS NOT NULL" if delta else "c.change IS DISTINCT FROM 'D'"
    values = "".join(f", {value}" for value in spec.values)
    # Fenced layers (a window function; OFFSET 0) so that each value is computed once per row:
    # the expressions over them name some of them several times.
    return (
        f"SELECT CASE WHEN {spec.excluded} THEN E'\\x1d' ELSE coalesce({spec.line},"
        f" {python_row()}) END"
        f" FROM (SELECT c.*{values} FROM (SELECT m.*, {middle} FROM ("
        f"SELECT r.*, row_number() OVER (ORDER BY r.product_id) AS pos, {_inner_columns()}"
        f" FROM ({base}) AS r({', '.join(ROW_COLUMNS)})) AS m ORDER BY m.product_id OFFSET 0) AS c"
        f" WHERE {target} ORDER BY c.product_id OFFSET 0) AS v ORDER BY v.product_id"
    )
