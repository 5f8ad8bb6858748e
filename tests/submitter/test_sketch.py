"""``shops sketch``: each demo sample served from 127.0.0.1 is sketched, imported unchanged and
collected by the real worker; the sketch loads what the hand-written mapping loads."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import psycopg
import pytest

from submitter import cli
from submitter.demo import BROKEN_SHOP
from submitter.shopfile import read_shop_file
from submitter.sketch import HEAD_BYTES, sketch
from tests.fixtures_logging import restore_logging  # noqa: F401 -- the fixture
from tests.submitter.conftest import Samples
from worker.common.shops import upsert_shops

# main() and the Lambda handler configure logging onto streams pytest closes after each test.
pytestmark = pytest.mark.usefixtures("restore_logging")

SAMPLES = {"seoul-fashion": "seoul-fashion.json.gz", "busan-market": "busan-market.jsonl",
           "daegu-books": "daegu-books.csv", "pangyo-tech": "pangyo-tech.xml"}
COMPARED = "product_id, title, price, currency, link, image_link, availability"


def collect(env: dict[str, str], shop_id: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "worker", "collect"],
                          env={**env, "SHOP_ID": shop_id}, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]


def records_in(path: Path) -> int:
    data = path.read_bytes()
    if path.name.endswith(".gz"):
        data = gzip.decompress(data)
    text = data.decode("utf-8", "replace")
    if path.suffix == ".jsonl":
        return sum(1 for line in text.splitlines() if line.strip())
    if path.suffix == ".csv":
        return len(data.decode("cp949").splitlines()) - 1
    if path.suffix == ".xml":
        return text.count("<item ")
    return text.count('"sku"')


def test_each_sample_sketched_imported_unchanged_and_collected_loads_its_rows(
    samples: Samples, env: dict[str, str], conn: psycopg.Connection, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    base, www, shops_file = samples.base, samples.www, samples.shops
    # the hand-written mappings of the demo: the reference
    upsert_shops(conn, read_shop_file(shops_file))
    conn.commit()
    for shop_id, catalog in SAMPLES.items():
        out = tmp_path / f"{shop_id}.toml"
        code = cli.main(["shops", "sketch", f"{base}/catalogs/{catalog}", "--id",
                         f"{shop_id}-sketch", "-o", str(out)])
        printed = capsys.readouterr().out
        assert code == 0, printed
        assert "CHECK" in out.read_text(encoding="utf-8") or "CHECK" in printed
        tomllib.loads(out.read_text(encoding="utf-8"))  # valid TOML, as written
        assert cli.main(["shops", "import", str(out)]) == 0
        collect(env, shop_id)
        collect(env, f"{shop_id}-sketch")
        loaded = dict(conn.execute(
            "SELECT shop_id, count(*) FROM products WHERE shop_id IN (%s, %s) GROUP BY shop_id",
            (shop_id, f"{shop_id}-sketch")).fetchall())
        total = records_in(www / "catalogs" / catalog)
        reference, sketched = loaded.get(shop_id, 0), loaded.get(f"{shop_id}-sketch", 0)
        # at least 90 % of the rows the hand-written mapping loads, and of the catalog's rows
        # where the catalog has no deliberately bad row
        assert sketched >= 0.9 * reference, (shop_id, sketched, reference)
        assert sketched >= 0.9 * total or reference < total, (shop_id, sketched, total)
        mine = conn.execute(f"SELECT {COMPARED} FROM products WHERE shop_id = %s ORDER BY 1",
                            (f"{shop_id}-sketch",)).fetchall()
        theirs = conn.execute(f"SELECT {COMPARED} FROM products WHERE shop_id = %s ORDER BY 1",
                              (shop_id,)).fetchall()
        conn.commit()
        assert mine == theirs, shop_id


def test_the_sketch_reads_the_structure_of_each_sample(samples: Samples) -> None:
    base = samples.base
    allow = (__import__("ipaddress").ip_network("127.0.0.0/8"),)
    seoul = sketch(f"{base}/catalogs/seoul-fashion.json.gz", allow=allow)
    assert (seoul.fmt, seoul.compressed, seoul.format_options) == (
        "json", True, {"item_path": "data.items.item"})
    assert seoul.shop["mapping"]["product_id"] == "sku"
    assert seoul.shop["mapping"]["price"] == {"path": "pricing.amount", "parse": "price"}
    assert seoul.shop["mapping"]["image_link"] == {"path": "media.images", "first": True}
    assert any("variants" in k for k in seoul.notes)  # the option lists, marked
    fill = {f.path: f.filled / seoul.records for f in seoul.fields}
    assert fill["pricing.sale"] < 1 and fill["sku"] == 1
    daegu = sketch(f"{base}/catalogs/daegu-books.csv", allow=allow)
    assert daegu.format_options == {"encoding": "cp949"}
    assert daegu.shop["mapping"]["title"] == "상품명" and daegu.shop["currency"] == "KRW"
    assert "brand" in daegu.notes  # a publisher as the brand is a guess
    pangyo = sketch(f"{base}/catalogs/pangyo-tech.xml", allow=allow)
    assert pangyo.format_options == {"item_element": "item"}
    assert pangyo.shop["currency"] == "USD" and pangyo.shop["mapping"]["product_id"] == "@id"
    busan = sketch(f"{base}/catalogs/busan-market.jsonl", allow=allow)
    assert busan.fmt == "jsonl" and busan.shop["options"]["max_reject_share"] >= 0.25
    assert "문의" in busan.notes["options"]


def test_the_broken_export_is_called_an_html_page(
    samples: Samples, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    base = samples.base
    assert cli.main(["shops", "sketch", f"{base}/catalogs/{BROKEN_SHOP}.json"]) == 65
    out = capsys.readouterr().out
    assert "NOT A CATALOG" in out and "this is an HTML page, not a catalog export" in out
    assert "502 Bad Gateway" in out


def test_only_the_head_is_read_and_the_fetch_is_guarded(
    samples: Samples, env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    base, www = samples.base, samples.www
    line = {"id": "", "title": "Tea", "link": "https://x.example/p", "price": "₩1,000",
            "image": "https://x.example/p.jpg", "pad": "x" * 200}
    with (www / "big.jsonl").open("w", encoding="utf-8") as f:
        for n in range(30_000):  # about 9 MB
            f.write(json.dumps({**line, "id": f"p{n}"}) + "\n")
    allow = (__import__("ipaddress").ip_network("127.0.0.0/8"),)
    result = sketch(f"{base}/big.jsonl", allow=allow, max_records=100)
    assert result.truncated and result.records == 100
    assert result.shop["mapping"]["image_link"] == "image"
    assert (www / "big.jsonl").stat().st_size > HEAD_BYTES
    monkeypatch.delenv("FETCH_ALLOW_NETWORKS")
    assert cli.main(["shops", "sketch", f"{base}/big.jsonl"]) == 65
    assert "127.0.0.1" in capsys.readouterr().err
