"""The job role's policy, enforced by moto's IAM, is enough for the worker's store and no more.

The role's inline policy is taken from the template (its ``${Bucket.Arn}`` filled in), attached to
an IAM user in moto, and the worker's own store, opened from the job definition's ``OUTPUT_URL``,
runs with that user's keys while moto checks every request against the policy.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.core import set_initial_no_auth_action_count

from tests.infra.fixtures_cfn import as_list, load_template, sub_text
from worker.common.errors import FatalError
from worker.common.stores import open_store

REGION = "ap-northeast-2"
BUCKET = "catalog-batch-feeds-test"


def resolve(value: Any, names: dict[str, str]) -> Any:
    """A policy fragment with ``Fn::Sub``/``Fn::GetAtt``/``Ref`` replaced by concrete values."""
    if isinstance(value, list):
        return [resolve(v, names) for v in value]
    if isinstance(value, dict):
        text = sub_text(value)
        if text is not None:
            for name, concrete in names.items():
                text = text.replace("${" + name + "}", concrete)
            assert "${" not in text, f"unresolved {text}"
            return text
        if "Fn::GetAtt" in value:
            return names[".".join(value["Fn::GetAtt"])]
        if "Ref" in value:
            return names[value["Ref"]]
        return {k: resolve(v, names) for k, v in value.items()}
    return value


@pytest.fixture
def job_role_keys(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Environment credentials of a moto IAM user holding exactly the job role's policies; the
    job definition's OUTPUT_URL for the bucket."""
    template = load_template()
    role = template["Resources"]["JobRole"]["Properties"]
    environment = {
        e["Name"]: e["Value"]
        for e in template["Resources"]["JobDefinition"]["Properties"]["ContainerProperties"][
            "Environment"
        ]
    }
    names = {
        "Bucket": BUCKET,
        "Bucket.Arn": f"arn:aws:s3:::{BUCKET}",
        "DatabaseSecretArn": f"arn:aws:secretsmanager:{REGION}:123456789012:secret:db-AbCdEf",
    }
    output_url = resolve(environment["OUTPUT_URL"], names)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        s3.put_object(Bucket=BUCKET, Key="private/report.csv", Body=b"internal")
        iam = boto3.client("iam", region_name=REGION)
        iam.create_user(UserName="job-role")
        for policy in role["Policies"]:
            iam.put_user_policy(
                UserName="job-role", PolicyName=policy["PolicyName"],
                PolicyDocument=json.dumps(resolve(policy["PolicyDocument"], names)),
            )
        key = iam.create_access_key(UserName="job-role")["AccessKey"]
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
        # A fresh process, as in the container: boto3's default session caches its credentials.
        monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
        yield output_url


def test_the_job_role_policy_has_only_s3() -> None:
    role = load_template()["Resources"]["JobRole"]["Properties"]
    actions = {a for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]
               for a in as_list(s["Action"])}
    assert {a.split(":")[0] for a in actions} == {"s3"}


def test_the_store_publishes_and_reads_feeds_and_images_under_the_job_role(
    job_role_keys: str, tmp_path: Path
) -> None:
    feed = tmp_path / "google.xml.gz"
    feed.write_bytes(b"\x1f\x8b feed bytes")

    @set_initial_no_auth_action_count(0)  # from here on, moto checks every request's rights
    def as_the_job() -> None:
        store = open_store(job_role_keys)
        assert store.url_for("feeds/7/google.xml.gz") == f"s3://{BUCKET}/feeds/7/google.xml.gz"
        store.publish_file("feeds/7/google.xml.gz", feed, content_type="application/xml",
                           content_encoding="gzip")
        store.put_bytes("feeds/7/google.manifest.json", b'{"rows": 1}',
                        content_type="application/json")
        store.put_bytes("images/7/0a1b2c.jpg", b"\xff\xd8\xff jpeg", content_type="image/jpeg")
        assert store.get_bytes("feeds/7/google.manifest.json") == b'{"rows": 1}'
        assert store.exists("images/7/0a1b2c.jpg")
        assert store.get_bytes("feeds/7/meta.manifest.json") is None
        assert not store.exists("images/7/ffffff.jpg")
        # Outside its two prefixes the job can neither write nor read.
        with pytest.raises(FatalError):
            store.put_bytes("private/evil.txt", b"x", content_type="text/plain")
        with pytest.raises(FatalError):
            store.get_bytes("private/report.csv")

    as_the_job()
    body = boto3.client("s3", region_name=REGION).get_object(
        Bucket=BUCKET, Key="feeds/7/google.xml.gz"
    )
    assert body["ContentEncoding"] == "gzip" and body["Body"].read() == feed.read_bytes()
