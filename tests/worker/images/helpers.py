"""Helpers of the images tests: an image host (served by the tests' HTTP server), products, a task context."""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

import psycopg
import structlog

from tests.fixtures_http import Route, send
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
    and Content-Type image/jpeg whatever the bytes are. It answers every path of the tests'
    HTTP server (tests/fixtures_http.py) as its fallback."""

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

    def _hit(self, path: str, status: int) -> None:
        with self.lock:
            self.hits.append((path, status))

    def __call__(self, h: BaseHTTPRequestHandler) -> None:
        path = h.path
        if path in self.unavailable:
            self._answer(h, 503)
        elif path in self.files:
            body = self.files[path]
            route = Route(body, headers={"Content-Type": "image/jpeg"})
            if path not in self.no_validators:
                route.etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
                route.last_modified = LAST_MODIFIED
            self._hit(path, 304 if route.not_modified(h) else 200)
            route(h)
        elif path == "/stall.jpg":
            self._hit(path, 200)
            h.send_response(200)
            h.send_header("Content-Length", "100000")
            h.end_headers()
            h.wfile.write(b"\xff\xd8\xff\xe0")
            h.wfile.flush()
            self.release.wait(20)
        elif path == "/drip.jpg":
            self._hit(path, 200)
            h.send_response(200)
            h.send_header("Content-Length", "100000")
            h.end_headers()
            while not self.release.wait(self.drip_interval):
                h.wfile.write(b"\xff")
                h.wfile.flush()
                with self.lock:
                    self.drip_sent += 1
        elif path == "/metadata.jpg":
            self._answer(h, 302, {"Location": METADATA})
        elif path.startswith("/status/"):
            self._answer(h, int(path.split("/")[2].split("?")[0]))
        elif path in ("/big-length.jpg", "/big-stream.jpg"):
            self._big(h, announce=path == "/big-length.jpg")
        else:
            self._answer(h, 404)

    def _answer(self, h: BaseHTTPRequestHandler, status: int, headers: dict[str, str] | None = None) -> None:
        self._hit(h.path, status)
        send(h, status, b"", {**(headers or {}), "Content-Length": "0"})

    def _big(self, h: BaseHTTPRequestHandler, *, announce: bool) -> None:
        self._hit(h.path, 200)
        h.send_response(200)
        h.send_header("Content-Type", "image/jpeg")
        if announce:
            h.send_header("Content-Length", str(BIG))
        else:
            h.send_header("Connection", "close")
            h.close_connection = True
        h.end_headers()
        chunk = b"\xff\xd8" + b"\0" * (1024 * 1024 - 2)
        for _ in range(BIG // len(chunk)):
            h.wfile.write(chunk)


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
