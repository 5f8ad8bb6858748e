"""The tests' HTTP(S) server answers as its routes say: the other tests rely on it."""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import Message
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from tests.fixtures_http import (
    Route,
    Server,
    body_of,
    make_certificates,
    read_body,
    redirect_to,
    send,
    serve,
    static_files,
)


@dataclass
class Answer:
    status: int
    headers: Message
    body: bytes


def get(server: Server, path: str, **headers: str) -> Answer:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        return Answer(response.status, response.headers, response.read())
    finally:
        conn.close()


@contextmanager
def opened(server: Server, path: str) -> Iterator[http.client.HTTPResponse]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request("GET", path)
        yield conn.getresponse()
    finally:
        conn.close()


def test_routes_answer_by_path_and_record_each_request(http_server: Server) -> None:
    http_server.routes["/a"] = Route(b"alpha", headers={"Content-Type": "text/plain"})
    http_server.routes["/b"] = body_of(b"beta", **{"X-Kind": "b"})
    a = get(http_server, "/a?x=1", **{"X-Probe": "1"})
    assert (a.status, a.body, a.headers["Content-Type"]) == (200, b"alpha", "text/plain")
    b = get(http_server, "/b")
    assert (b.status, b.body, b.headers["X-Kind"]) == (200, b"beta", "b")
    missing = get(http_server, "/c")
    assert missing.status == 404
    assert [path for path, _ in http_server.hits] == ["/a", "/b", "/c"]
    assert http_server.hits[0][1]["x-probe"] == "1"  # headers are case-insensitive
    assert http_server.count("/a") == 1 and http_server.requests is http_server.hits


def test_a_status_route_and_a_redirect_chain(http_server: Server) -> None:
    http_server.routes["/gone"] = Route(status=410)
    http_server.routes["/r1"] = redirect_to("/r2", 301)
    http_server.routes["/r2"] = redirect_to(http_server.url("/end"))
    http_server.routes["/end"] = body_of(b"here")
    assert get(http_server, "/gone").status == 410
    with urllib.request.urlopen(http_server.url("/r1"), timeout=10) as response:
        assert response.read() == b"here" and response.url == http_server.url("/end")
    assert [path for path, _ in http_server.hits] == ["/gone", "/r1", "/r2", "/end"]


def test_validators_give_a_304_to_a_matching_conditional_get(http_server: Server) -> None:
    when = "Sat, 28 Nov 2026 10:00:00 GMT"
    http_server.routes["/f"] = Route(b"file", etag='"v1"', last_modified=when)
    first = get(http_server, "/f")
    assert (first.body, first.headers["ETag"], first.headers["Last-Modified"]) == (b"file", '"v1"', when)
    assert get(http_server, "/f", **{"If-None-Match": '"v1"'}).status == 304
    assert get(http_server, "/f", **{"If-Modified-Since": when}).status == 304
    # If-None-Match decides when both are sent (RFC 9110, 13.2.2).
    stale = get(http_server, "/f", **{"If-None-Match": '"v0"', "If-Modified-Since": when})
    assert (stale.status, stale.body) == (200, b"file")


def test_a_cut_body_ends_before_its_declared_length(http_server: Server) -> None:
    http_server.routes["/cut"] = Route(b"x" * 1000, cut_after=10)
    with opened(http_server, "/cut") as response, pytest.raises(http.client.IncompleteRead) as caught:
        response.read()
    assert caught.value.partial == b"x" * 10


def test_a_drip_sends_one_chunk_then_waits() -> None:
    with serve({"/slow": Route(b"a" * 4 + b"b" * 4, chunk=4, drip=60)}) as server, \
            socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        received = b""
        while not received.endswith(b"aaaa"):
            received += sock.recv(100)
        sock.settimeout(0.5)
        with pytest.raises(TimeoutError):
            sock.recv(100)
        assert b"Content-Length: 8" in received
    # Leaving the block releases the drip: the server stops without waiting a minute.


def test_a_stall_holds_the_rest_until_released(http_server: Server) -> None:
    go = threading.Event()
    http_server.routes["/s"] = Route(b"0123456789", stall_after=3, stall=go)
    with opened(http_server, "/s") as response:
        assert response.read(3) == b"012"
        go.set()
        assert response.read() == b"3456789"


def test_a_fallback_answers_every_other_path_and_every_method(http_server: Server) -> None:
    seen: list[tuple[str, str, bytes]] = []

    def echo(h: BaseHTTPRequestHandler) -> None:
        body = read_body(h)
        seen.append((h.command, h.path, body))
        send(h, 201, body[::-1])

    http_server.fallback = echo
    conn = http.client.HTTPConnection("127.0.0.1", http_server.port, timeout=10)
    try:
        conn.request("PUT", "/bucket/key", body=b"abc")
        assert conn.getresponse().read() == b"cba"
        conn.request("POST", "/chunked", body=iter([b"de", b"f"]), encode_chunked=True)
        assert conn.getresponse().read() == b"fed"
    finally:
        conn.close()
    assert seen == [("PUT", "/bucket/key", b"abc"), ("POST", "/chunked", b"def")]


def raw_get(server: Server, path: str) -> bytes:
    """The status line of a GET sent as written: no client tidies ``..`` away first."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        return sock.makefile("rb").readline()


def test_static_files_serve_a_folder_and_nothing_outside_it(
    http_server: Server, tmp_path: Path
) -> None:
    www = tmp_path / "www"
    (www / "catalogs").mkdir(parents=True)
    (www / "catalogs" / "shop one.json.gz").write_bytes(b"gzipped")
    (www / "feed.csv").write_bytes(b"id,title\n")
    (tmp_path / "secret.txt").write_bytes(b"password")
    (www / "link.txt").symlink_to(tmp_path / "secret.txt")
    http_server.fallback = static_files(www)
    gz = get(http_server, "/catalogs/shop%20one.json.gz?v=2")
    assert (gz.status, gz.body, gz.headers["Content-Type"]) == (200, b"gzipped", "application/gzip")
    csv = get(http_server, "/feed.csv")
    assert (csv.body, csv.headers["Content-Type"]) == (b"id,title\n", "text/csv")
    again = get(http_server, "/feed.csv", **{"If-Modified-Since": csv.headers["Last-Modified"]})
    assert again.status == 304
    for missing in ("/nothing.csv", "/catalogs", "/link.txt"):
        assert get(http_server, missing).status == 404, missing
    for escape in ("/../secret.txt", "/catalogs/../../secret.txt", "/%2e%2e/secret.txt",
                   "/..%2Fsecret.txt"):
        assert raw_get(http_server, escape) == b"HTTP/1.1 404 Not Found\r\n", escape


def test_tls_presents_a_certificate_the_throwaway_ca_signed(tmp_path: Path) -> None:
    certificates = make_certificates(tmp_path, "shop.example")
    with serve({"/t": body_of(b"secret")}, tls=certificates) as server:
        assert server.base.startswith("https://127.0.0.1:")
        context = certificates.client_context()
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw, \
                context.wrap_socket(raw, server_hostname="shop.example") as tls:
            tls.sendall(b"GET /t HTTP/1.1\r\nHost: shop.example\r\nConnection: close\r\n\r\n")
            answer = b""
            while chunk := tls.recv(4096):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"secret")
        assert server.server_names == ["shop.example"]
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw, \
                pytest.raises(ssl.SSLCertVerificationError):
            context.wrap_socket(raw, server_hostname="other.example")
        with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
            urllib.request.urlopen(server.url("/t"), timeout=10)  # no trust in the throw-away CA


def test_an_ipv6_server_listens_on_the_loopback() -> None:
    with serve({"/six": body_of(b"6")}, family=socket.AF_INET6) as server:
        assert server.url("/six") == f"http://[::1]:{server.port}/six"
        conn = http.client.HTTPConnection("::1", server.port, timeout=10)
        try:
            conn.request("GET", "/six")
            assert conn.getresponse().read() == b"6"
        finally:
            conn.close()
