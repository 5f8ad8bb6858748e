"""The one redaction function: URLs and DSNs lose their user info and query string, whatever their
password holds; reprs and log lines that could carry them are redacted too."""

from __future__ import annotations

import io
import json
import logging as stdlib_logging
from urllib.parse import quote

import pytest
import structlog
from hypothesis import assume, given
from hypothesis import strategies as st

from worker.common import logging as catalog_logging
from worker.common.net import ResolvedURL
from worker.common.redact import redact
from worker.common.shops import Shop

PASSWORD = "Pa55-Secret-w0rd"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("https://shop:pw@cdn.example/a.jpg?access_token=t#frag", "https://***@cdn.example/a.jpg?***"),
        ("https://cdn.example/a.jpg?sig=abc", "https://cdn.example/a.jpg?***"),
        ("https://cdn.example/a.jpg#part", "https://cdn.example/a.jpg"),
        ("https://cdn.example:8443/img@2x.png", "https://cdn.example:8443/img@2x.png"),
        ("http://[::1]:8080/x@y", "http://[::1]:8080/x@y"),
        ("s3://bucket/prefix/key.json", "s3://bucket/prefix/key.json"),
        ("postgresql://catalog:p%ZZw@db:5432/catalog", "postgresql://***@db:5432/catalog"),
        ("postgresql://catalog:p@ss@db:5432/catalog", "postgresql://***@db:5432/catalog"),
        ("postgresql://catalog:pa/ss@db/catalog", "postgresql://***@db/catalog"),
        ("postgres://catalog@db/catalog?sslmode=require&password=x", "postgres://***@db/catalog?***"),
        ("host=db user=catalog password=s3cret dbname=catalog",
         "host=db user=catalog password=*** dbname=catalog"),
        ("host=db password = 'se cr\\'et' dbname=c", "host=db password = *** dbname=c"),
        ("DB_PASSWORD=hunter2 and token=abc", "DB_PASSWORD=*** and token=***"),
        ("connection to 'postgresql://u:pw@h/d' failed", "connection to 'postgresql://***@h/d' failed"),
        ("no secrets here: 3 rows, price=12.5", "no secrets here: 3 rows, price=12.5"),
        ("", ""),
    ],
)
def test_user_info_query_strings_and_passwords_are_hidden(text: str, expected: str) -> None:
    assert redact(text) == expected


# Any password a person might type: every printable character but white space.
passwords = st.text(
    st.characters(max_codepoint=0x2FF, exclude_categories=("Zs", "Zl", "Zp", "Cc", "Cs")),
    min_size=4, max_size=40,
)


@given(passwords)
def test_a_dsn_never_shows_its_password_however_it_is_written(password: str) -> None:
    template = "postgresql://catalog:{}@db.internal:5432/catalog"
    assume(password not in template.format(""))
    for text in (template.format(password), template.format(quote(password, safe=""))):
        shown = redact(f"could not connect with {text}: refused")
        assert password not in shown
        assert "db.internal:5432/catalog" in shown or "@" in password


@given(passwords)
def test_a_key_value_dsn_never_shows_its_password(password: str) -> None:
    escaped = password.replace("\\", "\\\\").replace("'", "\\'")
    text = f"host=db port=5432 user=catalog password='{escaped}' dbname=catalog"
    assume(password not in "host=db port=5432 user=catalog password='' dbname=catalog")
    assert password not in redact(text)


@given(passwords.filter(lambda p: not set(p) & set("/?#")))
def test_an_http_url_never_shows_its_password_or_query(password: str) -> None:
    url = f"https://shop:{password}@cdn.example/images/a.jpg?access_token={quote(password)}"
    assume(password not in "https://shop:@cdn.example/images/a.jpg?access_token=")
    shown = redact(url)
    assert password not in shown and quote(password) not in shown


def test_a_shop_repr_shows_neither_its_source_credentials_nor_its_whole_row() -> None:
    shop = Shop(
        id="s1", name="Shop", source_url=f"https://u:{PASSWORD}@shop.example/feed.json?key=k3y",
        format="json", currency="KRW", channels=("google",),
        mapping={"title": "{name}", "secret_field": "x" * 500},
    )
    text = repr(shop)
    assert PASSWORD not in text and "k3y" not in text
    assert "secret_field" not in text
    assert "https://***@shop.example/feed.json?***" in text


def test_a_resolved_url_repr_hides_credentials() -> None:
    resolved = ResolvedURL(
        url=f"https://u:{PASSWORD}@shop.example/feed?token=t0k", scheme="https",
        host="shop.example", port=443, target="/feed?token=t0k", addresses=(),
        username="u", password=PASSWORD,
    )
    assert PASSWORD not in repr(resolved) and "t0k" not in repr(resolved)


def _crash_with_secret_locals() -> None:
    shop = Shop(  # noqa: F841 -- a local variable a traceback with locals would print
        id="s1", name="Shop", source_url=f"https://u:{PASSWORD}@shop.example/feed.json",
        format="json", currency="KRW", channels=("google",),
    )
    dsn = f"postgresql://catalog:{PASSWORD}@db/catalog"  # noqa: F841
    raise RuntimeError(f"boom while reading https://u:{PASSWORD}@shop.example/feed.json")


@pytest.mark.parametrize("log_format", ["json", "console"])
def test_a_logged_traceback_has_no_locals_and_no_password(log_format: str) -> None:
    out = io.StringIO()
    catalog_logging.configure(log_format, stream=out)
    try:
        log = catalog_logging.get_logger("test")
        try:
            _crash_with_secret_locals()
        except RuntimeError:
            log.exception("task.crashed", url=f"https://u:{PASSWORD}@x.example/?t=1")
        # A library logging through the standard library goes through the same chain.
        stdlib_logging.getLogger("botocore.test").warning(
            "retrying postgresql://catalog:%s@db/catalog", PASSWORD
        )
    finally:
        structlog.reset_defaults()
        stdlib_logging.getLogger().handlers[:] = []
    text = out.getvalue()
    assert "task.crashed" in text and "_crash_with_secret_locals" in text
    assert "retrying postgresql://***@db/catalog" in text
    assert PASSWORD not in text
    if log_format == "json":
        event = json.loads(text.splitlines()[0])
        frames = event["exception"][0]["frames"]
        assert frames and all("locals" not in frame for frame in frames)
