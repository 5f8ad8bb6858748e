"""Helpers of the images tests: a real HTTP image host on 127.0.0.1, products, a task context."""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

import psycopg
import structlog

from worker.common import accounting
from worker.common.settings import Settings
from worker.common.shops import Shop
from worker.common.task import TaskContext

LAST_MODIFIED = "Sat, 28 Nov 2026 10:00:00 GMT"
BIG = 40 * 1024 * 1024
METADATA = "http://169.254.169.254/latest/meta-data/"


@dataclass
class ImageHost:
    """Files by path; every request is logged as (path, status). Serves like a CDN: ETag and
    Last-Modified on every file (unless ``no_validators``), 304 to a matching conditional GET,
    and Content-Type image/jpeg whatever the bytes are."""

    port: int = 0
    files: dict[str, bytes] = field(default_factory=dict)
    no_validators: set[str] = field(default_factory=set)
    unavailable: set[str] = field(default_factory=set)  # paths that answer 503 for now
    hits: list[tuple[str, int]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    drip_interval: float = 1.0  # /drip.jpg sends one byte this often, until released
    drip_sent: int = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def statuses(self) -> list[int]:
        with self.lock:
            return [status for _, status in self.hits]

    def clear(self) -> None:
        with self.lock:
            self.hits.clear()


def handler_for(host: ImageHost) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _hit(self, status: int) -> None:
            with host.lock:
                host.hits.append((self.path, status))

        def _status(self, status: int, headers: dict[str, str] | None = None) -> None:
            self._hit(status)
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self) -> None:
            path = self.path
            try:
                if path in host.unavailable:
                    self._status(503)
                elif path in host.files:
                    self._file(path, host.files[path])
                elif path == "/stall.jpg":
                    self._hit(200)
                    self.send_response(200)
                    self.send_header("Content-Length", "100000")
                    self.end_headers()
                    self.wfile.write(b"\xff\xd8\xff\xe0")
                    self.wfile.flush()
                    host.release.wait(20)
                elif path == "/drip.jpg":
                    self._hit(200)
                    self.send_response(200)
                    self.send_header("Content-Length", "100000")
                    self.end_headers()
                    while not host.release.wait(host.drip_interval):
                        self.wfile.write(b"\xff")
                        self.wfile.flush()
                        with host.lock:
                            host.drip_sent += 1
                elif path == "/metadata.jpg":
                    self._status(302, {"Location": METADATA})
                elif path.startswith("/status/"):
                    self._status(int(path.split("/")[2].split("?")[0]))
                elif path in ("/big-length.jpg", "/big-stream.jpg"):
                    self._big(announce=path == "/big-length.jpg")
                else:
                    self._status(404)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up, as it should have

        def _file(self, path: str, body: bytes) -> None:
            etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
            validators = path not in host.no_validators
            if validators and (
                self.headers.get("If-None-Match") == etag
                or (self.headers.get("If-None-Match") is None
                    and self.headers.get("If-Modified-Since") == LAST_MODIFIED)
            ):
                self._status(304, {"ETag": etag})
                return
            self._hit(200)
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(body)))
            if validators:
                self.send_header("ETag", etag)
                self.send_header("Last-Modified", LAST_MODIFIED)
            self.end_headers()
            self.wfile.write(body)

        def _big(self, *, announce: bool) -> None:
            self._hit(200)
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            if announce:
                self.send_header("Content-Length", str(BIG))
            else:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            chunk = b"\xff\xd8" + b"\0" * (1024 * 1024 - 2)
            for _ in range(BIG // len(chunk)):
                self.wfile.write(chunk)

    return Handler


def add_product(
    conn: psycopg.Connection,
    shop: Shop,
    product_id: str,
    image_link: str | None,
    additional: list[str] | None = None,
) -> None:
    conn.execute(
        """
        INSERT INTO products (shop_id, product_id, title, link, image_link, additional_image_links,
                              price, currency, content_hash)
        VALUES (%s, %s, %s, %s, %s, %s, 1000, %s, %s)
        """,
        (shop.id, product_id, f"Product {product_id}", f"https://shop.example/{product_id}",
         image_link, additional or [], shop.currency, b"hash"),
    )
    conn.commit()


@dataclass
class Harness:
    """A shop, its task context, and the connections behind it."""

    settings: Settings
    conn: psycopg.Connection
    acct: psycopg.Connection
    shop: Shop

    def context(self) -> TaskContext:
        rejects = accounting.RejectSink(self.acct, shop_id=self.shop.id, task="images")
        return TaskContext(
            settings=self.settings, conn=self.conn, shop=self.shop, run_id=None, task_run_id=0,
            rejects=rejects, log=structlog.get_logger("test"), task="images",
        )

    def rows(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        rows = self.conn.execute(query, params).fetchall()
        self.conn.commit()
        return rows
