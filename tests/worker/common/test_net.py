"""The address guard and the guarded fetch, against real HTTP servers on 127.0.0.1."""

from __future__ import annotations

import contextlib
import csv
import gzip
import hashlib
import io
import ipaddress
import json
import socket
import ssl
import threading
import tracemalloc
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import ijson
import pytest
import urllib3.util.connection
from hypothesis import given
from hypothesis import strategies as st

from tests.fixtures_http import Certificates, Server, body_of, make_certificates, redirect_to, send, serve
from worker.common import net
from worker.common.errors import FatalError, TransientError, exit_code_for
from worker.common.net import (
    BadURL,
    BlockedAddress,
    FetchConnectionError,
    FetchSession,
    FetchTimeout,
    HttpStatusError,
    TLSFailure,
    TooLarge,
    TooManyRedirects,
    TransientHttpError,
    blocked_reason,
    check_url,
    classify_address,
    fetch,
)

LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"),)


@pytest.fixture
def server(http_server: Server) -> Server:
    return http_server


@pytest.fixture
def other_server() -> Iterator[Server]:
    with serve() as second:
        yield second


class Sleeps(list[float]):
    """Stands in for time.sleep: records the back-off delays instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Every address a socket was opened to, through urllib3's connection helper."""
    opened: list[tuple[str, int]] = []
    real = urllib3.util.connection.create_connection

    def recording(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        opened.append(address)
        return real(address, *args, **kwargs)

    monkeypatch.setattr(urllib3.util.connection, "create_connection", recording)
    return opened


def payload(size: int) -> bytes:
    """Deterministic, incompressible-looking bytes."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(counter.to_bytes(8, "big")).digest()
        counter += 1
    return bytes(out[:size])


# ---------------------------------------------------------------------------------------------
# Streaming
# ---------------------------------------------------------------------------------------------


def test_a_200_streams_the_body_and_counts_its_bytes(server: Server) -> None:
    data = payload(300_000)
    first_part_read = threading.Event()
    order: list[str] = []

    def two_halves(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", str(len(data)))
        h.send_header("Content-Type", "text/csv; charset=utf-8")
        h.send_header("ETag", '"v7"')
        h.send_header("Last-Modified", "Wed, 21 Oct 2026 07:28:00 GMT")
        h.end_headers()
        h.wfile.write(data[:100_000])
        h.wfile.flush()
        # The rest is sent only once the client has consumed the first part: a fetch that
        # buffered the whole body before handing it over would never get here in time.
        order.append("waiting" if first_part_read.wait(10) else "gave up")
        h.wfile.write(data[100_000:])

    server.routes["/feed.csv"] = two_halves
    digest = hashlib.sha256()
    with fetch(server.url("/feed.csv"), allow=LOOPBACK, read_timeout=20) as response:
        assert response.status == 200
        assert response.etag == '"v7"'
        assert response.last_modified == "Wed, 21 Oct 2026 07:28:00 GMT"
        assert response.content_type == "text/csv; charset=utf-8"
        assert response.bytes_read == 0
        while response.bytes_read < 100_000:
            chunk = response.read(10_000)
            assert 0 < len(chunk) <= 10_000
            digest.update(chunk)
        first_part_read.set()
        while chunk := response.read(65_536):
            digest.update(chunk)
        assert response.bytes_read == len(data)
    assert order == ["waiting"]
    assert digest.hexdigest() == hashlib.sha256(data).hexdigest()
    headers = server.hits[0][1]
    assert headers["accept-encoding"] == "identity"
    assert headers["host"] == f"127.0.0.1:{server.port}"


def test_the_response_feeds_the_readers_collect_uses(server: Server) -> None:
    rows = [{"id": str(i), "title": f"상품 {i}"} for i in range(200)]
    csv_text = "id,title\n" + "".join(f"{r['id']},{r['title']}\n" for r in rows)
    server.routes["/feed.csv.gz"] = body_of(gzip.compress(csv_text.encode("utf-8")))
    server.routes["/feed.json"] = body_of(json.dumps({"products": rows}).encode())
    xml = "<feed>" + "".join(f"<item><id>{r['id']}</id></item>" for r in rows) + "</feed>"
    server.routes["/feed.xml"] = body_of(xml.encode())

    with fetch(server.url("/feed.csv.gz"), allow=LOOPBACK) as response:
        text = io.TextIOWrapper(gzip.GzipFile(fileobj=response), encoding="utf-8", newline="")
        assert list(csv.DictReader(text)) == rows
    with fetch(server.url("/feed.json"), allow=LOOPBACK) as response:
        assert list(ijson.items(response, "products.item")) == rows
    with fetch(server.url("/feed.json"), allow=LOOPBACK) as response:
        decoded = io.TextIOWrapper(response, encoding="utf-8")
        assert json.loads(decoded.read())["products"][199] == rows[199]
    with fetch(server.url("/feed.xml"), allow=LOOPBACK) as response:
        # Our own XML: the point is that iterparse can read from the response.
        ids = [el.text for _, el in ET.iterparse(response) if el.tag == "id"]  # noqa: S314
        assert ids == [r["id"] for r in rows]


def test_a_gzip_content_encoding_is_passed_through_undecoded(server: Server) -> None:
    compressed = gzip.compress(b"id,title\n1,x\n")
    server.routes["/f"] = body_of(compressed, **{"Content-Encoding": "gzip"})
    with fetch(server.url("/f"), allow=LOOPBACK) as response:
        assert response.read() == compressed
        assert response.bytes_read == len(compressed)
        assert response.content_encoding == "gzip"


# ---------------------------------------------------------------------------------------------
# Conditional GET
# ---------------------------------------------------------------------------------------------


def _conditional(h: BaseHTTPRequestHandler) -> None:
    if h.headers.get("If-None-Match") == '"v1"' or (
        h.headers.get("If-Modified-Since") == "Mon, 01 Jan 2026 00:00:00 GMT"
    ):
        send(h, 304, headers={"ETag": '"v1"', "Last-Modified": "Mon, 01 Jan 2026 00:00:00 GMT"})
    else:
        send(h, 200, b"new", {"ETag": '"v2"', "Last-Modified": "Tue, 02 Jan 2026 00:00:00 GMT"})


def test_a_304_yields_an_empty_body_with_the_validators(server: Server) -> None:
    server.routes["/c"] = _conditional
    with fetch(server.url("/c"), allow=LOOPBACK, etag='"v1"') as response:
        assert response.status == 304
        assert response.read() == b""
        assert response.bytes_read == 0
        assert response.etag == '"v1"'
    with fetch(
        server.url("/c"), allow=LOOPBACK, last_modified="Mon, 01 Jan 2026 00:00:00 GMT"
    ) as response:
        assert response.status == 304
        assert response.last_modified == "Mon, 01 Jan 2026 00:00:00 GMT"
    assert server.hits[0][1]["if-none-match"] == '"v1"'
    assert server.hits[1][1]["if-modified-since"] == "Mon, 01 Jan 2026 00:00:00 GMT"


def test_changed_content_comes_back_whole_with_new_validators(server: Server) -> None:
    server.routes["/c"] = _conditional
    with fetch(server.url("/c"), allow=LOOPBACK, etag='"v0"') as response:
        assert response.status == 200
        assert response.read() == b"new"
        assert (response.etag, response.last_modified) == ('"v2"', "Tue, 02 Jan 2026 00:00:00 GMT")


def test_a_304_to_an_unconditional_request_is_an_error(server: Server) -> None:
    server.routes["/c"] = lambda h: send(h, 304)
    with pytest.raises(HttpStatusError) as caught, fetch(server.url("/c"), allow=LOOPBACK):
        pass
    assert caught.value.status == 304


# ---------------------------------------------------------------------------------------------
# Redirects
# ---------------------------------------------------------------------------------------------


def _chain(server: Server, hops: int) -> str:
    for i in range(hops):
        # Relative and absolute Locations alike.
        server.routes[f"/r{i}"] = redirect_to(
            f"/r{i + 1}" if i % 2 else server.url(f"/r{i + 1}"), status=(301, 302, 307, 308)[i % 4]
        )
    server.routes[f"/r{hops}"] = body_of(b"arrived")
    return server.url("/r0")


def test_five_redirects_are_followed(server: Server) -> None:
    with fetch(_chain(server, 5), allow=LOOPBACK) as response:
        assert response.read() == b"arrived"
        assert response.url == server.url("/r5")
    assert [path for path, _ in server.hits] == [f"/r{i}" for i in range(6)]


def test_six_redirects_are_refused(server: Server) -> None:
    with (
        pytest.raises(TooManyRedirects, match="more than 5") as caught,
        fetch(_chain(server, 6), allow=LOOPBACK),
    ):
        pass
    assert isinstance(caught.value, FatalError)
    assert server.url("/r0") in str(caught.value)
    assert server.count("/r6") == 0


def test_a_redirect_loop_is_refused(server: Server) -> None:
    server.routes["/loop"] = redirect_to("/loop")
    with pytest.raises(TooManyRedirects), fetch(server.url("/loop"), allow=LOOPBACK):
        pass
    assert server.count("/loop") == 6


@pytest.mark.parametrize(
    "location",
    [
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://10.0.0.1/admin",
        "http://100.64.0.1/",
        "http://[::ffff:169.254.169.254]/",
        "http://0.0.0.0:8080/",
    ],
)
def test_a_redirect_to_a_non_public_address_is_refused_before_connecting(
    server: Server, connections: list[tuple[str, int]], location: str
) -> None:
    server.routes["/go"] = redirect_to(location)
    with pytest.raises(BlockedAddress) as caught, fetch(server.url("/go"), allow=LOOPBACK):
        pass
    assert exit_code_for(caught.value) == 65
    assert "FETCH_ALLOW_NETWORKS" in str(caught.value)
    # Only the shop's own server was ever connected to.
    assert connections == [("127.0.0.1", server.port)]


def test_a_redirect_to_another_scheme_is_refused(server: Server) -> None:
    server.routes["/go"] = redirect_to("file:///etc/passwd")
    with pytest.raises(BadURL, match="file"), fetch(server.url("/go"), allow=LOOPBACK):
        pass


def test_credentials_follow_redirects_on_the_same_origin_only(
    server: Server, other_server: Server
) -> None:
    server.routes["/a"] = redirect_to("/b")
    server.routes["/b"] = redirect_to(other_server.url("/c"))
    other_server.routes["/c"] = body_of(b"ok")
    url = f"http://shop:s3cret@127.0.0.1:{server.port}/a"
    with fetch(url, allow=LOOPBACK) as response:
        assert response.read() == b"ok"
    assert server.hits[0][1]["authorization"] == "Basic c2hvcDpzM2NyZXQ="
    assert server.hits[1][1]["authorization"] == "Basic c2hvcDpzM2NyZXQ="
    assert "authorization" not in other_server.hits[0][1]


def test_a_password_in_the_url_never_reaches_a_message(server: Server) -> None:
    server.routes["/a"] = lambda h: send(h, 403, b"denied")
    with (
        pytest.raises(HttpStatusError) as caught,
        fetch(f"http://shop:s3cret@127.0.0.1:{server.port}/a?access_token=t0ken", allow=LOOPBACK),
    ):
        pass
    assert "s3cret" not in str(caught.value) and "t0ken" not in str(caught.value)
    assert f"http://***@127.0.0.1:{server.port}/a?***" in str(caught.value)
    assert caught.value.url == f"http://***@127.0.0.1:{server.port}/a?***"


# ---------------------------------------------------------------------------------------------
# The guard on the first URL, and pinning
# ---------------------------------------------------------------------------------------------


def test_localhost_is_refused_unless_loopback_is_allowed(server: Server) -> None:
    server.routes["/feed"] = body_of(b"local")
    url = server.url("/feed", host="localhost")
    with pytest.raises(BlockedAddress, match="loopback"), fetch(url):
        pass
    assert server.hits == []
    with fetch(url, allow=LOOPBACK) as response:
        assert response.read() == b"local"
    assert server.hits[0][1]["host"] == f"localhost:{server.port}"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://2130706433/",  # 127.0.0.1 as one decimal number
        "http://0x7f.1/",  # and in inet_aton's hexadecimal shorthand
        "https://169.254.169.254/",
        "http://192.168.1.1:8080/",
        "http://172.16.5.4/",
        "http://[fe80::1]/",
        "http://[fc00::1]/",
        "http://224.0.0.1/",
        "http://255.255.255.255/",
        "http://[2002:7f00:1::]/",  # 6to4 around 127.0.0.1
        "http://[64:ff9b::a00:1]/",  # NAT64 around 10.0.0.1
    ],
)
def test_literal_non_public_addresses_are_refused(
    url: str, connections: list[tuple[str, int]]
) -> None:
    with pytest.raises(BlockedAddress) as caught, fetch(url):
        pass
    assert url in str(caught.value)
    assert connections == []


@pytest.mark.parametrize(
    "url", ["ftp://example.com/feed.csv", "file:///etc/passwd", "gopher://x/", "//x/y", "http:///p",
            "http://example.com:99999/", "javascript:alert(1)"]
)
def test_only_http_and_https_urls_with_a_host_are_fetched(url: str) -> None:
    with pytest.raises(BadURL) as caught, fetch(url):
        pass
    assert isinstance(caught.value, FatalError)
    assert repr(url) in str(caught.value)


class FakeResolver:
    """Stands in for socket.getaddrinfo for some names; passes every other name to the real one."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, answers: dict[str, list[list[str]]]):
        self.answers = answers
        self.calls: list[str] = []
        self.real = socket.getaddrinfo
        monkeypatch.setattr(socket, "getaddrinfo", self)

    def __call__(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in self.answers:
            return self.real(host, port, *args, **kwargs)
        self.calls.append(host)
        queue = self.answers[host]
        addresses = queue.pop(0) if len(queue) > 1 else queue[0]
        result: list[tuple[Any, ...]] = []
        for address in addresses:
            if ":" in address:
                result.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port, 0, 0)))
            else:
                result.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port)))
        return result


def test_the_connection_goes_to_the_address_that_was_checked(
    server: Server, monkeypatch: pytest.MonkeyPatch, connections: list[tuple[str, int]],
    sleeps: Sleeps,
) -> None:
    # A rebinding name server: public-looking (allowed) first, the private network afterwards.
    resolver = FakeResolver(monkeypatch, {"shop.example": [["127.0.0.1"], ["10.0.0.1"]]})
    answers = iter([503, 200])
    server.routes["/feed"] = lambda h: send(h, next(answers), b"pinned")
    with fetch(server.url("/feed", host="shop.example"), allow=LOOPBACK, sleep=sleeps) as response:
        assert response.read() == b"pinned"
    assert resolver.calls == ["shop.example"]
    assert connections == [("127.0.0.1", server.port)] * 2
    assert [headers["host"] for _, headers in server.hits] == [f"shop.example:{server.port}"] * 2


def test_a_name_resolving_to_any_private_address_is_refused(
    monkeypatch: pytest.MonkeyPatch, connections: list[tuple[str, int]]
) -> None:
    FakeResolver(monkeypatch, {"mixed.example": [["93.184.215.14", "2606:2800:21f::1", "10.1.2.3"]]})
    with pytest.raises(BlockedAddress, match=r"10\.1\.2\.3, which is private"):
        check_url("https://mixed.example/feed.xml", ())
    assert connections == []


def test_a_public_name_passes_the_guard_with_all_its_addresses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    FakeResolver(monkeypatch, {"shop.example": [["93.184.215.14", "2606:2800:21f::1"]]})
    resolved = check_url("https://shop.example:8443/a/b?x=1", ())
    assert resolved.addresses == (
        ipaddress.ip_address("93.184.215.14"), ipaddress.ip_address("2606:2800:21f::1"),
    )
    assert (resolved.host, resolved.port, resolved.target) == ("shop.example", 8443, "/a/b?x=1")
    assert resolved.host_header == "shop.example:8443"


@pytest.mark.parametrize(
    ("error", "message"),
    [(socket.EAI_NONAME, "does not resolve"), (socket.EAI_AGAIN, "could not be resolved")],
)
def test_a_name_that_does_not_resolve_is_a_transient_error(
    monkeypatch: pytest.MonkeyPatch, error: int, message: str
) -> None:
    def failing(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(error, "resolver says no")

    monkeypatch.setattr(socket, "getaddrinfo", failing)
    with pytest.raises(FetchConnectionError, match=message) as caught:
        check_url("http://gone.example/feed", ())
    assert "gone.example" in str(caught.value)
    assert exit_code_for(caught.value) == 75


# ---------------------------------------------------------------------------------------------
# Retries and statuses
# ---------------------------------------------------------------------------------------------


def test_a_500_then_a_200_is_retried(server: Server, sleeps: Sleeps) -> None:
    answers = iter([(500, b"oops"), (200, b"fine")])
    server.routes["/f"] = lambda h: send(h, *next(answers))
    with fetch(server.url("/f"), allow=LOOPBACK, sleep=sleeps, backoff_base=0.25) as response:
        assert response.read() == b"fine"
    assert server.count("/f") == 2
    assert len(sleeps) == 1 and 0 <= sleeps[0] <= 0.25


def test_a_429_honours_retry_after_up_to_the_cap(server: Server, sleeps: Sleeps) -> None:
    answers = iter([("3", 429), ("86400", 429), (None, 200)])

    def throttled(h: BaseHTTPRequestHandler) -> None:
        retry_after, status = next(answers)
        send(h, status, b"done" if status == 200 else b"", {"Retry-After": retry_after} if
             retry_after else {})

    server.routes["/f"] = throttled
    with fetch(server.url("/f"), allow=LOOPBACK, sleep=sleeps, retry_after_cap=30) as response:
        assert response.read() == b"done"
    assert sleeps == [3.0, 30.0]


def test_persistent_5xx_becomes_a_transient_error_naming_url_and_status(
    server: Server, sleeps: Sleeps
) -> None:
    server.routes["/f"] = lambda h: send(h, 503, b"down")
    with (
        pytest.raises(TransientHttpError) as caught,
        fetch(server.url("/f"), allow=LOOPBACK, sleep=sleeps, retries=3, backoff_base=1),
    ):
        pass
    assert caught.value.status == 503
    assert server.url("/f") in str(caught.value) and "503" in str(caught.value)
    assert exit_code_for(caught.value) == 75
    assert server.count("/f") == 4
    # Exponential ceilings 1, 2, 4 with full jitter below them.
    assert len(sleeps) == 3 and all(0 <= s <= c for s, c in zip(sleeps, [1, 2, 4], strict=True))


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410])
def test_a_4xx_is_fatal_and_not_retried(server: Server, sleeps: Sleeps, status: int) -> None:
    server.routes["/f"] = lambda h: send(h, status, b"nope")
    with pytest.raises(HttpStatusError) as caught, fetch(server.url("/f"), allow=LOOPBACK,
                                                         sleep=sleeps):
        pass
    assert caught.value.status == status
    assert caught.value.url == server.url("/f")
    assert f"HTTP {status}" in str(caught.value) and server.url("/f") in str(caught.value)
    assert exit_code_for(caught.value) == 65
    assert server.count("/f") == 1 and sleeps == []


def test_a_refused_connection_is_retried_then_transient(sleeps: Sleeps) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with (
        pytest.raises(FetchConnectionError) as caught,
        fetch(f"http://127.0.0.1:{port}/f", allow=LOOPBACK, sleep=sleeps, retries=2),
    ):
        pass
    assert isinstance(caught.value, TransientError)
    assert "after 3 attempt(s)" in str(caught.value)
    assert len(sleeps) == 2


# ---------------------------------------------------------------------------------------------
# Timeouts and sizes
# ---------------------------------------------------------------------------------------------


def test_a_server_that_never_answers_times_out(server: Server, sleeps: Sleeps) -> None:
    def stall(h: BaseHTTPRequestHandler) -> None:
        server.release.wait(30)

    server.routes["/stall"] = stall
    with (
        pytest.raises(FetchTimeout, match="timed out waiting for") as caught,
        fetch(server.url("/stall"), allow=LOOPBACK, read_timeout=0.3, retries=1, sleep=sleeps),
    ):
        pass
    assert exit_code_for(caught.value) == 75
    assert server.count("/stall") == 2


def test_a_body_that_stalls_midway_times_out(server: Server) -> None:
    def stall(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", "1000")
        h.end_headers()
        h.wfile.write(b"x" * 100)
        h.wfile.flush()
        server.release.wait(30)

    server.routes["/stall"] = stall
    with fetch(server.url("/stall"), allow=LOOPBACK, read_timeout=0.3) as response:
        assert response.read(100) == b"x" * 100
        with pytest.raises(FetchTimeout, match="after 100 bytes"):
            response.read(100)


def test_a_declared_length_over_the_limit_is_refused_before_reading(server: Server) -> None:
    server.routes["/big"] = body_of(payload(5000))
    with (
        pytest.raises(TooLarge, match="5000 bytes") as caught,
        fetch(server.url("/big"), allow=LOOPBACK, max_bytes=4999),
    ):
        pass
    assert exit_code_for(caught.value) == 65


def test_an_undeclared_body_over_the_limit_stops_while_streaming(server: Server) -> None:
    def chunked(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        for _ in range(100):
            h.wfile.write(b"400\r\n" + b"y" * 1024 + b"\r\n")
        h.wfile.write(b"0\r\n\r\n")

    server.routes["/big"] = chunked
    with fetch(server.url("/big"), allow=LOOPBACK, max_bytes=10_000) as response:
        with pytest.raises(TooLarge, match="limit of 10000"):
            while response.read(4096):
                pass
        assert response.bytes_read <= 10_000
    with fetch(server.url("/big"), allow=LOOPBACK, max_bytes=102_400) as response:
        assert len(response.read()) == 102_400


def test_a_body_shorter_than_its_content_length_is_an_error_not_a_short_file(
    server: Server,
) -> None:
    def liar(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", "1000")
        h.send_header("Connection", "close")
        h.end_headers()
        h.wfile.write(b"z" * 100)
        h.close_connection = True

    server.routes["/short"] = liar
    with (
        fetch(server.url("/short"), allow=LOOPBACK) as response,
        pytest.raises(FetchConnectionError, match="after 100 of 1000 bytes") as caught,
    ):
        response.read()
    assert exit_code_for(caught.value) == 75


def test_a_body_longer_than_its_content_length_is_cut_at_the_declared_length(
    server: Server,
) -> None:
    def liar(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", "10")
        h.send_header("Connection", "close")
        h.end_headers()
        h.wfile.write(b"w" * 50_000)
        h.close_connection = True

    server.routes["/long"] = liar
    with fetch(server.url("/long"), allow=LOOPBACK, max_bytes=100) as response:
        assert response.read() == b"w" * 10


# ---------------------------------------------------------------------------------------------
# The classification, by the thousand
# ---------------------------------------------------------------------------------------------

MUST_BLOCK_V4 = [
    ipaddress.IPv4Network(n)
    for n in ("0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
              "172.16.0.0/12", "192.168.0.0/16", "224.0.0.0/4", "240.0.0.0/4", "192.0.0.0/24",
              "198.18.0.0/15")
]
# IANA's special-purpose registry (plus documentation ranges): outside all of these is public.
SPECIAL_V4 = [
    *MUST_BLOCK_V4,
    *(ipaddress.IPv4Network(n) for n in ("192.0.2.0/24", "192.88.99.0/24", "198.51.100.0/24",
                                         "203.0.113.0/24")),
]
MUST_BLOCK_V6 = [
    ipaddress.IPv6Network(n)
    for n in ("::1/128", "::/128", "fe80::/10", "fc00::/7", "ff00::/8", "fd00:ec2::254/128",
              "fec0::/10")
]


def v4_in(networks: list[ipaddress.IPv4Network]) -> st.SearchStrategy[ipaddress.IPv4Address]:
    return st.sampled_from(networks).flatmap(
        lambda n: st.integers(int(n.network_address), int(n.broadcast_address)).map(
            ipaddress.IPv4Address
        )
    )


def v6_in(networks: list[ipaddress.IPv6Network]) -> st.SearchStrategy[ipaddress.IPv6Address]:
    return st.sampled_from(networks).flatmap(
        lambda n: st.integers(int(n.network_address), int(n.broadcast_address)).map(
            ipaddress.IPv6Address
        )
    )


public_v4 = st.builds(ipaddress.IPv4Address, st.integers(0, 2**32 - 1)).filter(
    lambda a: not any(a in n for n in SPECIAL_V4)
)


@given(v4_in(MUST_BLOCK_V4))
def test_every_non_public_ipv4_is_blocked(address: ipaddress.IPv4Address) -> None:
    assert blocked_reason(address) is not None


@given(v4_in(MUST_BLOCK_V4))
def test_every_non_public_ipv4_is_blocked_inside_ipv6(address: ipaddress.IPv4Address) -> None:
    v4 = int(address)
    for wrapped in (
        (0xFFFF << 32) | v4,  # IPv4-mapped
        (0x2002 << 112) | (v4 << 80),  # 6to4
        (0x64FF9B << 96) | v4,  # NAT64 well-known prefix
        v4,  # IPv4-compatible (deprecated)
    ):
        if wrapped > 1:
            assert blocked_reason(ipaddress.IPv6Address(wrapped)) is not None, wrapped


@given(v6_in(MUST_BLOCK_V6))
def test_every_non_public_ipv6_is_blocked(address: ipaddress.IPv6Address) -> None:
    assert blocked_reason(address) is not None


@given(public_v4)
def test_public_ipv4_passes_alone_and_mapped(address: ipaddress.IPv4Address) -> None:
    assert classify_address(address) is None
    assert classify_address(ipaddress.IPv6Address((0xFFFF << 32) | int(address))) is None


@given(st.integers(0, 2**96 - 1))
def test_global_unicast_ipv6_passes(low: int) -> None:
    # 2600::/12 is allocated global unicast space (ARIN).
    address = ipaddress.IPv6Address((0x2600 << 112) | (low & ((1 << 116) - 1)))
    assert classify_address(address) is None


@given(v4_in(MUST_BLOCK_V4), st.integers(8, 32))
def test_an_allowed_network_lets_its_addresses_through(
    address: ipaddress.IPv4Address, prefix: int
) -> None:
    allowed = ipaddress.IPv4Network((int(address), prefix), strict=False)
    assert blocked_reason(address, (allowed,)) is None
    mapped = ipaddress.IPv6Address((0xFFFF << 32) | int(address))
    assert blocked_reason(mapped, (allowed,)) is None
    neighbours = (int(allowed.network_address) - 1, int(allowed.broadcast_address) + 1)
    outside = [ipaddress.IPv4Address(n) for n in neighbours if 0 <= n < 2**32]
    outside = [a for a in outside if any(a in n for n in MUST_BLOCK_V4)]
    for other in outside:
        assert blocked_reason(other, (allowed,)) is not None


def test_the_metadata_service_is_named_as_such() -> None:
    reason = classify_address(ipaddress.ip_address("169.254.169.254"))
    assert reason is not None and "metadata" in reason
    reason6 = classify_address(ipaddress.ip_address("fd00:ec2::254"))
    assert reason6 == "private"


def test_the_net_module_names_its_failures_for_images() -> None:
    outcomes = {cls.outcome for cls in (BadURL, BlockedAddress, TooManyRedirects, HttpStatusError,
                                        TooLarge, net.TLSFailure, FetchTimeout,
                                        TransientHttpError, FetchConnectionError)}
    assert len(outcomes) == 9


# ---------------------------------------------------------------------------------------------
# TLS: the socket goes to the pinned IP, the certificate is checked against the name
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[Server, Path, list[str | None]]]:
    certificates: Certificates = make_certificates(tmp_path, "shop.example")
    with serve(tls=certificates) as state:
        yield state, certificates.ca, state.server_names


def test_https_goes_to_the_pinned_address_and_verifies_the_name(
    tls_server: tuple[Server, Path, list[str | None]], monkeypatch: pytest.MonkeyPatch,
    connections: list[tuple[str, int]],
) -> None:
    server, ca, server_names = tls_server
    server.routes["/feed"] = body_of(b"secure")
    FakeResolver(monkeypatch, {"shop.example": [["127.0.0.1"]]})
    trust = ssl.create_default_context(cafile=str(ca))
    url = f"https://shop.example:{server.port}/feed"
    with fetch(url, allow=LOOPBACK, ssl_context=trust) as response:
        assert response.read() == b"secure"
    assert connections == [("127.0.0.1", server.port)]
    assert server_names == ["shop.example"]
    assert server.hits[0][1]["host"] == f"shop.example:{server.port}"


def test_https_refuses_a_certificate_for_another_name(
    tls_server: tuple[Server, Path, list[str | None]], monkeypatch: pytest.MonkeyPatch,
    sleeps: Sleeps,
) -> None:
    server, ca, _ = tls_server
    server.routes["/feed"] = body_of(b"secure")
    FakeResolver(monkeypatch, {"impostor.example": [["127.0.0.1"]]})
    trust = ssl.create_default_context(cafile=str(ca))
    url = f"https://impostor.example:{server.port}/feed"
    with (
        pytest.raises(TLSFailure, match=r"impostor\.example") as caught,
        fetch(url, allow=LOOPBACK, ssl_context=trust, sleep=sleeps),
    ):
        pass
    assert exit_code_for(caught.value) == 65
    assert server.hits == [] and sleeps == []


def test_https_refuses_an_untrusted_certificate(
    tls_server: tuple[Server, Path, list[str | None]], monkeypatch: pytest.MonkeyPatch,
) -> None:
    server, _, _ = tls_server
    FakeResolver(monkeypatch, {"shop.example": [["127.0.0.1"]]})
    with (
        pytest.raises(TLSFailure, match="certificate"),
        fetch(f"https://shop.example:{server.port}/feed", allow=LOOPBACK),
    ):
        pass
    assert server.hits == []


def test_an_ipv6_server_is_reached_when_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    with serve(family=socket.AF_INET6) as server:
        server.routes["/v6"] = body_of(b"six")
        FakeResolver(monkeypatch, {"six.example": [["::1"]]})
        url = f"http://six.example:{server.port}/v6"
        with pytest.raises(BlockedAddress, match="::1"), fetch(url, allow=LOOPBACK):
            pass
        with fetch(url, allow=(ipaddress.ip_network("::1/128"),)) as response:
            assert response.read() == b"six"
        with fetch(f"http://[::1]:{server.port}/v6", allow=(ipaddress.ip_network("::1/128"),)) as r:
            assert r.read() == b"six"
        assert server.hits[0][1]["host"] == f"six.example:{server.port}"
        assert server.hits[1][1]["host"] == f"[::1]:{server.port}"


# ---------------------------------------------------------------------------------------------
# The total time limit, and memory
# ---------------------------------------------------------------------------------------------


class TickingClock:
    """A monotonic clock that moves one second each time it is read."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        value = self.now
        self.now += 1.0
        return value


def test_a_slow_body_is_stopped_by_the_total_time_limit(server: Server) -> None:
    server.routes["/slow"] = body_of(b"s" * 100)
    clock = TickingClock()
    with fetch(server.url("/slow"), allow=LOOPBACK, total_timeout=5, clock=clock) as response:
        with pytest.raises(FetchTimeout, match="total time limit") as caught:
            while response.read(10):
                pass
        # The clock reads 0 at the start (deadline 5), 1 before the request, then 2, 3, 4, 5 before
        # four reads of 10 bytes; 6 is past the limit.
        assert response.bytes_read == 40
    assert exit_code_for(caught.value) == 75


def test_retries_stop_when_the_next_wait_would_pass_the_total_time_limit(
    server: Server, sleeps: Sleeps
) -> None:
    server.routes["/f"] = lambda h: send(h, 503, b"", {"Retry-After": "1"})
    with (
        pytest.raises(TransientHttpError),
        # The clock is read twice per attempt (the time left, then before a back-off): 1–2, 3–4,
        # 5–6; the third back-off would end at 7, past the limit of 5.9. (The third attempt has
        # 0.9 real seconds left for its answer: the time left also bounds the socket's waits.)
        fetch(server.url("/f"), allow=LOOPBACK, retries=10, total_timeout=5.9, sleep=sleeps,
              clock=TickingClock()),
    ):
        pass
    assert server.count("/f") == 3
    assert sleeps == [1.0, 1.0]


def test_streaming_a_large_body_holds_little_memory(server: Server) -> None:
    block = b"m" * 65_536
    blocks = 512  # 32 MiB

    def large(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", str(len(block) * blocks))
        h.end_headers()
        for _ in range(blocks):
            h.wfile.write(block)

    server.routes["/large"] = large
    tracemalloc.start()
    try:
        with fetch(server.url("/large"), allow=LOOPBACK) as response:
            while response.read(65_536):
                pass
            total = response.bytes_read
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == len(block) * blocks
    assert peak < 2 * 1024 * 1024, peak


# ---------------------------------------------------------------------------------------------
# URLs as shops write them
# ---------------------------------------------------------------------------------------------


def test_spaces_and_korean_in_a_url_are_sent_percent_encoded(server: Server) -> None:
    encoded = "/%EC%9D%B4%EB%AF%B8%EC%A7%80/a%20b.jpg"
    server.routes[encoded] = body_of(b"jpeg")
    with fetch(server.url("/이미지/a b.jpg?name=가 나"), allow=LOOPBACK) as response:
        assert response.read() == b"jpeg"
    with fetch(server.url(encoded + "?x=%2F"), allow=LOOPBACK) as response:
        assert response.read() == b"jpeg"
    assert server.count(encoded) == 2


def test_a_utf8_location_header_is_followed(server: Server) -> None:
    def raw_redirect(h: BaseHTTPRequestHandler) -> None:
        h.wfile.write(
            b"HTTP/1.1 302 Found\r\nLocation: /\xec\x83\x81\xed\x92\x88.csv\r\n"
            b"Content-Length: 0\r\n\r\n"
        )

    server.routes["/old"] = raw_redirect
    server.routes["/%EC%83%81%ED%92%88.csv"] = body_of(b"id\n1\n")
    with fetch(server.url("/old"), allow=LOOPBACK) as response:
        assert response.read() == b"id\n1\n"
        assert response.url == server.url("/상품.csv")


# ---------------------------------------------------------------------------------------------
# FetchSession: connections kept between fetches
# ---------------------------------------------------------------------------------------------


def test_a_session_reuses_the_connection_for_the_next_fetch(
    server: Server, connections: list[tuple[str, int]]
) -> None:
    for i in range(5):
        server.routes[f"/img{i}.jpg"] = body_of(payload(1000 + i))
    with FetchSession() as session:
        for i in range(5):
            with fetch(server.url(f"/img{i}.jpg"), allow=LOOPBACK, session=session) as response:
                assert response.read() == payload(1000 + i)
    assert connections == [("127.0.0.1", server.port)]
    # Without a session, every fetch opens its own connection.
    for i in range(2):
        with fetch(server.url(f"/img{i}.jpg"), allow=LOOPBACK) as response:
            response.read()
    assert len(connections) == 3


def test_a_body_left_unread_is_not_reused(
    server: Server, connections: list[tuple[str, int]]
) -> None:
    server.routes["/big"] = body_of(payload(200_000))
    server.routes["/small"] = body_of(b"small")
    with FetchSession() as session:
        with fetch(server.url("/big"), allow=LOOPBACK, session=session) as response:
            assert len(response.read(10)) == 10
        with fetch(server.url("/small"), allow=LOOPBACK, session=session) as response:
            assert response.read() == b"small"
        server.routes["/gone"] = lambda h: send(h, 404, b"x" * 10)
        with pytest.raises(HttpStatusError), fetch(server.url("/gone"), allow=LOOPBACK,
                                                   session=session):
            pass
        with fetch(server.url("/small"), allow=LOOPBACK, session=session) as response:
            assert response.read() == b"small"
    assert len(connections) == 3


def test_a_session_keeps_names_apart_on_one_address(
    server: Server, monkeypatch: pytest.MonkeyPatch, connections: list[tuple[str, int]]
) -> None:
    FakeResolver(monkeypatch, {"a.example": [["127.0.0.1"]], "b.example": [["127.0.0.1"]]})
    server.routes["/x"] = lambda h: send(h, 200, h.headers["Host"].encode())
    with FetchSession() as session:
        for name in ("a.example", "b.example", "a.example"):
            with fetch(server.url("/x", host=name), allow=LOOPBACK, session=session) as response:
                assert response.read() == f"{name}:{server.port}".encode()
    assert len(connections) == 2


def test_a_session_is_safe_across_threads(server: Server) -> None:
    for i in range(20):
        server.routes[f"/p{i}"] = body_of(payload(5000 + i))
    failures: list[BaseException] = []

    def worker(start: int) -> None:
        try:
            for i in range(start, 20, 4):
                with fetch(server.url(f"/p{i}"), allow=LOOPBACK, session=session) as response:
                    assert response.read() == payload(5000 + i)
        except BaseException as exc:  # reported below, in the test's thread
            failures.append(exc)

    with FetchSession(connections_per_host=4) as session:
        threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert failures == []
    assert server.count("/p19") == 1 and len(server.hits) == 20
    with pytest.raises(RuntimeError, match="after close"), fetch(
        server.url("/p0"), allow=LOOPBACK, session=session
    ):
        pass


def test_a_server_dripping_a_byte_a_second_is_cut_at_the_total_time(server: Server) -> None:
    sent: list[int] = []
    stop = threading.Event()

    def drip(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", "1000")
        h.end_headers()
        with contextlib.suppress(OSError):
            while not stop.wait(1.0):
                h.wfile.write(b"d")
                h.wfile.flush()
                sent.append(1)

    server.routes["/drip"] = drip
    try:
        # Every byte arrives within the read timeout: only the total limit can end this.
        with fetch(server.url("/drip"), allow=LOOPBACK, read_timeout=5, total_timeout=2) as response:
            with pytest.raises(FetchTimeout, match="total time limit") as caught:
                response.read()
            assert response.bytes_read <= 3
    finally:
        stop.set()
    assert len(sent) <= 4
    assert exit_code_for(caught.value) == 75
