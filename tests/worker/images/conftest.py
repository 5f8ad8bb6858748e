"""The images tests' fixtures: a real HTTP image host on 127.0.0.1 and a shop with its task context."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from tests.fixtures_http import serve
from tests.fixtures_shops import make_shop
from tests.worker.images.helpers import Harness, ImageHost
from worker.common.settings import Settings


@pytest.fixture
def image_host() -> Iterator[ImageHost]:
    host = ImageHost()
    with serve(fallback=host) as server:
        host.port = server.port
        try:
            yield host
        finally:
            host.release.set()


@pytest.fixture
def harness(settings_env: dict[str, str], database_url: str, conn: psycopg.Connection) -> Iterator[Harness]:
    shop = make_shop(conn, id="shop-img", channels=["google", "meta", "naver"])
    conn.commit()
    with psycopg.connect(database_url, autocommit=True) as acct:
        yield Harness(Settings.from_env(settings_env), conn, acct, shop)
