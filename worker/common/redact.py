"""Redaction: the one function that hides credentials before a URL or DSN reaches a log, a message
or a row.

``redact(text)`` takes a URL, a libpq DSN (URI or ``key=value`` form), or a whole message that
quotes them, and returns it with every URL's user info and query string replaced by ``***`` and
every ``password=…`` value hidden. It never parses with a library that may refuse its input: a
password holding ``%ZZ``, an unencoded ``@`` or ``/`` is exactly what must be hidden.
"""

from __future__ import annotations

import re
import urllib.parse

MASK = "***"

# A URL inside free text: a scheme, "://", then anything up to white space (a password may hold
# quotes and brackets; a quote closing a quoted URL then goes with its path, harmlessly).
_URL = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*)://(?P<rest>\S*)")
# key=value secrets, as libpq, query strings and messages write them; a quoted value may hold
# spaces and escaped quotes (libpq's conninfo syntax).
_HIDDEN_KEYS = (
    r"(?:ssl)?pass(?:word|wd)?|pwd|secret|token|access_token|api_key|apikey|"
    r"aws_secret_access_key|x-amz-security-token|x-amz-signature|signature|sig"
)
_KEY_VALUE = re.compile(
    rf"(?P<key>(?<![A-Za-z0-9])(?:{_HIDDEN_KEYS}))(?P<eq>\s*=\s*)(?P<value>'(?:[^'\\]|\\.)*'?|\"(?:[^\"\\]|\\.)*\"?|\S+)",
    re.IGNORECASE,
)
_PORT = re.compile(r":\d+$")


def redact(text: str) -> str:
    """``text`` with the credentials and query strings of every URL and DSN in it hidden."""
    if not text:
        return text
    if "://" in text:
        text = _URL.sub(_redact_match, text)
    if "=" in text:
        text = _KEY_VALUE.sub(lambda m: f"{m['key']}{m['eq']}{MASK}", text)
    return text


_DSN_SCHEMES = frozenset({"postgres", "postgresql"})


def _redact_match(match: re.Match[str]) -> str:
    scheme = match["scheme"]
    return f"{scheme}://{_redact_rest(match['rest'], dsn=scheme.lower() in _DSN_SCHEMES)}"


def _redact_rest(rest: str, *, dsn: bool = False) -> str:
    """What follows ``scheme://``: user info and query string replaced, host and path kept."""
    end = _authority_end(rest)
    authority = rest[:end]
    at = authority.rfind("@")
    if at >= 0:
        host, tail = authority[at + 1 :], rest[end:]
        userinfo = True
    elif (dsn or _cut_password(authority)) and "@" in rest[end:]:
        # "user:pa/ss@host" (an unencoded / ? or # in a password) ends the authority early: the
        # user info reaches to the last "@" (a database name has none; an image path may, and
        # then too much is hidden, the safe side of this guess).
        last = rest.rfind("@")
        host, tail = "", rest[last + 1 :]
        end2 = _authority_end(tail)
        host, tail = tail[:end2], tail[end2:]
        userinfo = True
    else:
        host, tail = authority, rest[end:]
        userinfo = False
    query = min((i for i in (tail.find("?"), tail.find("#")) if i >= 0), default=-1)
    if query >= 0:
        tail = tail[:query] + ("?" + MASK if tail[query] == "?" else "")
    return (f"{MASK}@" if userinfo else "") + host + tail


def _authority_end(rest: str) -> int:
    return min((i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i >= 0),
               default=len(rest))


def _cut_password(authority: str) -> bool:
    """Whether ``authority`` looks like ``user:pass`` cut short, rather than ``host[:port]``."""
    if authority.startswith("[") or ":" not in authority:
        return False
    return _PORT.search(authority) is None


__all__ = ["MASK", "redact"]


def dsn_secrets(database_url: str) -> list[str]:
    """The fragments of a DSN that must never be shown: its password as written, decoded, and the
    pieces libpq may take for a host when the password holds an unencoded ``@`` or ``:``."""
    found: list[str] = []
    text = database_url.strip()
    if "://" in text:
        rest = text.split("://", 1)[1]
        # The last '@' ends the user info even when the password holds an unencoded '@'.
        at = rest.rfind("@")
        if at >= 0 and ":" in rest[:at]:
            raw = rest[:at].split(":", 1)[1]
            found += [raw, urllib.parse.unquote(raw)]
            found += [piece for piece in re.split(r"[@:/]", raw) if len(piece) >= 3]
            # libpq takes what follows an unencoded '@' for the host: hide it with its '@'.
            found += [piece + "@" for piece in raw.split("@")[1:] if piece]
    for match in re.finditer(r"password\s*=\s*('(?:[^'\\]|\\.)*'|[^&\s]+)", text):
        value = match.group(1).strip("'")
        found += [value, urllib.parse.unquote(value)]
    return sorted({f for f in found if f}, key=len, reverse=True)


def scrub(message: str, database_url: str) -> str:
    """``message`` redacted, and every fragment of this DSN's password in it replaced by ``***``:
    libpq may quote a piece of a password that holds an unencoded ``@`` as the host name, where no
    pattern can recognise it."""
    for secret in dsn_secrets(database_url):
        message = message.replace(secret, MASK)
    return redact(message)
