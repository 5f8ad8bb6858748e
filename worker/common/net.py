"""The address guard and the guarded, streaming HTTP fetch for shop-supplied URLs (collect, images).

Every URL a shop gives us (and every redirect hop) is resolved once, every resolved address is
checked against the guard, and the connection goes to the checked address itself: a DNS server
that answers differently the second time (rebinding) never gets a second question.
"""

from __future__ import annotations

import base64
import email.utils
import functools
import io
import ipaddress
import socket
import ssl
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote, urljoin, urlsplit

import structlog
import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)

from worker.common.errors import CatalogError, FatalError, TransientError, backoff_delay
from worker.common.redact import redact as redact_url  # the one redaction function
from worker.common.settings import Network

log = structlog.get_logger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

SCHEMES = {"http": 80, "https": 443}
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# The longest wait a Retry-After may impose on us; a server asking for more gets this.
RETRY_AFTER_CAP = 30.0
_PATH_SAFE = "/%:@!$&'()*+,;=~?[]-._"
USER_AGENT = "catalog-batch/0.1 (+feed collector)"

# ---------------------------------------------------------------------------------------------
# Errors: one class per outcome, so that images can record each image's outcome by class.
# ---------------------------------------------------------------------------------------------


class FetchError(CatalogError):
    """A fetch failed; ``url`` is the URL (redacted) and ``outcome`` a short name for counting."""

    outcome = "error"

    def __init__(self, message: str, *, url: str | None = None) -> None:
        super().__init__(message)
        self.url = url


class BadURL(FetchError, FatalError):
    """The URL cannot be fetched as written: unsupported scheme, no host, bad port."""

    outcome = "bad_url"


class BlockedAddress(FetchError, FatalError):
    """A URL (or a redirect hop) reaches a non-public address that is not explicitly allowed."""

    outcome = "blocked"


class TooManyRedirects(FetchError, FatalError):
    """More redirects than ``max_redirects``, or a redirect without a usable Location."""

    outcome = "too_many_redirects"


class HttpStatusError(FetchError, FatalError):
    """The server answered with a 4xx other than 429 (or another status we cannot use)."""

    outcome = "http_status"

    def __init__(self, message: str, *, url: str | None = None, status: int) -> None:
        super().__init__(message, url=url)
        self.status = status


class TooLarge(FetchError, FatalError):
    """The body is larger than ``max_bytes`` (by Content-Length, or while streaming)."""

    outcome = "too_large"


class TLSFailure(FetchError, FatalError):
    """The TLS handshake failed: certificate not valid for the host name, expired, untrusted."""

    outcome = "tls"


class FetchTimeout(FetchError, TransientError):
    """Connecting or reading timed out (after the retries, when there were any left)."""

    outcome = "timeout"


class TransientHttpError(FetchError, TransientError):
    """5xx or 429 after every retry; ``status`` is the last status seen."""

    outcome = "http_transient"

    def __init__(self, message: str, *, url: str | None = None, status: int) -> None:
        super().__init__(message, url=url)
        self.status = status


class FetchConnectionError(FetchError, TransientError):
    """The connection could not be made, or broke (refused, reset, truncated body, DNS hiccup)."""

    outcome = "connection"


# ---------------------------------------------------------------------------------------------
# The address guard: pure functions, tested by the thousand.
# ---------------------------------------------------------------------------------------------

_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
_THIS_NETWORK = ipaddress.IPv4Network("0.0.0.0/8")
# IANA special-purpose ranges named here, not left to the ipaddress module, whose idea of
# "global" changes between Python versions (3.11 calls 192.0.0.8 global).
_SPECIAL = tuple(
    ipaddress.ip_network(n)
    for n in (
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24",  # documentation
        "192.88.99.0/24",  # deprecated 6to4 relay anycast
        "198.18.0.0/15",  # benchmarking
        "100::/64",  # discard-only
        "2001::/23",  # IETF protocol assignments (Teredo is unwrapped before this)
        "2001:db8::/32", "3fff::/20",  # documentation
        "5f00::/16",  # SRv6 SIDs
    )
)
# RFC 6052's well-known prefix (always /96) and RFC 8215's local-use prefix, inside which an
# operator picks a /48, /56, /64 or /96 we cannot know: every one of those readings is checked.
_NAT64_WELL_KNOWN = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL_USE = ipaddress.IPv6Network("64:ff9b:1::/48")
_NAT64_LOCAL_USE_LENGTHS = (48, 56, 64, 96)
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
_ZERO_V4 = ipaddress.IPv4Address(0)

# RFC 6052 section 2.2: where the four IPv4 bytes sit for each prefix length. Byte 8 (bits 64–71,
# the "u" octet) is never part of the address: the bytes on either side of it are.
_NAT64_LAYOUT: dict[int, tuple[slice, ...]] = {
    32: (slice(4, 8),),
    40: (slice(5, 8), slice(9, 10)),
    48: (slice(6, 8), slice(9, 11)),
    56: (slice(7, 8), slice(9, 12)),
    64: (slice(9, 13),),
    96: (slice(12, 16),),
}


def nat64_ipv4(address: ipaddress.IPv6Address, prefix_length: int) -> ipaddress.IPv4Address:
    """The IPv4 address embedded in ``address`` under an RFC 6052 prefix of ``prefix_length``."""
    try:
        layout = _NAT64_LAYOUT[prefix_length]
    except KeyError:
        raise ValueError(
            f"RFC 6052 defines prefix lengths 32, 40, 48, 56, 64 and 96, not {prefix_length}"
        ) from None
    packed = address.packed
    return ipaddress.IPv4Address(b"".join(packed[part] for part in layout))


def nat64_candidates(address: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, ...]:
    """Every IPv4 address a NAT64 translator might send ``address`` to (none outside NAT64)."""
    if address in _NAT64_WELL_KNOWN:
        return (nat64_ipv4(address, 96),)
    if address in _NAT64_LOCAL_USE:
        # 0.0.0.0 is what one length's zero padding reads as under another, not a destination.
        found = (nat64_ipv4(address, n) for n in _NAT64_LOCAL_USE_LENGTHS)
        return tuple(dict.fromkeys(a for a in found if a != _ZERO_V4)) or (_ZERO_V4,)
    return ()


def embedded_ipv4_all(address: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, ...]:
    """Every IPv4 address an IPv6 address carries (mapped, 6to4, Teredo, NAT64, compatible)."""
    if address.ipv4_mapped is not None:
        return (address.ipv4_mapped,)
    if address.sixtofour is not None:
        return (address.sixtofour,)
    if address.teredo is not None:
        # The client's address is the one traffic ends at.
        return (address.teredo[1],)
    nat64 = nat64_candidates(address)
    if nat64:
        return nat64
    if address in _IPV4_COMPATIBLE and int(address) > 1:
        return (ipaddress.IPv4Address(address.packed[-4:]),)
    return ()


def _classify_plain(address: IPAddress) -> str | None:
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local (the instance metadata service lives here)"
    if address.is_multicast:
        return "multicast"
    if isinstance(address, ipaddress.IPv4Address):
        if address in _CGNAT:
            return "carrier-grade NAT (100.64.0.0/10)"
        if address in _THIS_NETWORK:
            return "'this network' (0.0.0.0/8)"
    if address.is_reserved or any(
        address.version == n.version and address in n for n in _SPECIAL
    ):
        return "reserved"
    if address.is_private:
        return "private"
    if isinstance(address, ipaddress.IPv6Address) and address.is_site_local:
        return "site-local"
    if not address.is_global:
        return "not globally routable"
    return None


def classify_address(address: IPAddress) -> str | None:
    """Why ``address`` is not a public address (e.g. ``"loopback"``), or None when it is public."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id:
            return "scoped (zone index)"
        inner = embedded_ipv4_all(address)
        for candidate in inner:
            reason = _classify_plain(candidate)
            if reason is not None:
                return f"{reason}, embedded in IPv6 as {candidate}"
        if inner:
            # 6to4 and Teredo prefixes themselves are non-global; what matters is the inner address.
            return None
    return _classify_plain(address)


def _in_allowed(address: IPAddress, allow: tuple[Network, ...]) -> bool:
    def allowed(candidate: IPAddress) -> bool:
        return any(candidate.version == n.version and candidate in n for n in allow)

    if allowed(address):
        return True
    # An address wrapping IPv4 is allowed when every IPv4 address it may reach is.
    inner = embedded_ipv4_all(address) if isinstance(address, ipaddress.IPv6Address) else ()
    return bool(inner) and all(allowed(candidate) for candidate in inner)


def blocked_reason(address: IPAddress, allow: tuple[Network, ...] = ()) -> str | None:
    """Why the guard refuses ``address``; None when it is public or in an allowed network."""
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
        # A zone index names an interface of this machine: no allowance covers that.
        return "scoped (zone index)"
    if _in_allowed(address, allow):
        return None
    return classify_address(address)


# ---------------------------------------------------------------------------------------------
# check_url: parse, resolve once, guard every address.
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResolvedURL:
    """A URL that passed the guard, with the addresses it resolved to (connect to these only)."""

    url: str
    scheme: str
    host: str  # the name as sent in Host and SNI (IDNA-encoded ASCII), without brackets
    port: int
    target: str  # path and query, as sent in the request line
    addresses: tuple[IPAddress, ...]
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        # A traceback or a debugger may print this: never the credentials or the query string.
        return (
            f"ResolvedURL(url={redact_url(self.url)!r}, host={self.host!r}, port={self.port}, "
            f"addresses={self.addresses!r})"
        )

    @property
    def host_header(self) -> str:
        """The Host header: the name, with the port when it is not the scheme's default."""
        name = f"[{self.host}]" if ":" in self.host else self.host
        return name if self.port == SCHEMES[self.scheme] else f"{name}:{self.port}"

    @property
    def origin(self) -> tuple[str, str, int]:
        """Scheme, host and port: credentials never follow a redirect to another origin."""
        return (self.scheme, self.host, self.port)


def _parse(url: str) -> tuple[str, str, int, str, str | None, str | None]:
    shown = redact_url(url)
    if any(ch in url for ch in "\r\n\t\x00"):
        raise BadURL(f"URL {shown!r} contains control characters: fix the shop's URL", url=shown)
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise BadURL(
            f"URL {shown!r} cannot be parsed ({exc}): fix the shop's URL", url=shown
        ) from exc
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise BadURL(
            f"URL {shown!r} has scheme {parts.scheme or '(none)'!r}: only http and https can be "
            "fetched; fix the shop's URL",
            url=shown,
        )
    hostname = parts.hostname
    if not hostname:
        raise BadURL(f"URL {shown!r} names no host: fix the shop's URL", url=shown)
    try:
        host = hostname.encode("idna").decode("ascii") if not hostname.isascii() else hostname
    except UnicodeError as exc:
        raise BadURL(f"URL {shown!r} has an invalid host name ({exc})", url=shown) from exc
    # Shops write spaces and Korean file names into image URLs; send them percent-encoded as a
    # browser would (existing %XX escapes are kept).
    target = quote(parts.path or "/", safe=_PATH_SAFE)
    if parts.query:
        target = f"{target}?{quote(parts.query, safe=_PATH_SAFE)}"
    username = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    return scheme, host, port or SCHEMES[scheme], target, username, password


def _resolve(host: str, port: int, shown: str) -> tuple[IPAddress, ...]:
    try:
        # Looked up through the module attribute so that tests can stand in for the resolver.
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        if exc.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)):
            raise FetchConnectionError(
                f"host {host!r} of {shown} does not resolve ({exc.strerror}): check the shop's "
                "URL (treated as transient in case the name server hiccuped)",
                url=shown,
            ) from exc
        raise FetchConnectionError(
            f"host {host!r} of {shown} could not be resolved ({exc.strerror})", url=shown
        ) from exc
    addresses: list[IPAddress] = []
    for family, _type, _proto, _canon, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        raw = str(sockaddr[0])
        plain, _, zone = raw.partition("%")
        address = ipaddress.ip_address(plain)
        scope = sockaddr[3] if family == socket.AF_INET6 and len(sockaddr) >= 4 else 0
        if family == socket.AF_INET6 and (scope or zone):
            # A scope id means a link-local zone; keep it visible to the guard.
            address = ipaddress.IPv6Address(f"{address}%{scope or zone}")
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise FetchConnectionError(f"host {host!r} of {shown} has no IP address", url=shown)
    return tuple(addresses)


def check_url(url: str, allow: tuple[Network, ...] = ()) -> ResolvedURL:
    """Parse ``url``, resolve its host once; refuse it if ANY address is non-public, unallowed."""
    scheme, host, port, target, username, password = _parse(url)
    shown = redact_url(url)
    addresses = _resolve(host, port, shown)
    for address in addresses:
        reason = blocked_reason(address, allow)
        if reason is not None:
            raise BlockedAddress(
                f"refused to fetch {shown}: host {host!r} resolves to {address}, which is "
                f"{reason}; shop URLs may only reach public addresses (to allow a network for "
                "tests or the demo, set FETCH_ALLOW_NETWORKS, e.g. 127.0.0.0/8)",
                url=shown,
            )
    return ResolvedURL(
        url=url,
        scheme=scheme,
        host=host,
        port=port,
        target=target,
        addresses=addresses,
        username=username,
        password=password,
    )


# ---------------------------------------------------------------------------------------------
# The response: a streaming, binary, read-only file object.
# ---------------------------------------------------------------------------------------------


class FetchResponse(io.RawIOBase):
    """The body of a fetched URL as a binary file object that streams from the socket."""

    def __init__(
        self,
        raw: urllib3.BaseHTTPResponse | None,
        *,
        pool: urllib3.HTTPConnectionPool | None = None,
        status: int,
        url: str,
        max_bytes: int | None,
        read_timeout: float,
        deadline: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self._deadline = deadline
        self._clock = clock
        self._raw = raw
        self._pool = pool
        self.status = status
        self.url = url
        self._shown = redact_url(url)
        headers = raw.headers if raw is not None else {}
        self.etag: str | None = headers.get("ETag")
        self.last_modified: str | None = headers.get("Last-Modified")
        self.content_type: str | None = headers.get("Content-Type")
        self.content_encoding: str | None = headers.get("Content-Encoding")
        length = headers.get("Content-Length")
        self.content_length: int | None = int(length) if length and length.isdigit() else None
        self.bytes_read = 0
        self._max_bytes = max_bytes
        self._read_timeout = read_timeout
        self._eof = raw is None

    @property
    def name(self) -> str:
        """The URL (password hidden): what gzip and io.TextIOWrapper show in their messages."""
        return self._shown

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        """Read up to ``len(buffer)`` bytes of the body into ``buffer``; 0 at the end."""
        if self.closed:
            raise ValueError("I/O operation on a closed FetchResponse")
        view = memoryview(buffer).cast("B")
        if self._eof or len(view) == 0:
            return 0
        want = len(view)
        if self._max_bytes is not None:
            # One byte past the limit is enough to know the body is too large.
            want = min(want, self._max_bytes - self.bytes_read + 1)
        assert self._raw is not None
        try:
            if self._deadline is None:
                chunk = self._raw.read(want, decode_content=False)
            else:
                # read() would wait for all ``want`` bytes, a byte at a time if the server drips
                # them; read1() returns what one receive brings, and the socket waits no longer
                # than the time left, so the total limit holds whatever the server's pace.
                self._bound_socket_wait()
                chunk = self._raw.read1(want, decode_content=False)
        except ReadTimeoutError as exc:
            if self._deadline is not None and self._clock() > self._deadline - 0.01:
                raise self._past_deadline() from exc
            raise FetchTimeout(
                f"reading {self._shown} stalled for {self._read_timeout:g}s after "
                f"{self.bytes_read} bytes: the server stopped sending; a later attempt may succeed",
                url=self._shown,
            ) from exc
        except (ProtocolError, HTTPError, OSError) as exc:
            expected = f" of {self.content_length}" if self.content_length is not None else ""
            raise FetchConnectionError(
                f"the body of {self._shown} broke off after {self.bytes_read}{expected} bytes "
                f"({exc}); a later attempt may succeed",
                url=self._shown,
            ) from exc
        if not chunk:
            self._eof = True
            return 0
        if self._max_bytes is not None and self.bytes_read + len(chunk) > self._max_bytes:
            raise TooLarge(
                f"{self._shown} is larger than the limit of {self._max_bytes} bytes (stopped "
                f"after {self.bytes_read + len(chunk)}): raise the limit or ask the shop for a "
                "smaller file",
                url=self._shown,
            )
        view[: len(chunk)] = chunk
        self.bytes_read += len(chunk)
        return len(chunk)

    def _past_deadline(self) -> FetchTimeout:
        return FetchTimeout(
            f"fetching {self._shown} took longer than its total time limit (stopped after "
            f"{self.bytes_read} bytes): the server sends too slowly; a later attempt may succeed",
            url=self._shown,
        )

    def _bound_socket_wait(self) -> None:
        assert self._deadline is not None
        remaining = self._deadline - self._clock()
        if remaining < 0:
            raise self._past_deadline()
        connection = getattr(self._raw, "connection", None)
        sock = getattr(connection, "sock", None)
        if sock is not None:
            wait = min(self._read_timeout, remaining) if self._read_timeout else remaining
            sock.settimeout(max(wait, 0.001))

    def read1(self, size: int = -1) -> bytes:
        """One read of at most ``size`` bytes (lets io.TextIOWrapper sit directly on this)."""
        return self.read(size if size >= 0 else io.DEFAULT_BUFFER_SIZE) or b""

    def close(self) -> None:
        if not self.closed and self._raw is not None:
            _discard(self._raw, self._pool)
        super().close()


# ---------------------------------------------------------------------------------------------
# fetch
# ---------------------------------------------------------------------------------------------


def _retry_after(value: str | None, cap: float) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), cap)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, min((when - datetime.now(UTC)).total_seconds(), cap))


class FetchSession:
    """Keeps connections open between fetches (images: many URLs on one CDN); thread-safe.

    Pools are keyed by the checked IP *and* the host name, so pinning holds: a session never
    sends a request for one name over a connection opened for another. Use as a context manager,
    or call ``close()``; pass it to ``fetch(..., session=...)``.
    """

    def __init__(self, *, max_hosts: int = 16, connections_per_host: int = 8) -> None:
        self._pools: OrderedDict[tuple[Any, ...], urllib3.HTTPConnectionPool] = OrderedDict()
        self._lock = threading.Lock()
        self._max_hosts = max_hosts
        self._per_host = connections_per_host
        self._closed = False

    def pool_for(
        self,
        resolved: ResolvedURL,
        address: IPAddress,
        timeout: urllib3.Timeout,
        ssl_context: ssl.SSLContext | None,
    ) -> urllib3.HTTPConnectionPool:
        """The pool for this address and name, made on first use (least recently used goes)."""
        key = (resolved.scheme, str(address), resolved.port, resolved.host, id(ssl_context))
        with self._lock:
            if self._closed:
                raise RuntimeError("FetchSession used after close()")
            pool = self._pools.get(key)
            if pool is not None:
                self._pools.move_to_end(key)
                return pool
            pool = _pool(resolved, address, timeout, ssl_context, maxsize=self._per_host)
            self._pools[key] = pool
            if len(self._pools) > self._max_hosts:
                # Connections in use are closed when they come back to a closed pool.
                self._pools.popitem(last=False)[1].close()
            return pool

    def close(self) -> None:
        """Close every idle connection; connections in use close when their response does."""
        with self._lock:
            self._closed = True
            pools, self._pools = list(self._pools.values()), OrderedDict()
        for pool in pools:
            pool.close()

    def __enter__(self) -> FetchSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@functools.cache
def default_tls_context() -> ssl.SSLContext:
    """One verifying TLS context for every fetch: loading the CA store costs ~50 ms of CPU."""
    context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _pool(
    resolved: ResolvedURL,
    address: IPAddress,
    timeout: urllib3.Timeout,
    ssl_context: ssl.SSLContext | None,
    maxsize: int = 1,
) -> urllib3.HTTPConnectionPool:
    ip = str(address).split("%", 1)[0]
    if resolved.scheme == "https":
        context = ssl_context or default_tls_context()
        return urllib3.HTTPSConnectionPool(
            ip,
            resolved.port,
            timeout=timeout,
            retries=False,
            maxsize=maxsize,
            # TLS is verified against the name, although the socket goes to the checked address:
            # ssl checks the certificate against server_hostname itself when the context has
            # check_hostname; urllib3 checks assert_hostname otherwise (and then alters the
            # context, which is why the shared default context leaves this to ssl).
            server_hostname=resolved.host,
            assert_hostname=None if context.check_hostname else resolved.host,
            cert_reqs="CERT_REQUIRED",
            ssl_context=context,
        )
    return urllib3.HTTPConnectionPool(
        ip, resolved.port, timeout=timeout, retries=False, maxsize=maxsize
    )


def _headers(
    resolved: ResolvedURL, etag: str | None, last_modified: str | None, send_credentials: bool
) -> dict[str, str]:
    headers = {
        "Host": resolved.host_header,
        "User-Agent": USER_AGENT,
        "Accept": "*/*",
        # collect finds gzip by its magic bytes; a transparent decode would hide the real size.
        "Accept-Encoding": "identity",
    }
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    if send_credentials and resolved.username is not None:
        token = f"{resolved.username}:{resolved.password or ''}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(token).decode("ascii")
    return headers


@contextmanager
def fetch(
    url: str,
    *,
    allow: tuple[Network, ...] = (),
    etag: str | None = None,
    last_modified: str | None = None,
    max_bytes: int | None = None,
    connect_timeout: float = 10,
    read_timeout: float = 60,
    retries: int = 4,
    max_redirects: int = 5,
    backoff_base: float = 0.5,
    backoff_cap: float = 20.0,
    retry_after_cap: float = RETRY_AFTER_CAP,
    total_timeout: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    ssl_context: ssl.SSLContext | None = None,
    session: FetchSession | None = None,
) -> Iterator[FetchResponse]:
    """GET ``url`` through the address guard; yield its body as a streaming file object.

    Redirects are followed by hand (every hop guarded); connection errors, timeouts, 5xx and 429
    are retried with jittered exponential back-off; a 304 (conditional GET) yields an empty body.
    ``total_timeout`` bounds the whole fetch, body included: ``read_timeout`` alone cannot stop a
    server that sends one byte a minute. ``sleep`` and ``clock`` are for tests. With a
    ``session``, connections are kept open for the next fetch to the same host.
    """
    response = _open(
        url,
        allow=allow,
        etag=etag,
        last_modified=last_modified,
        max_bytes=max_bytes,
        timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout),
        retries=retries,
        max_redirects=max_redirects,
        backoff=(backoff_base, backoff_cap, retry_after_cap),
        sleep=sleep,
        deadline=None if total_timeout is None else clock() + total_timeout,
        clock=clock,
        ssl_context=ssl_context,
        session=session,
    )
    try:
        yield response
    finally:
        response.close()


def _open(
    url: str,
    *,
    allow: tuple[Network, ...],
    etag: str | None,
    last_modified: str | None,
    max_bytes: int | None,
    timeout: urllib3.Timeout,
    retries: int,
    max_redirects: int,
    backoff: tuple[float, float, float],
    sleep: Callable[[float], None],
    deadline: float | None,
    clock: Callable[[], float],
    ssl_context: ssl.SSLContext | None,
    session: FetchSession | None,
) -> FetchResponse:
    first = check_url(url, allow)
    resolved = first
    redirects = 0
    while True:
        raw, pool = _request(
            resolved,
            _headers(resolved, etag, last_modified, resolved.origin == first.origin),
            timeout=timeout,
            retries=retries,
            backoff=backoff,
            sleep=sleep,
            deadline=deadline,
            clock=clock,
            ssl_context=ssl_context,
            session=session,
        )
        status = raw.status
        shown = redact_url(resolved.url)
        if status in REDIRECT_STATUSES:
            location = raw.headers.get("Location")
            _discard(raw, pool)
            if not location:
                raise TooManyRedirects(
                    f"{shown} answered {status} without a Location header: fix the shop's URL",
                    url=shown,
                )
            redirects += 1
            if redirects > max_redirects:
                raise TooManyRedirects(
                    f"{redact_url(url)} redirected more than {max_redirects} times (last hop "
                    f"{shown} → {redact_url(location)}): use the final URL or fix the loop",
                    url=redact_url(url),
                )
            target = urljoin(resolved.url, _header_text(location))
            log.debug("fetch.redirect", status=status, url=shown, location=redact_url(target))
            resolved = check_url(target, allow)
            continue
        if status == 304:
            _discard(raw, pool)
            if not (etag or last_modified):
                raise HttpStatusError(
                    f"{shown} answered 304 Not Modified to a request without validators",
                    url=shown,
                    status=status,
                )
            response = FetchResponse(
                None, status=304, url=resolved.url, max_bytes=max_bytes,
                read_timeout=timeout.read_timeout or 0.0,  # type: ignore[arg-type]
            )
            response.etag = raw.headers.get("ETag") or etag
            response.last_modified = raw.headers.get("Last-Modified") or last_modified
            response.content_type = raw.headers.get("Content-Type")
            return response
        if not 200 <= status < 300:
            _discard(raw, pool)
            raise HttpStatusError(
                f"{shown} answered HTTP {status}"
                + (f" {raw.reason}" if raw.reason else "")
                + ": retrying cannot help; check the shop's URL and its access",
                url=shown,
                status=status,
            )
        response = FetchResponse(
            raw,
            pool=pool,
            status=status,
            url=resolved.url,
            max_bytes=max_bytes,
            read_timeout=timeout.read_timeout or 0.0,  # type: ignore[arg-type]
            deadline=deadline,
            clock=clock,
        )
        if (
            max_bytes is not None
            and response.content_length is not None
            and response.content_length > max_bytes
        ):
            response.close()
            raise TooLarge(
                f"{shown} is {response.content_length} bytes (Content-Length), over the limit of "
                f"{max_bytes}: raise the limit or ask the shop for a smaller file",
                url=shown,
            )
        return response


def _header_text(value: str) -> str:
    # http.client decodes header bytes as Latin-1; a Location sent as UTF-8 is read back as such.
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return value


def _reason(exc: BaseException) -> str:
    # urllib3 prefixes its messages with the connection object's repr, which names the IP only.
    text = str(exc)
    return text.split(": ", 1)[1] if text.startswith("HTTP") and ": " in text else text


def _close(pool: urllib3.HTTPConnectionPool | None) -> None:
    if pool is not None:
        pool.close()


def _discard(raw: urllib3.BaseHTTPResponse, pool: urllib3.HTTPConnectionPool | None) -> None:
    # Never drain an unwanted body of unknown size: closing costs a reconnect, not a download.
    raw.close()
    raw.release_conn()
    if pool is not None:
        pool.close()


def _request(
    resolved: ResolvedURL,
    headers: dict[str, str],
    *,
    timeout: urllib3.Timeout,
    retries: int,
    backoff: tuple[float, float, float],
    sleep: Callable[[float], None],
    deadline: float | None,
    clock: Callable[[], float],
    ssl_context: ssl.SSLContext | None,
    session: FetchSession | None,
) -> tuple[urllib3.BaseHTTPResponse, urllib3.HTTPConnectionPool | None]:
    """One hop: the headers, after retrying what may pass; and the pool to close, if ours."""
    base, cap, retry_after_cap = backoff
    shown = redact_url(resolved.url)
    attempt = 0
    while True:
        # A failing address makes way for the next one the name resolved to (all were checked).
        address = resolved.addresses[attempt % len(resolved.addresses)]
        if session is not None:
            pool = session.pool_for(resolved, address, timeout, ssl_context)
            own: urllib3.HTTPConnectionPool | None = None
        else:
            pool = own = _pool(resolved, address, timeout, ssl_context)
        failure: FetchError
        delay: float | None = None
        attempt_timeout = timeout
        if deadline is not None:
            remaining = deadline - clock()
            if remaining < 0:
                _close(own)
                raise FetchTimeout(
                    f"fetching {shown} took longer than its total time limit before the server "
                    "answered; a later attempt may succeed",
                    url=shown,
                )
            # Connecting and waiting for the headers count against the total limit too.
            remaining = max(remaining, 0.001)
            connect, read = timeout.connect_timeout, timeout.read_timeout
            attempt_timeout = urllib3.Timeout(
                connect=min(connect, remaining) if isinstance(connect, int | float) else remaining,
                read=min(read, remaining) if isinstance(read, int | float) else remaining,
            )
        try:
            raw = pool.urlopen(
                "GET",
                resolved.target,
                headers=headers,
                redirect=False,
                retries=False,
                preload_content=False,
                decode_content=False,
                assert_same_host=False,
                release_conn=False,
                timeout=attempt_timeout,
            )
        except SSLError as exc:
            _close(own)
            raise TLSFailure(
                f"TLS with {resolved.host} ({address}) for {shown} failed: {exc}; check the "
                "shop's certificate",
                url=shown,
            ) from exc
        except (ConnectTimeoutError, ReadTimeoutError) as exc:
            _close(own)
            # urllib3 makes NewConnectionError (refused, unreachable) a ConnectTimeoutError.
            if isinstance(exc, NewConnectionError):
                failure = FetchConnectionError(
                    f"could not connect to {resolved.host} ({address}) for {shown} after "
                    f"{attempt + 1} attempt(s): {_reason(exc)}; a later attempt may succeed",
                    url=shown,
                )
            else:
                phase = "connecting to" if isinstance(exc, ConnectTimeoutError) else "waiting for"
                failure = FetchTimeout(
                    f"timed out {phase} {resolved.host} ({address}) for {shown} after "
                    f"{attempt + 1} attempt(s); a later attempt may succeed",
                    url=shown,
                )
            failure.__cause__ = exc
        except (ProtocolError, HTTPError, OSError) as exc:
            _close(own)
            failure = FetchConnectionError(
                f"could not fetch {shown} from {address} after {attempt + 1} attempt(s): "
                f"{_reason(exc)}; a later attempt may succeed",
                url=shown,
            )
            failure.__cause__ = exc
        else:
            if raw.status != 429 and raw.status < 500:
                # The pool (if ours) closes with the response: the caller owns both now.
                return raw, own
            delay = _retry_after(raw.headers.get("Retry-After"), retry_after_cap)
            failure = TransientHttpError(
                f"{shown} answered HTTP {raw.status} {raw.reason or ''}".rstrip()
                + f" after {attempt + 1} attempt(s); a later attempt may succeed",
                url=shown,
                status=raw.status,
            )
            _discard(raw, own)
        if attempt >= retries:
            raise failure
        if delay is None:
            delay = backoff_delay(attempt, base=base, cap=cap)
        if deadline is not None and clock() + delay > deadline:
            # Waiting would overrun the total time limit: give up now, with the reason.
            raise failure
        log.warning(
            "fetch.retry",
            url=shown,
            attempt=attempt + 1,
            error=type(failure).__name__,
            status=getattr(failure, "status", None),
            delay_s=round(delay, 3),
        )
        sleep(delay)
        attempt += 1
