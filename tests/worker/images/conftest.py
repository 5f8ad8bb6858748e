"""The images tests' fixtures: a real HTTP image host on 127.0.0.1 and a shop with its task context."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer

import psycopg
import pytest

from tests.fixtures_shops import make_shop
from tests.worker.images.helpers import Harness, ImageHost, handler_for
from worker.common.settings import Settings


@pytest.fixture
def image_host() -> Iterator[ImageHost]:
    host = ImageHost()
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(host))
    server.daemon_threads = True
    host.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, name="image-host", daemon=True)
    thread.start()
    try:
        yield host
    finally:
        host.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def harness(settings_env: dict[str, str], database_url: str, conn: psycopg.Connection) -> Iterator[Harness]:
    shop = make_shop(conn, id="shop-img", channels=["google", "meta", "naver"])
    conn.commit()
    with psycopg.connect(database_url, autocommit=True) as acct:
        yield Harness(Settings.from_env(settings_env), conn, acct, shop)
