"""Submitting runs to moto's AWS Batch: array sizes, dependsOn types, overrides, idempotency."""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg
import pytest

from submitter.batch import BatchApi, submit_job_payload
from submitter.plan import load_plan, plan_run, recorded_jobs
from submitter.submit import submit_plan
from tests.fixtures_shops import make_shop
from tests.submitter.conftest import BatchEnv, add_shops
from worker.common.errors import ConfigError

NIGHT = dt.date(2026, 11, 29)


def submit(conn: psycopg.Connection, env: BatchEnv, api: BatchApi | None = None, **kw: Any):  # type: ignore[no-untyped-def]
    plan = plan_run(conn, NIGHT, **kw)
    return submit_plan(conn, plan, api or env.api(), job_queue=env.queue,
                       job_definition=env.definition)


def by_name(jobs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {j["jobName"]: j for j in jobs}


def env_of(job: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in job["container"]["environment"]}


def test_three_shops_submit_collect_then_feed_and_images_n_to_n(
    conn: psycopg.Connection, batch_env: BatchEnv
) -> None:
    add_shops(conn, 3)
    sent: list[dict[str, Any]] = []
    batch_env.client.meta.events.register(
        "provide-client-params.batch.SubmitJob", lambda params, **_: sent.append(params)
    )
    result = submit(conn, batch_env)
    assert sorted(result.submitted) == ["collect/0", "feed/0", "images/0"]
    # moto does not keep propagateTags on the job: the request itself says it.
    assert [p["propagateTags"] for p in sent] == [True, True, True]
    jobs = by_name(batch_env.all_jobs())
    collect = jobs["catalog-collect-2026-11-29"]
    feed = jobs["catalog-feed-2026-11-29"]
    images = jobs["catalog-images-2026-11-29"]
    assert collect["arrayProperties"]["size"] == 3
    assert feed["arrayProperties"]["size"] == 3
    assert collect.get("dependsOn", []) == []
    assert feed["dependsOn"] == [{"jobId": collect["jobId"], "type": "N_TO_N"}]
    assert images["dependsOn"] == [{"jobId": collect["jobId"], "type": "N_TO_N"}]
    assert feed["container"]["command"] == ["feed"]
    assert env_of(images).items() >= {"RUN_ID": "2026-11-29", "SHOP_INDEX_OFFSET": "0"}.items()
    assert collect["tags"]["catalog-batch:run-id"] == "2026-11-29"
    assert recorded_jobs(conn, "2026-11-29") == {
        "collect/0": collect["jobId"], "feed/0": feed["jobId"], "images/0": images["jobId"]
    }


def test_one_shop_submits_plain_jobs_with_plain_dependencies(
    conn: psycopg.Connection, batch_env: BatchEnv
) -> None:
    make_shop(conn, id="only")
    submit(conn, batch_env, images_before_feed=True)
    jobs = by_name(batch_env.all_jobs())
    collect, images, feed = (jobs[f"catalog-{t}-2026-11-29"] for t in ("collect", "images", "feed"))
    assert "size" not in (collect.get("arrayProperties") or {})
    assert images["dependsOn"] == [{"jobId": collect["jobId"]}]
    assert feed["dependsOn"] == [{"jobId": images["jobId"]}]


def test_no_shops_submit_nothing(conn: psycopg.Connection, batch_env: BatchEnv) -> None:
    result = submit(conn, batch_env)
    assert result.shop_count == 0 and result.submitted == {}
    assert batch_env.all_jobs() == []


@pytest.mark.slow
def test_more_than_ten_thousand_shops_submit_paired_chunks_with_offsets(
    conn: psycopg.Connection, batch_env: BatchEnv
) -> None:
    add_shops(conn, 10_001)
    submit(conn, batch_env)
    jobs = by_name(batch_env.all_jobs())
    assert len(jobs) == 6
    c1, f1 = jobs["catalog-collect-2026-11-29-part2of2"], jobs["catalog-feed-2026-11-29-part2of2"]
    assert (c1["arrayProperties"]["size"], f1["arrayProperties"]["size"]) == (5000, 5000)
    assert jobs["catalog-collect-2026-11-29-part1of2"]["arrayProperties"]["size"] == 5001
    assert f1["dependsOn"] == [{"jobId": c1["jobId"], "type": "N_TO_N"}]
    assert env_of(f1)["SHOP_INDEX_OFFSET"] == "5001"


def test_submitting_the_same_night_twice_submits_nothing_the_second_time(
    conn: psycopg.Connection, batch_env: BatchEnv
) -> None:
    add_shops(conn, 2)
    first = submit(conn, batch_env)
    second = submit(conn, batch_env)
    assert second.created is False and second.submitted == {}
    assert second.summary()["already_submitted"] == first.submitted
    assert len(batch_env.all_jobs()) == 3
    rerun = submit(conn, batch_env, kind="rerun")
    assert rerun.run_id == "2026-11-29-rerun1" and len(rerun.submitted) == 3
    assert len(batch_env.all_jobs()) == 6


class CrashAfter(BatchApi):
    """The real API, but the process 'dies' after ``n`` successful submissions."""

    def __init__(self, client: Any, n: int) -> None:
        super().__init__(client)
        self.left = n

    def submit_job(self, payload: Any) -> str:
        if self.left == 0:
            raise KeyboardInterrupt("the Lambda was killed")
        self.left -= 1
        return super().submit_job(payload)


def test_a_crash_between_collect_and_feed_is_completed_never_duplicated(
    conn: psycopg.Connection, batch_env: BatchEnv
) -> None:
    add_shops(conn, 2)
    with pytest.raises(KeyboardInterrupt):
        submit(conn, batch_env, CrashAfter(batch_env.client, 1))
    assert list(recorded_jobs(conn, "2026-11-29")) == ["collect/0"]
    assert len(batch_env.all_jobs()) == 1
    result = submit(conn, batch_env)
    assert sorted(result.submitted) == ["feed/0", "images/0"]
    assert list(result.existing) == ["collect/0"]
    jobs = by_name(batch_env.all_jobs())
    assert len(jobs) == 3
    collect_id = jobs["catalog-collect-2026-11-29"]["jobId"]
    assert jobs["catalog-feed-2026-11-29"]["dependsOn"] == [{"jobId": collect_id, "type": "N_TO_N"}]


def test_a_job_submitted_but_not_recorded_is_adopted_not_submitted_again(
    conn: psycopg.Connection, batch_env: BatchEnv
) -> None:
    add_shops(conn, 2)
    plan = plan_run(conn, NIGHT)
    # The process died right after SubmitJob answered, before the id reached the database.
    lost = batch_env.api().submit_job(submit_job_payload(
        plan.jobs[0], job_queue=batch_env.queue, job_definition=batch_env.definition, job_ids={}
    ))
    result = submit_plan(conn, load_plan(conn, plan.run_id), batch_env.api(),
                         job_queue=batch_env.queue, job_definition=batch_env.definition)
    assert result.adopted == {"collect/0": lost}
    assert sorted(result.submitted) == ["feed/0", "images/0"]
    assert len(batch_env.all_jobs()) == 3
    assert recorded_jobs(conn, plan.run_id)["collect/0"] == lost


def test_a_refused_request_is_not_retried_and_names_the_fix(
    conn: psycopg.Connection, batch_env: BatchEnv
) -> None:
    add_shops(conn, 2)
    plan = plan_run(conn, NIGHT)
    sleeps: list[float] = []
    with pytest.raises(ConfigError, match=r"AWS Batch refused submit_job: ClientException.*queue"):
        submit_plan(conn, plan, BatchApi(batch_env.client, sleep=sleeps.append),
                    job_queue="no-such-queue", job_definition=batch_env.definition)
    assert sleeps == []
    assert recorded_jobs(conn, plan.run_id) == {}


def test_describe_jobs_asks_at_most_one_hundred_per_request(batch_env: BatchEnv) -> None:
    api = batch_env.api()
    parent = api.submit_job({"jobName": "many", "jobQueue": batch_env.queue,
                             "jobDefinition": batch_env.definition, "arrayProperties": {"size": 250}})
    sizes: list[int] = []
    batch_env.client.meta.events.register(
        "provide-client-params.batch.DescribeJobs",
        lambda params, **_: sizes.append(len(params["jobs"])),
    )
    described = list(api.describe_jobs(f"{parent}:{i}" for i in range(250)))
    assert sizes == [100, 100, 50]
    assert len(described) == 250
    assert {d["jobId"] for d in described} == {f"{parent}:{i}" for i in range(250)}
    children = list(api.list_children(parent))
    assert len(children) == 250


def test_two_invocations_at_once_submit_each_job_once(
    database_url: str, batch_env: BatchEnv
) -> None:
    import threading

    with psycopg.connect(database_url) as setup:
        add_shops(setup, 3)
    results: list[Any] = []
    errors: list[BaseException] = []

    def invoke() -> None:
        try:
            with psycopg.connect(database_url) as own:
                results.append(submit(own, batch_env))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=invoke) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(len(r.submitted) for r in results) == [0, 0, 3]
    assert len(batch_env.all_jobs()) == 3
