"""``shops preview``: the demo's shops through their mapping and every channel's rules, writing
nothing; what it says a channel would publish is what the real collect and feed then publish."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from submitter import cli
from submitter.demo import BROKEN_SHOP
from submitter.shopfile import read_shop_file
from tests.fixtures_logging import restore_logging  # noqa: F401 -- the fixture
from tests.submitter.conftest import Samples
from worker.common.shops import upsert_shops

# main() and the Lambda handler configure logging onto streams pytest closes after each test.
pytestmark = pytest.mark.usefixtures("restore_logging")


def blocks(text: str) -> dict[str, str]:
    """The output per shop, keyed by shop id."""
    parts = re.split(r"^(?=shop \S+ \()", text, flags=re.MULTILINE)
    return {re.match(r"shop (\S+)", p).group(1): p for p in parts if p.startswith("shop ")}  # type: ignore[union-attr]


def published(text: str) -> dict[str, int]:
    return {m.group(1): int(m.group(2))
            for m in re.finditer(r"^  (\w+): (\d+) published", text, flags=re.MULTILINE)}


def test_the_demo_shops_ready_or_not_with_their_reasons(
    samples: Samples, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    shops_file = samples.shops
    # The demo's book shop publishes its titles as descriptions (it exports none); without that
    # option Google would take none of its items.
    data = json.loads(shops_file.read_text(encoding="utf-8"))
    for shop in data["shops"]:
        if shop["id"] == "daegu-books":
            del shop["options"]["description_from_title"]
    shops_file.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    assert cli.main(["shops", "preview", str(shops_file)]) == 65  # two of them are not ready
    out = blocks(capsys.readouterr().out)
    assert set(out) == {"seoul-fashion", "busan-market", "daegu-books", "pangyo-tech",
                        "seongsu-apparel", BROKEN_SHOP}
    for ready in ("seoul-fashion", "busan-market", "pangyo-tech", "seongsu-apparel"):
        assert f"READY: shop {ready}" in out[ready] and "NOT READY" not in out[ready]
    busan = out["busan-market"]
    assert "#4 BM-4" in busan and "REJECTED by collect: price cannot be read: '문의'" in busan
    assert "'문의' (unreadable)" in busan  # the mapped value, shown as what it was
    assert "collect: 3 valid, 1 rejected" in busan
    daegu = out["daegu-books"]
    assert "NOT READY: shop daegu-books" in daegu
    assert "channel google would publish none of the valid items" in daegu
    assert "google         excluded: description is missing" in daegu
    assert "NOT READY" in out[BROKEN_SHOP] and "HTML page" in out[BROKEN_SHOP]
    # The apparel shop's options are previewed as the products collect stores: one per option.
    assert "SA-HOOD-BK-M" in out["seongsu-apparel"] and "#1 SA-HOOD " not in out["seongsu-apparel"]
    seoul = out["seoul-fashion"]
    assert "#3 SF-1003" in seoul and "naver          left out by the channel's policy" in seoul


def test_preview_agrees_with_the_real_night_and_writes_nothing(
    samples: Samples, env: dict[str, str], conn: psycopg.Connection, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    shops_file = samples.shops
    shops = {s.id: s for s in read_shop_file(shops_file)}
    upsert_shops(conn, [shops["seoul-fashion"], shops["daegu-books"]])
    conn.commit()
    previews = {}
    for shop_id in ("seoul-fashion", "daegu-books"):
        code = cli.main(["shops", "preview", shop_id])  # a registered shop, by id
        previews[shop_id] = published(capsys.readouterr().out)
        assert code == 0, shop_id  # both publish every channel (the book shop: titles as descriptions)
    # nothing was written: no products, no task rows, no rejects, no files
    counts = conn.execute("SELECT (SELECT count(*) FROM products), (SELECT count(*) FROM "
                          "task_runs), (SELECT count(*) FROM rejects)").fetchone()
    conn.commit()
    assert counts == (0, 0, 0) and not (tmp_path / "out").exists()
    for shop_id, expected in previews.items():
        for task in ("collect", "feed"):
            proc = subprocess.run([sys.executable, "-m", "worker", task],
                                  env={**env, "SHOP_ID": shop_id}, capture_output=True, text=True,
                                  timeout=120)
            assert proc.returncode == 0, proc.stdout[-3000:]
        manifests = {
            p.name.split(".")[0]: json.loads(p.read_text(encoding="utf-8"))["rows"]
            for p in (tmp_path / "out" / "feeds" / shop_id).glob("*.manifest.json")
        }
        assert manifests == expected, shop_id


def test_the_limit_and_a_mapping_that_fits_nothing(
    samples: Samples, env: dict[str, str], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    base = samples.base
    with (tmp_path / "www" / "many.jsonl").open("w", encoding="utf-8") as f:
        for n in range(500):
            f.write(json.dumps({"id": f"p{n}", "title": f"Tea {n}", "price": "1,000원",
                                "description": "Green tea.", "brand": "Tea Co", "link": f"https://t.example/{n}",
                                "image_link": f"https://t.example/{n}.jpg"}) + "\n")
    shop = {"id": "tea", "name": "Tea", "source_url": f"{base}/many.jsonl", "format": "jsonl",
            "currency": "KRW", "channels": ["google", "meta"],
            "mapping": {"price": {"path": "price", "parse": "price"}}}
    good = tmp_path / "tea.json"
    good.write_text(json.dumps({"shops": [shop]}), encoding="utf-8")
    assert cli.main(["shops", "preview", str(good), "--limit", "7"]) == 0
    out = capsys.readouterr().out
    assert "shop tea: 7 records read" in out and out.count("\n#") == 7
    assert published(out) == {"google": 7, "meta": 7}
    bad = tmp_path / "tea-bad.json"
    bad.write_text(json.dumps({"shops": [{**shop, "mapping": {"title": "name"}}]}),
                   encoding="utf-8")
    assert cli.main(["shops", "preview", str(bad), "--limit", "5"]) == 65
    out = capsys.readouterr().out
    assert "no record passes collect's validation" in out
    assert "5 × missing required field title (field title)" in out
