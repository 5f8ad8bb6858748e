"""Publishing feeds to S3: moto's server over HTTP, the whole task through the router."""

from __future__ import annotations

import gzip
import hashlib
import json
from typing import Any

import boto3
import psycopg
import pytest

from tests.catalogs import insert_products, product
from tests.fixtures_shops import make_shop
from worker.common.errors import EXIT_DATAERR, EXIT_OK
from worker.common.settings import Settings
from worker.router import run_task


@pytest.fixture
def s3(moto_endpoint: str, fake_aws_credentials: None) -> Any:
    client = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    client.create_bucket(Bucket="feeds")
    yield client
    for page in client.get_paginator("list_objects_v2").paginate(Bucket="feeds"):
        for obj in page.get("Contents", []):
            client.delete_object(Bucket="feeds", Key=obj["Key"])
    client.delete_bucket(Bucket="feeds")


def run_feed(settings_env: dict[str, str], endpoint: str, **extra: str) -> int:
    env = {**settings_env, "SHOP_ID": "shop-a", "OUTPUT_URL": "s3://feeds/nightly",
           "AWS_ENDPOINT_URL": endpoint, **extra}
    return run_task("feed", Settings.from_env(env))


def test_feeds_and_manifests_land_in_s3_with_their_content_types(
    conn: psycopg.Connection, settings_env: dict[str, str], moto_endpoint: str, s3: Any
) -> None:
    make_shop(conn, id="shop-a", channels=["google", "naver"])
    insert_products(conn, "shop-a", [product(f"P{i}") for i in range(8)])
    assert run_feed(settings_env, moto_endpoint) == EXIT_OK
    keys = sorted(
        o["Key"] for o in s3.list_objects_v2(Bucket="feeds")["Contents"]
    )
    assert keys == [
        "nightly/feeds/shop-a/google.manifest.json", "nightly/feeds/shop-a/google.xml.gz",
        "nightly/feeds/shop-a/naver.manifest.json", "nightly/feeds/shop-a/naver.tsv",
    ]
    google = s3.get_object(Bucket="feeds", Key="nightly/feeds/shop-a/google.xml.gz")
    body = google["Body"].read()
    assert google["ContentType"] == "application/gzip"
    assert "ContentEncoding" not in google  # a .gz file is served as a file, not re-encoded
    assert gzip.decompress(body).count(b"<item>") == 8
    naver = s3.get_object(Bucket="feeds", Key="nightly/feeds/shop-a/naver.tsv")
    assert naver["ContentType"] == "text/tab-separated-values; charset=utf-8"
    assert naver["Body"].read().decode().count("\n") == 9
    manifest_obj = s3.get_object(Bucket="feeds", Key="nightly/feeds/shop-a/google.manifest.json")
    assert manifest_obj["ContentType"] == "application/json"
    manifest = json.loads(manifest_obj["Body"].read())
    assert manifest["rows"] == 8 and manifest["bytes"] == len(body)
    assert manifest["sha256"] == hashlib.sha256(body).hexdigest()
    # The manifest is written after its feed.
    heads = {
        k: s3.head_object(Bucket="feeds", Key=f"nightly/feeds/shop-a/{k}")["LastModified"]
        for k in ("google.xml.gz", "google.manifest.json")
    }
    assert heads["google.xml.gz"] <= heads["google.manifest.json"]


def test_the_publish_gate_reads_the_manifest_back_from_s3(
    conn: psycopg.Connection, settings_env: dict[str, str], moto_endpoint: str, s3: Any
) -> None:
    make_shop(conn, id="shop-a", channels=["meta"], options={"max_feed_drop_share": 0.5})
    insert_products(conn, "shop-a", [product(f"P{i}") for i in range(10)])
    assert run_feed(settings_env, moto_endpoint) == EXIT_OK
    key = "nightly/feeds/shop-a/meta.csv.gz"
    etag = s3.head_object(Bucket="feeds", Key=key)["ETag"]
    # Half gone is within 50 %; six gone is past it.
    conn.execute("UPDATE products SET gone_at = now() WHERE product_id IN ('P0','P1','P2','P3','P4','P5')")
    conn.commit()
    assert run_feed(settings_env, moto_endpoint) == EXIT_DATAERR
    assert s3.head_object(Bucket="feeds", Key=key)["ETag"] == etag
    manifest = json.loads(
        s3.get_object(Bucket="feeds", Key="nightly/feeds/shop-a/meta.manifest.json")["Body"].read()
    )
    assert manifest["rows"] == 10
    conn.execute("UPDATE products SET gone_at = NULL WHERE product_id = 'P5'")
    conn.commit()
    assert run_feed(settings_env, moto_endpoint) == EXIT_OK  # 5 of 10: exactly the share
    assert s3.head_object(Bucket="feeds", Key=key)["ETag"] != etag
