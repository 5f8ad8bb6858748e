"""Back-off against a real HTTP endpoint: moto's server behind a proxy on 127.0.0.1 that throttles
(429 TooManyRequestsException) and fails (500) some calls first, as AWS does under load."""

from __future__ import annotations

import http.client
import json
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from submitter.batch import BatchApi, make_client
from tests.fixtures_http import read_body, send, serve
from tests.submitter.conftest import DEFINITION, QUEUE, create_batch_resources
from worker.common.errors import TransientError


class FaultyProxy:
    """Forwards to moto; answers the first ``faults[path]`` calls of a path with an error."""

    def __init__(self, upstream_port: int) -> None:
        self.faults: dict[str, list[tuple[int, str]]] = {}
        self.calls: list[str] = []
        self.upstream_port = upstream_port
        self.url = ""  # set once the server listens

    def __call__(self, h: BaseHTTPRequestHandler) -> None:
        body = read_body(h)
        path = h.path.split("?")[0]
        self.calls.append(path)
        pending = self.faults.get(path)
        if pending:
            status, code = pending.pop(0)
            payload = json.dumps({"__type": code, "message": "injected"}).encode()
            send(h, status, payload, {"x-amzn-ErrorType": code, "Content-Type": "application/json"})
            return
        conn = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=30)
        headers = {k: v for k, v in h.headers.items() if k.lower() != "host"}
        conn.request(h.command, h.path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        conn.close()
        send(h, response.status, data, {
            key: value for key, value in response.getheaders()
            if key.lower() not in ("content-length", "transfer-encoding", "connection")
        })


@pytest.fixture
def proxy(aws_credentials: None) -> Iterator[FaultyProxy]:
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    moto.start()
    try:
        port = moto._server.server_port  # type: ignore[union-attr]
        # moto's backends live in this process: start from a clean account.
        urllib.request.urlopen(urllib.request.Request(
            f"http://127.0.0.1:{port}/moto-api/reset", method="POST"), timeout=10).close()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/moto-api/config", method="POST",
            data=json.dumps({"batch": {"use_docker": False}}).encode(),
        )
        urllib.request.urlopen(request, timeout=10).close()
        endpoint = f"http://127.0.0.1:{port}"
        create_batch_resources(boto3.client("batch", endpoint_url=endpoint),
                               boto3.client("iam", endpoint_url=endpoint))
        faulty = FaultyProxy(port)
        with serve(fallback=faulty) as server:
            faulty.url = server.base
            yield faulty
    finally:
        moto.stop()


def payload(name: str) -> dict[str, Any]:
    return {"jobName": name, "jobQueue": QUEUE, "jobDefinition": DEFINITION,
            "arrayProperties": {"size": 2}}


def test_throttling_and_5xx_are_retried_with_growing_jittered_pauses(proxy: FaultyProxy) -> None:
    proxy.faults["/v1/submitjob"] = [(429, "TooManyRequestsException"), (500, "ServerException"),
                                     (503, "ServiceUnavailable")]
    sleeps: list[float] = []
    api = BatchApi(make_client(endpoint_url=proxy.url), sleep=sleeps.append, jitter=lambda: 0.5,
                   base_delay=0.1)
    job_id = api.submit_job(payload("throttled"))
    assert proxy.calls.count("/v1/submitjob") == 4  # three faults, one success: botocore did not retry
    assert sleeps == [0.05, 0.1, 0.2]
    described = list(api.describe_jobs([job_id]))
    assert described[0]["jobName"] == "throttled"


def test_a_client_error_is_not_retried(proxy: FaultyProxy) -> None:
    sleeps: list[float] = []
    api = BatchApi(make_client(endpoint_url=proxy.url), sleep=sleeps.append)
    with pytest.raises(Exception, match="AWS Batch refused submit_job: ClientException"):
        api.submit_job({**payload("x"), "jobQueue": "missing-queue"})
    assert sleeps == [] and proxy.calls.count("/v1/submitjob") == 1


def test_throttling_that_never_ends_is_transient(proxy: FaultyProxy) -> None:
    proxy.faults["/v1/describejobs"] = [(429, "TooManyRequestsException")] * 3
    api = BatchApi(make_client(endpoint_url=proxy.url), sleep=lambda s: None, attempts=3)
    with pytest.raises(TransientError, match="describe_jobs still throttled or failing after 3"):
        list(api.describe_jobs(["a"]))
