"""One real HTTP(S) server on 127.0.0.1 for the tests and the benchmarks: routes by path, canned
responses or handlers, redirects, validators (ETag, Last-Modified, 304), a slow drip, a folder's
files, TLS from a throw-away CA, and a record of every request.

A route is either a ``Route`` (a canned response) or any callable that takes the request handler
and answers it (``send``, ``body_of``, ``redirect_to`` and ``static_files`` build the common ones).
Every method (GET, HEAD, PUT, POST, DELETE) goes through the same routes; ``read_body`` reads what a
client sent.
"""

from __future__ import annotations

import contextlib
import mimetypes
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import Message
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

Handler = Callable[[BaseHTTPRequestHandler], None]


# ---------------------------------------------------------------------------------------------
# Responses
# ---------------------------------------------------------------------------------------------


def send(
    handler: BaseHTTPRequestHandler,
    status: int,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> None:
    """Answer with ``status``, ``headers`` and ``body`` (a Content-Length unless one is given)."""
    handler.send_response(status)
    headers = headers or {}
    if "Content-Length" not in headers and status != 304:
        handler.send_header("Content-Length", str(len(body)))
    for name, value in headers.items():
        handler.send_header(name, value)
    handler.end_headers()
    if body and handler.command != "HEAD":
        handler.wfile.write(body)


def body_of(data: bytes, **headers: str) -> Handler:
    """A route that answers 200 with ``data``."""
    return lambda h: send(h, 200, data, headers)


def redirect_to(location: str, status: int = 302) -> Handler:
    """A route that redirects to ``location``."""
    return lambda h: send(h, status, b"", {"Location": location})


def read_body(handler: BaseHTTPRequestHandler) -> bytes:
    """The request's body, by Content-Length or chunked (as boto3 sends some uploads)."""
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        data = b""
        while True:
            size = int(handler.rfile.readline().split(b";")[0], 16)
            if size == 0:
                while handler.rfile.readline() not in (b"\r\n", b""):
                    pass
                return data
            data += handler.rfile.read(size)
            handler.rfile.readline()
    return handler.rfile.read(int(handler.headers.get("Content-Length") or 0))


@dataclass
class Route:
    """A canned response. With ``etag`` or ``last_modified`` it answers a matching conditional GET
    with 304 (If-None-Match first, as RFC 9110 says; If-Modified-Since only without it)."""

    body: bytes = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    etag: str | None = None
    last_modified: str | None = None
    # Send only this many bytes of the body, then drop the connection (a broken download).
    cut_after: int | None = None
    # Send this many bytes, then wait for the event before sending the rest (a slow server).
    stall_after: int | None = None
    stall: threading.Event | None = None
    # A slow drip: ``chunk`` bytes every ``drip`` seconds (until the server stops).
    drip: float | None = None
    chunk: int = 1024

    def not_modified(self, handler: BaseHTTPRequestHandler) -> bool:
        if_none_match = handler.headers.get("If-None-Match")
        if if_none_match is not None:
            return self.etag is not None and if_none_match == self.etag
        since = handler.headers.get("If-Modified-Since")
        return self.last_modified is not None and since == self.last_modified

    def validators(self) -> dict[str, str]:
        found = {}
        if self.etag:
            found["ETag"] = self.etag
        if self.last_modified:
            found["Last-Modified"] = self.last_modified
        return found

    def __call__(self, handler: BaseHTTPRequestHandler) -> None:
        if self.not_modified(handler):
            send(handler, 304, headers=self.validators())
            return
        handler.send_response(self.status)
        for name, value in {**self.headers, **self.validators()}.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(self.body)))
        handler.end_headers()
        if handler.command == "HEAD":
            return
        body = self.body if self.cut_after is None else self.body[: self.cut_after]
        if self.stall_after is not None and self.stall is not None:
            handler.wfile.write(body[: self.stall_after])
            handler.wfile.flush()
            self.stall.wait(60)
            body = body[self.stall_after :]
        if self.drip is not None:
            release = _state(handler).release
            for start in range(0, len(body), self.chunk):
                handler.wfile.write(body[start : start + self.chunk])
                handler.wfile.flush()
                if start + self.chunk < len(body) and release.wait(self.drip):
                    return
            return
        handler.wfile.write(body)
        if self.cut_after is not None:
            handler.wfile.flush()
            handler.close_connection = True


_COMPRESSED = {"gzip": "application/gzip", "bzip2": "application/x-bzip2", "xz": "application/x-xz"}


def static_files(folder: Path) -> Handler:
    """A route (as a ``fallback``, for every path) that answers with the file under ``folder`` the
    path names, with its type and Last-Modified (so a conditional GET gets a 304), as a web
    server in front of a shop's export does. A folder, a missing file, or a path that leaves
    ``folder`` (``..``, encoded or not, or a link pointing out) is a 404."""
    root = folder.resolve()

    def answer(handler: BaseHTTPRequestHandler) -> None:
        target = (root / unquote(urlsplit(handler.path).path).lstrip("/")).resolve()
        if not target.is_relative_to(root) or not target.is_file():
            send(handler, 404, b"no such file")
            return
        kind, encoding = mimetypes.guess_type(target.name)
        # A .gz file is served as the gzip file it is, not as its content with an encoding.
        kind = _COMPRESSED.get(encoding or "", kind or "application/octet-stream")
        modified = formatdate(target.stat().st_mtime, usegmt=True)
        Route(target.read_bytes(), headers={"Content-Type": kind}, last_modified=modified)(handler)

    return answer


# ---------------------------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------------------------


@dataclass
class Server:
    """A running server: add routes at any time; ``hits`` holds (path, headers) of each request,
    the path without its query, the headers case-insensitive."""

    host: str
    port: int
    scheme: str = "http"
    routes: dict[str, Route | Handler] = field(default_factory=dict)
    # Answers every path that has no route; a 404 without one.
    fallback: Handler | None = None
    hits: list[tuple[str, Message]] = field(default_factory=list)
    # Set when the server stops: handlers that wait on it (stalls, drips) give up then.
    release: threading.Event = field(default_factory=threading.Event)
    # The names clients asked for in TLS's SNI, in order.
    server_names: list[str | None] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def base(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    @property
    def requests(self) -> list[tuple[str, Message]]:
        return self.hits

    def url(self, path: str, host: str | None = None) -> str:
        return f"{self.scheme}://{host or self.host}:{self.port}{path}"

    def count(self, path: str) -> int:
        with self.lock:
            return sum(1 for hit_path, _ in self.hits if hit_path == path)

    def route_for(self, raw_path: str) -> Route | Handler | None:
        for key in (raw_path, raw_path.split("?", 1)[0]):
            route = self.routes.get(key)
            if route is not None:
                return route
        return self.fallback


def _state(handler: BaseHTTPRequestHandler) -> Server:
    return handler.server.state  # type: ignore[attr-defined, no-any-return]


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _dispatch(self) -> None:
        state = _state(self)
        with state.lock:
            state.hits.append((self.path.split("?", 1)[0], self.headers))
        route = state.route_for(self.path)
        # A client that gives up midway (as the fetch must, on a timeout or a limit) is no error.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError, ssl.SSLError):
            if route is None:
                send(self, 404, b"no such path")
            else:
                route(self)

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _dispatch

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def serve(
    routes: dict[str, Route | Handler] | None = None,
    *,
    fallback: Handler | None = None,
    tls: Certificates | ssl.SSLContext | None = None,
    family: socket.AddressFamily = socket.AF_INET,
) -> Iterator[Server]:
    """A server on 127.0.0.1 (``::1`` for AF_INET6) on a free port, stopped on exit.

    ``tls``: a ``Certificates`` (the server presents its certificate, SNI names are recorded in
    ``server_names``) or a ready server ``SSLContext``.
    """
    v6 = family == socket.AF_INET6
    state = Server("[::1]" if v6 else "127.0.0.1", 0, "https" if tls is not None else "http",
                   routes if routes is not None else {}, fallback)

    class _Server(ThreadingHTTPServer):
        address_family = family
        daemon_threads = True

    server = _Server(("::1" if v6 else "127.0.0.1", 0), _RequestHandler)
    server.state = state  # type: ignore[attr-defined]
    if tls is not None:
        context = tls.server_context(state.server_names) if isinstance(tls, Certificates) else tls
        server.socket = context.wrap_socket(server.socket, server_side=True)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="http-fixture", daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def http_server() -> Iterator[Server]:
    """A plain HTTP server for this test; add routes to ``http_server.routes``."""
    with serve() as server:
        yield server


# ---------------------------------------------------------------------------------------------
# TLS: a throw-away CA and a server certificate
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Certificates:
    """PEM files: the CA a client trusts, and the server's certificate and key."""

    ca: Path
    cert: Path
    key: Path

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts this CA only."""
        return ssl.create_default_context(cafile=str(self.ca))

    def server_context(self, server_names: list[str | None] | None = None) -> ssl.SSLContext:
        """A server context presenting the certificate; SNI names go to ``server_names``."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        if server_names is not None:
            context.sni_callback = lambda sock, name, ctx: server_names.append(name)  # type: ignore[func-returns-value]
        return context


def make_certificates(folder: Path, name: str = "shop.example") -> Certificates:
    """A throw-away CA and a certificate for ``name`` signed by it, valid from yesterday to
    tomorrow, written into ``folder``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "catalog-batch test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                          content_commitment=False, key_encipherment=False,
                          data_encipherment=False, key_agreement=False, encipher_only=False,
                          decipher_only=False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    found = Certificates(folder / "ca.pem", folder / "cert.pem", folder / "key.pem")
    found.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    found.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    found.key.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                          serialization.NoEncryption())
    )
    return found
