"""``catalog-submit status RUN --reasons``: the feed's top reasons per shop and channel."""

from __future__ import annotations

from decimal import Decimal

import psycopg
import pytest

from submitter.cli import main
from submitter.status import feed_reasons
from tests.catalogs import insert_products, product
from tests.fixtures_shops import make_shop
from worker.common.settings import Settings
from worker.router import run_task


def test_status_reasons_lists_each_channels_top_reasons_for_the_run(
    cli_env: str, conn: psycopg.Connection, settings_env: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    make_shop(conn, id="shop-a", channels=["google", "naver"])
    insert_products(conn, "shop-a", [
        product("P1", price=Decimal("0")), product("P2", price=Decimal("0")),
        product("P3", gtin="123"), product("P4", product_type=None), product("P5"),
    ])
    assert main(["plan", "--date", "2026-11-29", "--shop-ids", "shop-a"]) == 0
    env = {**settings_env, "RUN_ID": "2026-11-29", "AWS_BATCH_JOB_ARRAY_INDEX": "0"}
    assert run_task("feed", Settings.from_env(env)) == 0
    rows = feed_reasons(conn, "2026-11-29")
    assert [(r["channel"], r["outcome"], r["reason"], r["count"]) for r in rows] == [
        ("google", "excluded", "price is zero", 2),
        ("google", "dropped", "gtin is not 8, 12, 13 or 14 digits long", 1),
        ("naver", "excluded", "price is zero", 2),
        ("naver", "excluded", "category_name1 is missing (product_type is empty)", 1),
        ("naver", "dropped", "gtin is not 8, 12, 13 or 14 digits long", 1),
    ]
    assert feed_reasons(conn, "2026-11-29", top=1)[1]["reason"] == (
        "gtin is not 8, 12, 13 or 14 digits long"
    )
    assert feed_reasons(conn, "2026-11-29", shop_id="other") == []
    capsys.readouterr()
    main(["status", "2026-11-29", "--reasons"])
    out = capsys.readouterr().out
    assert "  shop-a\n    google\n      excluded       2  price is zero\n" in out
    assert "    naver\n      excluded       2  price is zero\n" in out
