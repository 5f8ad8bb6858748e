"""The images task end to end: a real HTTP host on 127.0.0.1, a real PostgreSQL, a real store."""

from __future__ import annotations

import io
import os
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from structlog.testing import capture_logs

from tests.worker.images import samples as s
from tests.worker.images.helpers import Harness, ImageHost, add_product
from worker.common.errors import TransientError
from worker.images import task
from worker.images.pipeline import ImagesConfig

TODAY = date(2026, 11, 29)


def fast(h: Harness, **overrides: Any) -> ImagesConfig:
    """Production behaviour with test-sized timeouts: no retries within an attempt, half a second
    of silence is a stall."""
    values: dict[str, Any] = {
        "allow": h.settings.fetch_allow_networks, "read_timeout": 0.5, "connect_timeout": 2.0,
        "retries": 0, "fetch_workers": 4, "decode_workers": 2, "on": TODAY,
    }
    values.update(overrides)
    return ImagesConfig(**values)


def image_row(h: Harness, url: str) -> dict[str, Any]:
    cur = h.conn.execute(
        "SELECT status, last_outcome, tries, http_status, output_key, output_url, width, height,"
        " fitness, error, etag FROM images WHERE shop_id = %s AND source_url = %s",
        (h.shop.id, url),
    )
    names = [d.name for d in cur.description or []]
    row = cur.fetchone()
    h.conn.commit()
    assert row is not None, f"no images row for {url}"
    return dict(zip(names, row, strict=True))


def product_row(h: Harness, product_id: str) -> dict[str, Any]:
    cur = h.conn.execute(
        "SELECT image_url, image_width, image_height, image_fitness, additional_image_urls"
        " FROM products WHERE shop_id = %s AND product_id = %s",
        (h.shop.id, product_id),
    )
    names = [d.name for d in cur.description or []]
    row = cur.fetchone()
    h.conn.commit()
    assert row is not None
    return dict(zip(names, row, strict=True))


def stored_image(url: str) -> Image.Image:
    im = Image.open(io.BytesIO(Path(url).read_bytes()))
    im.load()
    return im


def stored_files(h: Harness) -> dict[str, float]:
    root = Path(h.settings.output_url) / "images" / h.shop.id
    if not root.exists():
        return {}
    return {p.name: p.stat().st_mtime_ns for p in root.iterdir()}


CASES = {
    # path: (bytes, expected status)
    "/large.jpg": (s.noisy_jpeg((3000, 2000)), "ok"),
    "/rotated.jpg": (s.exif_rotated_jpeg(), "too_small"),
    "/cmyk.jpg": (s.cmyk_jpeg((600, 600)), "ok"),
    "/adobe.jpg": (s.adobe_rgb_jpeg((60, 120, 200), (600, 600)), "ok"),
    "/palette.png": (s.palette_png_with_transparency((800, 600)), "ok"),
    "/grey16.png": (s.png16((600, 600)), "ok"),
    "/anim.gif": (s.animated_gif((600, 600)), "ok"),
    "/photo.webp": (s.webp((800, 600)), "ok"),
    "/truncated.jpg": (s.truncated_jpeg(), "corrupt"),
    "/bomb.png": (s.png_claiming(100_000, 100_000), "bomb"),
    "/text.jpg": (s.TEXT_NAMED_JPG, "not_image"),
}


def test_every_kind_of_image_and_failure(harness: Harness, image_host: ImageHost) -> None:
    h = harness
    for path, (body, _) in CASES.items():
        image_host.files[path] = body
        add_product(h.conn, h.shop, path.strip("/"), image_host.url(path))
    failures = {
        "big-length": ("/big-length.jpg", "too_large", None),
        "big-stream": ("/big-stream.jpg", "too_large", None),
        "metadata": ("/metadata.jpg", "blocked", None),
        "missing": ("/status/404", "http_status", 404),
    }
    for pid, (path, _, _) in failures.items():
        add_product(h.conn, h.shop, pid, image_host.url(path))
    add_product(h.conn, h.shop, "stall", image_host.url("/stall.jpg"))
    add_product(h.conn, h.shop, "no-image", None)

    ctx = h.context()
    with capture_logs() as logs:
        result = task.run(ctx, config=fast(h))

    for path, (_, status) in CASES.items():
        assert image_row(h, image_host.url(path))["status"] == status, path
    for _, (path, status, http) in failures.items():
        row = image_row(h, image_host.url(path))
        assert (row["status"], row["http_status"], row["output_key"]) == (status, http, None), path
    blocked = image_row(h, image_host.url("/metadata.jpg"))
    assert "169.254.169.254" in blocked["error"]
    stall = image_row(h, image_host.url("/stall.jpg"))
    assert (stall["status"], stall["last_outcome"], stall["tries"]) == ("pending", "timeout", 1)
    assert "stalled" in stall["error"]

    # Pixels, read back from the store through the product rows.
    large = product_row(h, "large.jpg")
    assert (large["image_width"], large["image_height"]) == (1600, 1067)
    assert large["image_fitness"] == {"google": True, "google_tsv": True, "meta": True,
                                      "naver": True, "naver_summary": True}
    assert stored_image(large["image_url"]).size == (1600, 1067)
    rotated = stored_image(product_row(h, "rotated.jpg")["image_url"])
    assert rotated.size == (100, 200)
    assert s.close(rotated.getpixel((50, 20)), s.RED, 30)
    assert s.close(rotated.getpixel((50, 180)), s.BLUE, 30)
    assert product_row(h, "rotated.jpg")["image_fitness"]["meta"] is False
    assert s.close(stored_image(product_row(h, "cmyk.jpg")["image_url"]).getpixel((300, 300)), s.RED, 10)
    adobe = stored_image(product_row(h, "adobe.jpg")["image_url"])
    assert s.close(adobe.getpixel((300, 300)), s.adobe_to_srgb((60, 120, 200)), 6)
    assert "icc_profile" not in adobe.info
    palette = stored_image(product_row(h, "palette.png")["image_url"])
    assert s.close(palette.getpixel((100, 300)), (255, 255, 255), 3)
    assert s.close(palette.getpixel((700, 300)), s.BLUE, 10)
    grey = stored_image(product_row(h, "grey16.png")["image_url"])
    assert s.close(grey.getpixel((450, 300)), (128, 128, 128), 3)
    assert s.close(stored_image(product_row(h, "anim.gif")["image_url"]).getpixel((300, 300)), s.RED, 10)
    assert s.close(stored_image(product_row(h, "photo.webp")["image_url"]).getpixel((400, 300)), s.GREEN, 10)
    # The product's fitness (SQL, from the size and today's rules) agrees with the processing's.
    agree = h.rows(
        "SELECT p.image_fitness = i.fitness FROM products p JOIN images i"
        " ON i.shop_id = p.shop_id AND i.source_url = p.image_link WHERE p.image_url IS NOT NULL"
    )
    assert [a for (a,) in agree] == [True] * 8
    for pid in ("truncated.jpg", "bomb.png", "text.jpg", "stall", "metadata", "no-image"):
        assert product_row(h, pid)["image_url"] is None, pid

    # Stored by content, under the shop's folder, with the content's hash as its name.
    for name in stored_files(h):
        assert name.endswith(".jpg") and len(name) == 64 + 4
    # The red CMYK JPEG and the red GIF frame come out byte-identical: one file serves both.
    distinct = h.rows("SELECT count(DISTINCT output_key) FROM images")[0][0]
    assert len(stored_files(h)) == distinct == 7
    assert (result.counts["stored_new"], result.counts["stored_existing"]) == (7, 1)

    outcomes = result.counts["outcomes"]
    assert outcomes == {"ok": 7, "too_small": 1, "corrupt": 1, "bomb": 1, "not_image": 1,
                        "too_large": 2, "blocked": 1, "http_status": 1, "timeout": 1}
    assert (result.rows_in, result.rows_out) == (16, 8)
    folder = Path(h.settings.output_url) / "images" / h.shop.id
    assert result.bytes == sum(p.stat().st_size for p in folder.iterdir())
    # Every definite failure is a rejected record naming the URL; the stall (transient) is not.
    assert ctx.rejects.count == result.rows_rejected == 7
    ctx.rejects.flush()
    rejected = dict(h.rows("SELECT position, reason FROM rejects WHERE shop_id = %s", h.shop.id))
    assert rejected[image_host.url("/bomb.png")] == "image bomb"
    assert rejected[image_host.url("/metadata.jpg")] == "image blocked"
    assert image_host.url("/stall.jpg") not in rejected
    assert any(e["event"] == "images.rejected" and e["outcome"] == "bomb" for e in logs)
    # The 40 MB bodies were cut off at the cap, not downloaded.
    assert result.counts["downloaded_bytes"] < 25 * 1024 * 1024


def table(h: Harness, name: str) -> list[tuple[Any, ...]]:
    # xmin changes whenever a row is written, even to the same values.
    return h.rows(f"SELECT xmin::text, * FROM {name} WHERE shop_id = %s ORDER BY 2, 3", h.shop.id)


def test_rerun_on_an_unchanged_shop_downloads_and_writes_nothing(
    harness: Harness, image_host: ImageHost
) -> None:
    h = harness
    image_host.files["/a.jpg"] = s.noisy_jpeg((800, 800), seed=1)
    image_host.files["/b.png"] = s.palette_png_with_transparency((600, 600))
    image_host.files["/c.jpg"] = s.jpeg((700, 700), s.GREEN)
    add_product(h.conn, h.shop, "1", image_host.url("/a.jpg"), [image_host.url("/c.jpg")])
    add_product(h.conn, h.shop, "2", image_host.url("/b.png"))
    task.run(h.context(), config=fast(h))
    assert sorted(image_host.statuses()) == [200, 200, 200]
    before = (table(h, "images"), table(h, "products"), stored_files(h))

    image_host.clear()
    result = task.run(h.context(), config=fast(h))
    assert image_host.statuses() == [304, 304, 304]
    assert result.counts["outcomes"] == {"unchanged": 3}
    assert (result.bytes, result.counts["downloaded_bytes"], result.counts["products_updated"]) == (0, 0, 0)
    assert result.note == "nothing changed"
    assert (table(h, "images"), table(h, "products"), stored_files(h)) == before


def test_a_changed_image_at_the_same_url_is_reprocessed(harness: Harness, image_host: ImageHost) -> None:
    h = harness
    image_host.files["/a.jpg"] = s.jpeg((800, 800), s.RED)
    add_product(h.conn, h.shop, "1", image_host.url("/a.jpg"))
    task.run(h.context(), config=fast(h))
    first = product_row(h, "1")["image_url"]
    image_host.files["/a.jpg"] = s.jpeg((900, 600), s.BLUE)
    image_host.clear()
    result = task.run(h.context(), config=fast(h))
    assert image_host.statuses() == [200]
    second = product_row(h, "1")
    assert second["image_url"] != first
    assert (second["image_width"], second["image_height"]) == (900, 600)
    assert s.close(stored_image(second["image_url"]).getpixel((450, 300)), s.BLUE, 10)
    assert result.counts["products_updated"] == 1


def test_same_bytes_without_validators_are_not_decoded_again(
    harness: Harness, image_host: ImageHost
) -> None:
    h = harness
    image_host.files["/plain.jpg"] = s.jpeg((800, 800))
    image_host.no_validators.add("/plain.jpg")
    add_product(h.conn, h.shop, "1", image_host.url("/plain.jpg"))
    task.run(h.context(), config=fast(h))
    # Without validators the URL waits for the weekly recheck: tonight nothing is asked.
    image_host.clear()
    assert task.run(h.context(), config=fast(h)).counts["attempted"] == 0
    assert image_host.statuses() == []
    h.rows("UPDATE images SET attempted_at = now() - interval '8 days' RETURNING 1")
    result = task.run(h.context(), config=fast(h))
    assert image_host.statuses() == [200]
    assert result.counts["outcomes"] == {"unchanged": 1}
    assert result.bytes == 0


def test_one_url_shared_by_many_products_is_fetched_once(harness: Harness, image_host: ImageHost) -> None:
    h = harness
    image_host.files["/shared.jpg"] = s.jpeg((800, 800))
    image_host.files["/small.jpg"] = s.jpeg((200, 200))
    extra = []
    for i in range(12):
        image_host.files[f"/extra{i}.jpg"] = s.jpeg((600, 600), (i * 20, 100, 100))
        extra.append(image_host.url(f"/extra{i}.jpg"))
    for i in range(5):
        add_product(h.conn, h.shop, f"p{i}", image_host.url("/shared.jpg"),
                    [image_host.url("/small.jpg"), *extra])
    result = task.run(h.context(), config=fast(h))
    hits = [path for path, _ in image_host.hits]
    assert hits.count("/shared.jpg") == 1
    # Only the first ten additional images are the channels' business.
    assert "/extra9.jpg" not in hits and "/extra10.jpg" not in hits and "/extra8.jpg" in hits
    assert result.counts["attempted"] == 11
    urls = {product_row(h, f"p{i}")["image_url"] for i in range(5)}
    assert len(urls) == 1
    additional = product_row(h, "p0")["additional_image_urls"]
    # The 200 px image does not fit meta or naver: left out; the nine others in their order.
    assert len(additional) == 9
    assert [s.close(stored_image(u).getpixel((300, 300)), (i * 20, 100, 100), 10)
            for i, u in enumerate(additional)] == [True] * 9


def test_transient_failures_are_retried_on_later_nights_a_bounded_number_of_times(
    harness: Harness, image_host: ImageHost
) -> None:
    h = harness
    add_product(h.conn, h.shop, "1", image_host.url("/stall.jpg"))
    add_product(h.conn, h.shop, "2", image_host.url("/status/503"))
    for night in range(1, 5):
        result = task.run(h.context(), config=fast(h, max_tries=3))
        expected = min(night, 3)
        assert image_row(h, image_host.url("/stall.jpg"))["tries"] == expected
        row = image_row(h, image_host.url("/status/503"))
        assert (row["tries"], row["http_status"], row["status"]) == (expected, 503, "pending")
        assert result.counts["attempted"] == (2 if night <= 3 else 0)
        assert result.rows_rejected == 0


def test_a_host_that_looks_down_fails_the_task_with_75(harness: Harness, image_host: ImageHost) -> None:
    h = harness
    image_host.files["/fine.jpg"] = s.jpeg((600, 600))
    add_product(h.conn, h.shop, "fine", image_host.url("/fine.jpg"))
    for i in range(11):
        add_product(h.conn, h.shop, f"down{i}", image_host.url(f"/status/503?{i}"))
    with pytest.raises(TransientError) as caught:
        task.run(h.context(), config=fast(h))
    assert caught.value.exit_code == 75
    assert "11 of 12 image downloads failed transiently (11 http_status)" in str(caught.value)
    assert "image host looks down" in str(caught.value)
    # What succeeded is recorded and used; the failures count a try each.
    assert product_row(h, "fine")["image_url"] is not None
    assert h.rows("SELECT count(*) FROM images WHERE tries = 1")[0][0] == 11


def test_google_500_from_2027_01_31_takes_effect_without_reprocessing(
    harness: Harness, image_host: ImageHost
) -> None:
    h = harness
    image_host.files["/mid.jpg"] = s.jpeg((400, 400))
    add_product(h.conn, h.shop, "1", image_host.url("/mid.jpg"))
    task.run(h.context(), config=fast(h, on=date(2027, 1, 30)))
    assert product_row(h, "1")["image_fitness"]["google"] is True
    image_host.clear()
    result = task.run(h.context(), config=fast(h, on=date(2027, 1, 31)))
    assert image_host.statuses() == [304]
    assert product_row(h, "1")["image_fitness"]["google"] is False
    assert result.counts["products_updated"] == 1


def test_square_option_and_max_edge_come_from_the_shop(
    harness: Harness, image_host: ImageHost, conn: Any
) -> None:
    from tests.fixtures_shops import make_shop

    h = harness
    h.shop = make_shop(conn, id="shop-img", channels=["meta"],
                       options={"image_square": True, "image_max_edge": 1000})
    conn.commit()
    image_host.files["/wide.jpg"] = s.jpeg((2000, 1000))
    add_product(h.conn, h.shop, "1", image_host.url("/wide.jpg"))
    task.run(h.context(), config=fast(h))
    row = product_row(h, "1")
    assert (row["image_width"], row["image_height"]) == (1000, 1000)
    im = stored_image(row["image_url"])
    assert s.close(im.getpixel((500, 100)), (255, 255, 255), 3)
    assert s.close(im.getpixel((500, 500)), s.RED, 10)


def test_urls_no_product_uses_are_forgotten(harness: Harness, image_host: ImageHost) -> None:
    h = harness
    image_host.files["/a.jpg"] = s.jpeg((600, 600))
    add_product(h.conn, h.shop, "1", image_host.url("/a.jpg"))
    task.run(h.context(), config=fast(h))
    h.rows("UPDATE products SET gone_at = now() RETURNING 1")
    result = task.run(h.context(), config=fast(h))
    assert result.counts["urls_forgotten"] == 1
    assert h.rows("SELECT count(*) FROM images")[0][0] == 0


def test_through_the_router(settings_env: dict[str, str], conn: Any, image_host: ImageHost) -> None:
    from tests.fixtures_shops import make_shop
    from worker.common.settings import Settings
    from worker.router import run_task

    shop = make_shop(conn, id="shop-r", channels=["google"])
    image_host.files["/a.jpg"] = s.jpeg((600, 600))
    image_host.files["/b.jpg"] = s.TEXT_NAMED_JPG
    add_product(conn, shop, "1", image_host.url("/a.jpg"))
    add_product(conn, shop, "2", image_host.url("/b.jpg"))
    settings = Settings.from_env({**settings_env, "SHOP_ID": "shop-r"})
    assert run_task("images", settings) == 0
    row = conn.execute(
        "SELECT status, rows_in, rows_out, rows_rejected, counts FROM task_runs WHERE task = 'images'"
    ).fetchone()
    assert row[:4] == ("succeeded", 2, 1, 1)
    assert row[4]["outcomes"] == {"ok": 1, "not_image": 1}
    assert os.path.isfile(conn.execute("SELECT image_url FROM products WHERE product_id = '1'").fetchone()[0])


def test_images_go_to_s3_when_output_url_is_a_bucket(
    harness: Harness, image_host: ImageHost, moto_endpoint: str, fake_aws_credentials: None
) -> None:
    import boto3

    from worker.common.settings import Settings

    endpoint = moto_endpoint
    s3 = boto3.client("s3", endpoint_url=endpoint)
    s3.create_bucket(Bucket="catalog-out")
    h = harness
    h.settings = Settings.from_env({
        "DATABASE_URL": h.settings.database_url or "", "OUTPUT_URL": "s3://catalog-out/nightly",
        "AWS_ENDPOINT_URL": endpoint, "FETCH_ALLOW_NETWORKS": "127.0.0.0/8",
    })
    image_host.files["/a.png"] = s.palette_png_with_transparency((800, 600))
    add_product(h.conn, h.shop, "1", image_host.url("/a.png"))
    first = task.run(h.context(), config=fast(h))
    url = product_row(h, "1")["image_url"]
    assert url.startswith(f"s3://catalog-out/nightly/images/{h.shop.id}/") and url.endswith(".jpg")
    key = url.removeprefix("s3://catalog-out/")
    head = s3.head_object(Bucket="catalog-out", Key=key)
    assert head["ContentType"] == "image/jpeg"
    assert first.bytes == head["ContentLength"]
    im = Image.open(io.BytesIO(s3.get_object(Bucket="catalog-out", Key=key)["Body"].read()))
    assert s.close(im.getpixel((100, 300)), (255, 255, 255), 3)
    assert s.close(im.getpixel((700, 300)), s.BLUE, 10)
    # A second URL giving the same picture is stored once.
    image_host.files["/copy.png"] = image_host.files["/a.png"]
    add_product(h.conn, h.shop, "2", image_host.url("/copy.png"))
    second = task.run(h.context(), config=fast(h))
    assert second.counts["stored_existing"] == 1 and second.bytes == 0
    assert product_row(h, "2")["image_url"] == url
    listed = s3.list_objects_v2(Bucket="catalog-out", Prefix="nightly/images/")
    assert [o["Key"] for o in listed["Contents"]] == [key]


def test_a_transient_failure_keeps_the_image_and_a_definite_one_clears_it(
    harness: Harness, image_host: ImageHost
) -> None:
    h = harness
    image_host.files["/a.jpg"] = s.jpeg((600, 600))
    add_product(h.conn, h.shop, "1", image_host.url("/a.jpg"))
    task.run(h.context(), config=fast(h))
    kept = product_row(h, "1")["image_url"]

    image_host.unavailable.add("/a.jpg")
    task.run(h.context(), config=fast(h))
    row = image_row(h, image_host.url("/a.jpg"))
    assert (row["status"], row["last_outcome"], row["tries"]) == ("ok", "http_status", 1)
    assert row["http_status"] == 503
    assert product_row(h, "1")["image_url"] == kept

    image_host.unavailable.clear()
    image_host.clear()
    task.run(h.context(), config=fast(h))
    assert image_host.statuses() == [304]
    row = image_row(h, image_host.url("/a.jpg"))
    assert (row["status"], row["last_outcome"], row["tries"], row["error"]) == ("ok", "unchanged", 0, None)

    del image_host.files["/a.jpg"]
    task.run(h.context(), config=fast(h))
    row = image_row(h, image_host.url("/a.jpg"))
    assert (row["status"], row["http_status"], row["output_key"]) == ("http_status", 404, None)
    assert "HTTP 404" in row["error"]
    assert product_row(h, "1")["image_url"] is None
    assert product_row(h, "1")["image_fitness"] is None


def test_overlong_urls_are_counted_not_indexed(harness: Harness, image_host: ImageHost) -> None:
    h = harness
    add_product(h.conn, h.shop, "1", image_host.url("/" + "x" * 2100 + ".jpg"))
    result = task.run(h.context(), config=fast(h))
    assert result.counts["urls_too_long"] == 1
    assert result.counts["attempted"] == 0


def test_every_outcome_fits_the_images_table(harness: Harness) -> None:
    from worker.images.process import Outcome

    h = harness
    for i, outcome in enumerate(Outcome):
        status = "ok" if outcome is Outcome.UNCHANGED else outcome.value
        h.conn.execute(
            "INSERT INTO images (shop_id, source_url, status, last_outcome) VALUES (%s, %s, %s, %s)",
            (h.shop.id, f"https://img.example/{i}", status, outcome.value),
        )
    h.conn.commit()
    assert h.rows("SELECT count(*) FROM images")[0][0] == len(Outcome)


def test_a_tls_failure_is_recorded_not_fatal(harness: Harness, image_host: ImageHost) -> None:
    h = harness
    # The host speaks plain HTTP: a TLS handshake with it fails.
    url = image_host.url("/a.jpg").replace("http://", "https://")
    add_product(h.conn, h.shop, "1", url)
    result = task.run(h.context(), config=fast(h))
    row = image_row(h, url)
    assert (row["status"], row["last_outcome"], row["tries"]) == ("unreachable", "unreachable", 0), row
    assert "TLS" in row["error"]
    assert result.counts["attempted"] == 1


def test_a_host_that_is_plainly_down_is_not_tried_to_the_end(
    harness: Harness, image_host: ImageHost
) -> None:
    h = harness
    for i in range(80):
        add_product(h.conn, h.shop, f"down{i}", image_host.url(f"/status/503?{i:02d}"))
    with pytest.raises(TransientError, match="so the rest was not tried"):
        task.run(h.context(), config=fast(h))
    tried = h.rows("SELECT count(*) FROM images WHERE tries = 1")[0][0]
    assert 50 <= tried < 80
    assert len(image_host.hits) == tried  # what was not tried was not requested either


def test_products_get_public_urls_when_a_public_base_is_set(
    harness: Harness, image_host: ImageHost
) -> None:
    h = harness
    image_host.files["/a.jpg"] = s.jpeg((600, 600))
    add_product(h.conn, h.shop, "1", image_host.url("/a.jpg"))
    task.run(h.context(), config=fast(h, public_base_url="https://cdn.example/nightly/"))
    url = product_row(h, "1")["image_url"]
    name = url.removeprefix(f"https://cdn.example/nightly/images/{h.shop.id}/")
    assert name != url and name in stored_files(h)
    # A new public base applies on the next run, without reprocessing (a 304).
    task.run(h.context(), config=fast(h, public_base_url="https://img.example"))
    assert product_row(h, "1")["image_url"] == f"https://img.example/images/{h.shop.id}/{name}"
