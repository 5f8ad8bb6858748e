"""The submitter's fixtures: AWS credentials that reach nothing, moto's Batch with a queue and a job
definition, shops registered in bulk with COPY, and the demo's samples served from 127.0.0.1."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import psycopg
import pytest
import structlog
from moto import mock_aws

from submitter.batch import BatchApi
from submitter.demo import render_samples
from tests.fixtures_http import serve, static_files

QUEUE = "catalog-queue"
DEFINITION = "catalog-worker"


@dataclass
class BatchEnv:
    client: Any
    queue: str
    definition: str

    def api(self, **kwargs: Any) -> BatchApi:
        return BatchApi(self.client, **kwargs)

    def all_jobs(self) -> list[dict[str, Any]]:
        """Every job in the queue (parents and plain jobs), described."""
        ids: list[str] = []
        for status in ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED",
                       "FAILED"):
            for page in self.client.get_paginator("list_jobs").paginate(
                jobQueue=self.queue, jobStatus=status
            ):
                ids += [s["jobId"] for s in page["jobSummaryList"] if ":" not in s["jobId"]]
        jobs: list[dict[str, Any]] = []
        for i in range(0, len(ids), 100):
            jobs += self.client.describe_jobs(jobs=ids[i : i + 100])["jobs"]
        return jobs


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


def create_batch_resources(client: Any, iam: Any) -> None:
    role = iam.create_role(
        RoleName="batch-service", AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17"})
    )["Role"]["Arn"]
    ce = client.create_compute_environment(
        computeEnvironmentName="catalog-ce", type="UNMANAGED", state="ENABLED", serviceRole=role
    )
    client.create_job_queue(
        jobQueueName=QUEUE, state="ENABLED", priority=1,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": ce["computeEnvironmentArn"]}],
    )
    client.register_job_definition(
        jobDefinitionName=DEFINITION, type="container",
        containerProperties={"image": "catalog-batch:test", "vcpus": 1, "memory": 512,
                             "command": ["collect"]},
        retryStrategy={"attempts": 3, "evaluateOnExit": [
            {"onExitCode": "75", "action": "RETRY"}, {"onExitCode": "*", "action": "EXIT"},
        ]},
    )


@pytest.fixture
def batch_env(aws_credentials: None) -> Iterator[BatchEnv]:
    """moto's Batch, in-process, without Docker: submitted jobs are marked succeeded."""
    with mock_aws(config={"batch": {"use_docker": False}}):
        client = boto3.client("batch", region_name="us-east-1")
        create_batch_resources(client, boto3.client("iam", region_name="us-east-1"))
        yield BatchEnv(client, QUEUE, DEFINITION)


def add_shops(conn: psycopg.Connection, count: int, *, prefix: str = "shop", active: bool = True) -> None:
    """Register ``count`` shops at once with COPY (ids sort in creation order)."""
    with conn.cursor() as cur, cur.copy(
        "COPY shops (id, name, source_url, format, currency, channels, active) FROM STDIN"
    ) as copy:
        for i in range(count):
            copy.write_row((f"{prefix}{i:05d}", f"Shop {i}", "file:///dev/null", "jsonl", "KRW",
                            ["google"], active))
    conn.commit()


def record_task(conn: psycopg.Connection, run_id: str, shop_id: str, task: str, status: str,
                *, exit_code: int | None = None) -> None:
    conn.execute(
        "INSERT INTO task_runs (run_id, shop_id, task, status, exit_code, finished_at) "
        "VALUES (%s, %s, %s, %s, %s, clock_timestamp())",
        (run_id, shop_id, task, status, exit_code),
    )
    conn.commit()


@dataclass(frozen=True)
class Samples:
    """The demo's samples rendered into ``www`` and served at ``base``; ``shops`` is their shops
    file, its URLs pointing at ``base``."""

    base: str
    www: Path
    shops: Path


@pytest.fixture
def samples(tmp_path: Path) -> Iterator[Samples]:
    www = tmp_path / "www"
    www.mkdir()
    with serve(fallback=static_files(www)) as server:
        yield Samples(server.base, www, render_samples(www, server.base))


@pytest.fixture
def env(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The settings of a local night (a database, an output folder, fetches allowed to
    127.0.0.1), set here and returned for a worker subprocess."""
    values = {"DATABASE_URL": database_url, "FETCH_ALLOW_NETWORKS": "127.0.0.0/8",
              "OUTPUT_URL": str(tmp_path / "out"), "LOG_FORMAT": "json"}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("DATABASE_SECRET_ARN", raising=False)
    return {"PATH": os.environ["PATH"], "PYTHONPATH": os.getcwd(), **values}


@pytest.fixture
def cli_env(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("DATABASE_URL", database_url)
    for name in ("JOB_QUEUE", "JOB_DEFINITION", "DATABASE_SECRET_ARN", "IMAGES_BEFORE_FEED"):
        monkeypatch.delenv(name, raising=False)
    handlers = logging.getLogger().handlers[:]
    yield database_url
    # main() configures logging onto this test's captured stderr, which closes after it.
    structlog.reset_defaults()
    logging.getLogger().handlers[:] = handlers
