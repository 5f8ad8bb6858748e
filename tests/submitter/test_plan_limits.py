"""The plan's jobs against AWS Batch's limits, for 0 to 25,000 shops (pure: no database, no AWS)."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from submitter.batch import MAX_OVERRIDES_CHARS, MAX_PAYLOAD_BYTES, check_payload, submit_job_payload
from submitter.plan import (
    ARRAY_MAX,
    Chunk,
    Dependency,
    PlannedJob,
    build_jobs,
    check_jobs,
    chunk_shops,
    job_name,
)
from worker.common.errors import FatalError

RUN = "2026-11-29"


def fake_ids(jobs: tuple[PlannedJob, ...]) -> dict[str, str]:
    return {job.key: f"{i:08d}-aaaa-bbbb-cccc-dddddddddddd" for i, job in enumerate(jobs)}


def payloads(jobs: tuple[PlannedJob, ...]) -> list[dict]:
    ids = fake_ids(jobs)
    return [
        submit_job_payload(job, job_queue="q", job_definition="d", job_ids=ids) for job in jobs
    ]


def test_no_shops_means_nothing_to_submit() -> None:
    assert chunk_shops(0) == []
    assert build_jobs(RUN, 0) == ()


def test_one_shop_is_three_plain_jobs_with_plain_dependencies() -> None:
    jobs = build_jobs(RUN, 1)
    assert [j.key for j in jobs] == ["collect/0", "feed/0", "images/0"]
    assert all(j.array_size is None for j in jobs)
    feed, images = jobs[1], jobs[2]
    assert feed.depends_on == (Dependency("collect/0", None),)
    assert images.depends_on == (Dependency("collect/0", None),)
    body = payloads(jobs)
    assert "arrayProperties" not in body[0]
    assert body[1]["dependsOn"] == [{"jobId": fake_ids(jobs)["collect/0"]}]


def test_two_shops_are_arrays_of_two_paired_n_to_n() -> None:
    jobs = build_jobs(RUN, 2)
    assert [j.array_size for j in jobs] == [2, 2, 2]
    body = payloads(jobs)
    assert body[0]["arrayProperties"] == {"size": 2}
    assert body[1]["dependsOn"] == [{"jobId": fake_ids(jobs)["collect/0"], "type": "N_TO_N"}]
    assert body[2]["dependsOn"] == [{"jobId": fake_ids(jobs)["collect/0"], "type": "N_TO_N"}]
    assert body[0]["containerOverrides"]["command"] == ["collect"]
    assert body[1]["containerOverrides"]["command"] == ["feed"]
    assert {"name": "RUN_ID", "value": RUN} in body[2]["containerOverrides"]["environment"]
    assert body[0]["tags"]["catalog-batch:run-id"] == RUN
    assert body[0]["propagateTags"] is True


def test_ten_thousand_shops_fit_one_array() -> None:
    jobs = build_jobs(RUN, 10_000)
    assert [j.array_size for j in jobs] == [10_000] * 3
    assert {j.chunk for j in jobs} == {Chunk(0, 0, 10_000)}


def test_ten_thousand_and_one_shops_split_into_balanced_chunks_never_of_one() -> None:
    chunks = chunk_shops(10_001)
    assert chunks == [Chunk(0, 0, 5001), Chunk(1, 5001, 5000)]
    jobs = build_jobs(RUN, 10_001)
    assert len(jobs) == 6
    env = {j.key: dict(j.environment) for j in jobs}
    assert env["feed/1"]["SHOP_INDEX_OFFSET"] == "5001"
    assert env["collect/0"]["SHOP_INDEX_OFFSET"] == "0"
    feed1 = next(j for j in jobs if j.key == "feed/1")
    assert feed1.depends_on == (Dependency("collect/1", "N_TO_N"),)
    assert feed1.name == f"catalog-feed-{RUN}-part2of2"


def test_twenty_five_thousand_shops() -> None:
    chunks = chunk_shops(25_000)
    assert [c.size for c in chunks] == [8334, 8333, 8333]
    assert [c.offset for c in chunks] == [0, 8334, 16667]
    jobs = build_jobs(RUN, 25_000, images_before_feed=True)
    assert len(jobs) == 9
    for body in payloads(jobs):
        check_payload(body)
        assert len(json.dumps(body)) < MAX_PAYLOAD_BYTES


def test_images_before_feed_chains_feed_on_images() -> None:
    jobs = {j.key: j for j in build_jobs(RUN, 3, images_before_feed=True)}
    assert jobs["images/0"].depends_on == (Dependency("collect/0", "N_TO_N"),)
    assert jobs["feed/0"].depends_on == (Dependency("images/0", "N_TO_N"),)
    order = [j.key for j in build_jobs(RUN, 3, images_before_feed=True)]
    assert order.index("images/0") < order.index("feed/0")


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=120_000))
def test_any_shop_count_is_covered_exactly_within_limits(count: int) -> None:
    chunks = chunk_shops(count)
    assert sum(c.size for c in chunks) == count
    position = 0
    for chunk in chunks:
        assert chunk.offset == position
        position += chunk.size
        assert chunk.size <= ARRAY_MAX
        assert chunk.size >= 2 or count == 1
    # The fewest chunks Batch allows.
    assert len(chunks) == -(-count // ARRAY_MAX)
    check_jobs(build_jobs(RUN, count))


def job(key: str, size: int | None, deps: tuple[Dependency, ...] = (), name: str | None = None,
        ) -> PlannedJob:
    return PlannedJob(key, key.split("/")[0], Chunk(0, 0, size or 1), name or key.replace("/", "-"),
                      size, deps, (("RUN_ID", RUN), ("SHOP_INDEX_OFFSET", "0")))


@pytest.mark.parametrize(
    ("jobs", "message"),
    [
        ((job("collect/0", 1),), "array size 1 is outside 2–10000"),
        ((job("collect/0", 10_001),), "array size 10001 is outside"),
        ((job("collect/0", 3), job("feed/0", 4, (Dependency("collect/0", "N_TO_N"),))),
         "must be equal arrays"),
        ((job("collect/0", None), job("feed/0", None, (Dependency("collect/0", "N_TO_N"),))),
         "must be equal arrays"),
        ((job("collect/0", 2, name="bad name!"),), "a job name must be 1–128"),
        ((job("collect/0", 2, name="x" * 129),), "a job name must be 1–128"),
        ((job("feed/0", 2, (Dependency("collect/0", "N_TO_N"),)),), "not planned before it"),
        # A job waiting on itself never starts: it is not planned before itself.
        ((job("collect/0", None, (Dependency("collect/0", None),)),),
         "collect-0: depends on collect/0, not planned before it"),
        ((job("collect/0", None),
          job("feed/0", None, tuple(Dependency("collect/0", None) for _ in range(21)))),
         "21 dependencies, at most 20"),
    ],
)
def test_each_batch_limit_is_checked(jobs: tuple[PlannedJob, ...], message: str) -> None:
    with pytest.raises(FatalError, match=message):
        check_jobs(jobs)


def test_twenty_dependencies_are_allowed() -> None:
    check_jobs((job("collect/0", None),
                job("feed/0", None, tuple(Dependency("collect/0", None) for _ in range(20)))))


def test_job_names_stay_valid_and_distinct_for_long_run_ids() -> None:
    long_a = "r" * 200 + "a"
    long_b = "r" * 200 + "b"
    chunk = Chunk(11, 110_000, 10_000)
    a, b = job_name("images", long_a, chunk, 12), job_name("images", long_b, chunk, 12)
    assert len(a) <= 128 and len(b) <= 128
    assert a != b
    assert a.endswith("-part12of12")
    assert re.fullmatch(r"[A-Za-z0-9_-]+", job_name("feed", "2026-11-29 weird/id", chunk, 1))


def test_container_overrides_over_8192_characters_are_refused() -> None:
    (collect,) = build_jobs(RUN, 2)[:1]
    big = {"SHOP_IDS": ",".join(f"shop{i:05d}" for i in range(1000))}
    assert len(big["SHOP_IDS"]) > MAX_OVERRIDES_CHARS
    with pytest.raises(FatalError, match=r"container overrides are .* over Batch's 8192"):
        submit_job_payload(collect, job_queue="q", job_definition="d", job_ids={},
                           extra_environment=big)


def test_a_request_over_30_kib_is_refused() -> None:
    body = {"jobName": "x", "containerOverrides": {}, "tags": {f"k{i}": "v" * 100 for i in range(400)}}
    with pytest.raises(FatalError, match="over Batch's 30720"):
        check_payload(body)


def test_a_dependency_without_a_submitted_id_is_refused() -> None:
    feed = build_jobs(RUN, 2)[1]
    with pytest.raises(FatalError, match="depends on collect/0, which has no submitted job id"):
        submit_job_payload(feed, job_queue="q", job_definition="d", job_ids={})


def test_a_run_id_that_just_fits_is_kept_whole_and_one_more_letter_is_shortened() -> None:
    head = "catalog-feed-"  # 13 characters: 115 left for the run id in a one-chunk plan
    fits, over = "r" * (128 - len(head)), "r" * (129 - len(head))
    chunk = Chunk(0, 0, 2)
    assert job_name("feed", fits, chunk, 1) == head + fits
    shortened = job_name("feed", over, chunk, 1)
    assert len(shortened) == 128 and shortened.startswith(head + "r" * 106 + "-")
    assert shortened != head + over[:115]
