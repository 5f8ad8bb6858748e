"""Channel lines built by PostgreSQL: one ``COPY … TO STDOUT`` for all of a shop's channels.

Python spent 40–55 µs per row and channel applying the rules; PostgreSQL builds the same line for a
row whose values it can vouch for (clean text within the limits, plain ASCII http(s) URLs, valid
prices…) and hands the row back to Python otherwise. The COPY yields one row per product and one
field per channel (``lines_query``); each field is one of:

- the channel's finished line (what ``Channel.row`` would return, without its newline);
- ``\\x1c``: not this channel's row (a gone product is only a summary's; a summary takes only
  the changed rows);
- ``\\x1d``: left out by the channel's policy (``excluded``);
- ``\\x1e{position}\\x1f{json array of the FeedProduct values}``: Python's turn — the rows a rule
  rejects, and the rare values (HTML entities, non-ASCII URLs, text to trim, …) whose rules are
  Python's. ``normalise`` + ``Channel.row`` decide, exactly as on the Python path.

The shared values (the text cleaned, the URLs checked, the prices compared) are computed once per
row for every channel, and a value two channels compute alike (google / google_tsv, naver /
naver_summary) once: a shop with five channels costs PostgreSQL ~70 µs a row where five COPYs, one
per channel, cost ~160 (bench/results-feed.md). Shortcuts keep the common row off the regular
expressions, which are what PostgreSQL spends most on: one scan decides that a row's short text
fields are all clean, and a URL is checked without the case-folding pattern.

The SQL below mirrors ``base``'s rules conservatively: when unsure it yields NULL, and a NULL
anywhere in a line makes the row Python's. The differential test (tests/worker/feed/test_lines.py)
checks that both paths write the same bytes.

COPY runs in CSV mode with a delimiter and a quote character that no line holds (control
characters the text rules remove, and JSON escapes), so PostgreSQL writes each line verbatim and
the delimiter separates the channels' fields.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import NamedTuple

from worker.feed.channels.base import LIST_SEP, FeedProduct

SKIP = 0x1C
EXCLUDED = 0x1D
PYTHON = 0x1E
POSITION_END = b"\x1f"
FIELD_SEP = b"\x02"  # between the channels' fields of a row (the COPY's delimiter)
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
    description. ``x`` is repeated: a column, or an expression only where rows are rare.
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
    """base.check_url for a URL the database can vouch for ('' → ''), else NULL.

    ``x`` must be a column (it is repeated). The usual URL (lowercase ``http(s)://``, printable
    ASCII) is decided without the anchored, case-folding regular expression, which costs
    PostgreSQL ~1 µs a URL; ``[^!-~]`` is a cheap scan.
    """
    fast = (
        f"{x} !~ '[^!-~]' AND octet_length({x}) <= {URL_LIMIT} AND (starts_with({x}, 'https://')"
        f" AND octet_length({x}) > 8 OR starts_with({x}, 'http://') AND octet_length({x}) > 7)"
    )
    return (
        f"CASE WHEN {fast} THEN replace({x}, ',', '%2C')"
        f" WHEN {x} ~ {lit(URL_RE)} AND char_length({x}) <= {URL_LIMIT}"
        f" THEN replace({x}, ',', '%2C') END"
    )


def within(x: str, limit: int) -> str:
    """A required text no longer than ``limit`` (trim_at_word would leave it alone), else NULL."""
    return f"CASE WHEN {x} <> '' AND char_length({x}) <= {limit} THEN {x} END"


def optional_within(x: str, limit: int) -> str:
    """An optional text: '' when absent, itself when within ``limit``, else NULL (Python trims)."""
    return f"CASE WHEN coalesce({x}, '') = '' THEN '' WHEN char_length({x}) <= {limit} THEN {x} END"


def xml(x: str) -> str:
    """base.xml_escape."""
    return f"replace(replace(replace({x}, '&', '&amp;'), '<', '&lt;'), '>', '&gt;')"


def _processed_image(channel: str) -> str:
    # Channel.image's condition for the processed image.
    return (
        "c.image_url <> '' AND (starts_with(c.image_url, 'https://')"
        " OR starts_with(c.image_url, 'http://'))"
        f" AND NOT coalesce({lit(channel)} = ANY(string_to_array(c.unfit, ',')), false)"
    )


def image(channel: str) -> str:
    """Channel.image: the processed image when public and fit for ``channel``, else the shop's."""
    return f"CASE WHEN {_processed_image(channel)} THEN c.image_url ELSE c.image_link END"


def image_link(channel: str) -> str:
    """check_url(Channel.image(p)) for ``channel``: the shared columns checked once per row."""
    return f"CASE WHEN {_processed_image(channel)} THEN c.image_url_u ELSE c.image_link_u END"


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
    return "CASE WHEN c.sale_lower THEN c.sale_price || ' ' || c.currency ELSE '' END"


def positive_price() -> str:
    """The price when above zero (else the row is Python's: it rejects it)."""
    return "CASE WHEN c.price_pos THEN c.price END"


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


TEXT_FIELDS = ("title", "brand", "gtin", "mpn", "item_group_id", "product_type",
               "google_product_category", "naver_category")
# A row whose short text fields and id are all clean (is_clean) skips clean() field by field: one
# scan of them joined by '|' (a '|' next to a space is only a false alarm: the careful path then).
PLAIN_RE = f"[{_BAD}]|  |\\| | \\|"
# A description whose HTML is simple (HTML_HARD_RE) and that holds no character clean() removes:
# once its tags are spaces, only runs of spaces are left to collapse.
DESCRIPTION_PLAIN_RE = f"{HTML_HARD_RE}|[{_BAD}]"
# In such a description: a run of spaces and tags holding a tag, or of two spaces or more.
RUN_RE = f" *(?:{TAG_RE} *)+|  +"


def middle_columns() -> str:
    """The shared per-row values the channels' lines read, over ``m`` (computed once per row)."""
    cols = [f"CASE WHEN m.plain THEN m.{name} ELSE {clean('m.' + name)} END AS {name}_c"
            for name in TEXT_FIELDS]
    # A plain description (DESCRIPTION_PLAIN_RE): every run of spaces and tags that holds a tag
    # or two spaces becomes one space — what strip_html (a tag → a space) then one_line do —
    # in one pass; no tag and no double space: the ends trimmed only.
    d = "m.description"
    plain = (
        f"CASE WHEN strpos({d}, '<') = 0 AND strpos({d}, '  ') = 0 THEN btrim({d}, ' ')"
        f" ELSE btrim(regexp_replace({d}, {lit(RUN_RE)}, ' ', 'g'), ' ') END"
    )
    stripped = (
        f"CASE WHEN strpos({d}, '<') > 0 THEN regexp_replace({d}, {lit(TAG_RE)}, ' ', 'g')"
        f" ELSE {d} END"
    )
    cols.append(
        f"CASE WHEN m.description_plain THEN {plain} WHEN {d} <> ''"
        f" AND {d} !~ {lit(HTML_HARD_RE)} THEN {clean(f'({stripped})')} END AS description_c"
    )
    cols.append(
        f"m.product_id <> '' AND (m.plain OR m.product_id !~ {lit(UNCLEAN_RE)}) AS id_clean"
    )
    cols.append(f"{_extra_list('m.additional_image_urls', 'm.extra_urls_array')} AS extra_urls")
    cols.append(f"{_extra_list('m.additional_image_links', 'm.extra_links_array')} AS extra_links")
    cols.append(f"{url('m.link')} AS link_u")
    cols.append(
        f"CASE WHEN coalesce(m.mobile_link, '') = '' THEN '' ELSE {url('m.mobile_link')} END"
        " AS mobile_link_u"
    )
    cols.append(f"{url('m.image_url')} AS image_url_u")
    cols.append(f"{url('m.image_link')} AS image_link_u")
    cols.append("m.price::numeric > 0 AS price_pos")
    cols.append(
        "coalesce(m.sale_price <> '' AND m.sale_price::numeric > 0"
        " AND m.sale_price::numeric < m.price::numeric, false) AS sale_lower"
    )
    cols.append(f"CASE WHEN m.plain THEN {gtin('m.gtin')} ELSE {gtin(clean('m.gtin'))} END AS gtin_v")
    return ",\n".join(cols)


def _inner_columns() -> str:
    joined = " || '|' || ".join(f"coalesce(r.{name}, '')" for name in (*TEXT_FIELDS, "product_id"))
    return (
        f"('|' || {joined} || '|') !~ {lit(PLAIN_RE)} AS plain,"
        f" r.description <> '' AND r.description !~ {lit(DESCRIPTION_PLAIN_RE)}"
        " AS description_plain"
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


class Text(str):
    """A constant piece of a line (``concat_line``), as opposed to an SQL expression."""


def concat_line(checked: list[str], parts: list[str]) -> str:
    """``parts`` in one concat() — ``Text`` pieces as literals (adjacent ones merged), the others
    SQL expressions — NULL when any of ``checked`` (the values the line reads) is NULL.

    One concat() instead of a chain of ``||``: each ``||`` copies the line built so far.
    """
    merged: list[str] = []
    literal = ""
    for part in parts:
        if isinstance(part, Text):
            literal += part
            continue
        if literal:
            merged.append(lit(literal))
            literal = ""
        merged.append(part)
    if literal:
        merged.append(lit(literal))
    return f"CASE WHEN num_nulls({', '.join(checked)}) = 0 THEN concat({', '.join(merged)}) END"


def joined(values: list[str], sep: str) -> str:
    """The values joined by ``sep``: NULL when any is NULL (concat_ws would skip it)."""
    parts: list[str] = []
    for i, value in enumerate(values):
        if i:
            parts.append(Text(sep))
        parts.append(Text("") if value == "''" else value)
    return concat_line([v for v in values if v != "''"], parts)


def _shared_values(
    specs: Sequence[tuple[LineSQL, bool]],
) -> tuple[list[tuple[LineSQL, bool]], list[str]]:
    """The channels' values, each expression computed once: a channel whose value is another's
    (google and google_tsv, naver and naver_summary share most) reads the other's column."""
    seen: dict[str, str] = {}  # expression -> column name
    columns: list[str] = []
    out = []
    for spec, delta in specs:
        line, excluded = spec.line, spec.excluded
        for value in spec.values:
            expr, _, name = value.rpartition(" AS ")
            first = seen.setdefault(expr, name)
            if first == name:
                columns.append(value)
            else:
                ref = re.compile(rf"\bv\.{re.escape(name)}\b")
                line, excluded = ref.sub(f"v.{first}", line), ref.sub(f"v.{first}", excluded)
        out.append((spec._replace(line=line, excluded=excluded, values=()), delta))
    return out, list(dict.fromkeys(columns))


def lines_query(base: str, specs: Sequence[tuple[LineSQL, bool]]) -> str:
    """The COPY's SELECT over ``base`` (feed_query's text, arrays=True): one row per product, one
    field per channel (``specs``: each channel's LineSQL and whether it is a delta channel).

    The shared values are computed once per row for all channels; a field is the channel's line,
    a marker (``EXCLUDED``, ``PYTHON``), or ``SKIP`` for a row that is not the channel's (a gone
    product is only news to a summary; a summary takes only the changed rows).
    """
    middle = ",\n".join(dict.fromkeys((middle_columns(), *(m for s, _ in specs for m in s.middle))))
    specs, columns = _shared_values(specs)
    values = "".join(f", {value}" for value in columns)
    full = "c.change IS DISTINCT FROM 'D'"
    changed = "c.change IS NOT NULL"
    kinds = {delta for _, delta in specs}
    target = changed if kinds == {True} else full if kinds == {False} else "true"
    fields = []
    for spec, delta in specs:
        field = f"coalesce({spec.line}, {python_row()})"
        if spec.excluded != "false":
            field = f"CASE WHEN {spec.excluded} THEN E'\\x1d' ELSE {field} END"
        if len(kinds) > 1:
            mine = (changed if delta else full).replace("c.", "v.")
            field = f"CASE WHEN NOT ({mine}) THEN E'\\x1c' ELSE {field} END"
        fields.append(field)
    # Fenced layers (a window function; OFFSET 0) so that each value is computed once per row:
    # the expressions over them name some of them several times.
    return (
        f"SELECT {', '.join(fields)}"
        f" FROM (SELECT c.*{values} FROM (SELECT m.*, {middle} FROM ("
        f"SELECT r.*, row_number() OVER (ORDER BY r.product_id) AS pos, {_inner_columns()}"
        f" FROM ({base}) AS r({', '.join(ROW_COLUMNS)})) AS m ORDER BY m.product_id OFFSET 0) AS c"
        f" WHERE {target} ORDER BY c.product_id OFFSET 0) AS v ORDER BY v.product_id"
    )
