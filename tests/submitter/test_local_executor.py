"""The local executor's Batch semantics, with a tiny fake worker: N_TO_N per index, retries on 75
only, the environment each child sees, parallelism, and the summary."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from submitter.local import LocalExecutor, Progress, RetryStrategy, docker_command
from submitter.plan import Plan, build_jobs
from submitter.report import progress_line
from submitter.report import summary_text as format_summary

FAKE = str(Path(__file__).with_name("fake_worker.py"))


def make_plan(shops: int, *, images_before_feed: bool = False, run_id: str = "2026-11-29") -> Plan:
    return Plan(run_id, dt.date(2026, 11, 29), "local", shops, images_before_feed,
                build_jobs(run_id, shops, images_before_feed=images_before_feed), True)


def run(tmp_path: Path, plan: Plan, script: dict[str, Any] | None = None, **kw: Any):  # type: ignore[no-untyped-def]
    record = tmp_path / "record.jsonl"
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": "postgresql://x@127.0.0.1/db",
           "FAKE_RECORD": str(record), "FAKE_SCRIPT": json.dumps(script or {}),
           "FAKE_SLEEP": kw.pop("sleep", "0")}
    progress: list[str] = []
    executor = LocalExecutor(plan, base_env=env, log_dir=tmp_path / "logs",
                             command=(sys.executable, FAKE),
                             progress=lambda p: progress.append(progress_line(p)), **kw)
    summary = executor.run()
    events = [json.loads(line) for line in record.read_text().splitlines()] if record.exists() else []
    return summary, events, progress


def test_every_child_sees_the_environment_batch_would_set(tmp_path: Path) -> None:
    summary, events, _ = run(tmp_path, make_plan(3), parallel=2)
    assert summary.exit_code == 0
    starts = [e for e in events if e["event"] == "start"]
    assert len(starts) == 9
    collect = {e["position"]: e["env"] for e in starts if e["task"] == "collect"}
    assert set(collect) == {0, 1, 2}
    parent = collect[0]["AWS_BATCH_JOB_ID"].split(":")[0]
    for i, env in collect.items():
        assert env["AWS_BATCH_JOB_ID"] == f"{parent}:{i}"
        assert env["AWS_BATCH_JOB_ARRAY_INDEX"] == str(i)
        assert env["AWS_BATCH_JOB_ARRAY_SIZE"] == "3"
        assert env["AWS_BATCH_JOB_ATTEMPT"] == "1"
        assert env["RUN_ID"] == "2026-11-29"
        assert env["SHOP_INDEX_OFFSET"] == "0"
        assert env["DATABASE_URL"] == "postgresql://x@127.0.0.1/db"
    feed_parent = next(e["env"]["AWS_BATCH_JOB_ID"] for e in starts if e["task"] == "feed")
    assert feed_parent.split(":")[0] != parent  # each array job has its own id


def test_a_single_shop_runs_plain_jobs_without_array_variables(tmp_path: Path) -> None:
    summary, events, _ = run(tmp_path, make_plan(1))
    starts = [e for e in events if e["event"] == "start"]
    assert starts[0]["task"] == "collect"
    assert sorted(e["task"] for e in starts) == ["collect", "feed", "images"]
    assert summary.exit_code == 0
    for e in starts:
        assert "AWS_BATCH_JOB_ARRAY_INDEX" not in e["env"]
        assert ":" not in e["env"]["AWS_BATCH_JOB_ID"]


def test_a_failed_collect_holds_back_only_its_own_index(tmp_path: Path) -> None:
    summary, events, _ = run(tmp_path, make_plan(4), {"collect": {"1": [65]}}, parallel=2)
    ran = {(e["task"], e["position"]) for e in events if e["event"] == "start"}
    assert ("feed", 1) not in ran and ("images", 1) not in ran
    assert {("feed", i) for i in (0, 2, 3)} <= ran and {("images", i) for i in (0, 2, 3)} <= ran
    assert summary.counts["collect"]["failed"] == 1
    assert summary.counts["feed"]["failed"] == 1 and summary.counts["feed"]["succeeded"] == 3
    assert summary.exit_code == 2
    assert summary.failure_count == 3
    text = format_summary(summary, {1: "broken-shop"})
    assert "collect  shop broken-shop: exit 65 after 1 attempt(s)" in text
    assert "feed     shop broken-shop: not run, its dependency failed" in text


def test_feed_of_an_index_starts_after_its_own_collect_succeeds(tmp_path: Path) -> None:
    _, events, _ = run(tmp_path, make_plan(5), parallel=2, sleep="0.05")
    order = [(e["event"], e["task"], e["position"]) for e in events]
    for i in range(5):
        assert order.index(("end", "collect", i)) < order.index(("start", "feed", i))
        assert order.index(("end", "collect", i)) < order.index(("start", "images", i))
    # Dependents go first: index 0's feed starts before the last collect does.
    assert order.index(("start", "feed", 0)) < order.index(("start", "collect", 4))


def test_exit_75_is_retried_up_to_the_attempts_and_65_is_not(tmp_path: Path) -> None:
    script = {"collect": {"0": [75, 75, 0], "1": [75, 75, 75], "2": [65, 0]}}
    summary, events, _ = run(tmp_path, make_plan(3), script, retry=RetryStrategy(attempts=3))
    attempts = {}
    for e in events:
        if e["event"] == "start" and e["task"] == "collect":
            attempts.setdefault(e["position"], []).append(e["env"]["AWS_BATCH_JOB_ATTEMPT"])
    assert attempts == {0: ["1", "2", "3"], 1: ["1", "2", "3"], 2: ["1"]}
    assert summary.counts["collect"]["succeeded"] == 1 and summary.counts["collect"]["failed"] == 2
    ran_feed = {e["position"] for e in events if e["event"] == "start" and e["task"] == "feed"}
    assert ran_feed == {0}
    assert summary.attempts == 3 + 3 + 1 + 2  # collects, retries included, then feed and images 0


def test_exit_1_is_a_bug_and_is_not_retried(tmp_path: Path) -> None:
    summary, events, _ = run(tmp_path, make_plan(2), {"feed": {"0": [1, 0]}})
    assert [e["attempt"] for e in events if e["event"] == "start" and e["task"] == "feed"
            and e["position"] == 0] == [1]
    assert summary.counts["feed"]["failed"] == 1
    assert summary.counts["images"]["succeeded"] == 2  # images do not depend on feed


def test_images_before_feed_holds_feed_back_when_images_fail(tmp_path: Path) -> None:
    summary, events, _ = run(tmp_path, make_plan(2, images_before_feed=True),
                             {"images": {"1": [65]}})
    ran_feed = {e["position"] for e in events if e["event"] == "start" and e["task"] == "feed"}
    assert ran_feed == {0}
    assert summary.counts["feed"]["failed"] == 1


def test_never_more_children_than_parallel_at_once(tmp_path: Path) -> None:
    _, events, progress = run(tmp_path, make_plan(6), parallel=2, sleep="0.05")
    running = peak = 0
    for e in events:
        running += 1 if e["event"] == "start" else -1
        peak = max(peak, running)
    assert peak <= 2
    assert progress[-1].startswith("collect 6 ok 0 failed 0 running 0 waiting")


def test_chunks_give_each_child_its_offset(tmp_path: Path) -> None:
    plan = make_plan(10_001)
    # Only the structure is needed here: run two tiny chunks' worth by trimming the plan's sizes.
    from dataclasses import replace

    from submitter.plan import Chunk

    jobs = tuple(
        replace(j, array_size=2, chunk=Chunk(j.chunk.number, j.chunk.offset, 2)) for j in plan.jobs
    )
    summary, events, _ = run(tmp_path, replace(plan, jobs=jobs))
    positions = sorted({e["position"] for e in events if e["task"] == "collect"})
    assert positions == [0, 1, 5001, 5002]
    offsets = {e["env"]["SHOP_INDEX_OFFSET"] for e in events if e["event"] == "start"}
    assert offsets == {"0", "5001"}
    assert summary.exit_code == 0


def test_a_missing_worker_command_is_a_clear_error(tmp_path: Path) -> None:
    from worker.common.errors import ConfigError

    executor = LocalExecutor(make_plan(2), base_env={}, log_dir=tmp_path,
                             command=("/nonexistent/worker",))
    with pytest.raises(ConfigError, match="cannot start the worker command '/nonexistent/worker'"):
        executor.run()


def test_a_failure_names_its_log_and_last_line(tmp_path: Path) -> None:
    summary, _, _ = run(tmp_path, make_plan(2), {"collect": {"0": [65]}})
    (failure, *_rest) = summary.failures
    assert failure.log_path is not None and failure.log_path.exists()
    assert failure.log_path.name == "collect-00000-attempt1.log"
    assert failure.last_line == "collect of position 0 failed"


def test_docker_command_passes_the_variables_by_name() -> None:
    cmd = docker_command("catalog-batch:latest", ["RUN_ID", "AWS_BATCH_JOB_ARRAY_INDEX", "RUN_ID"])
    assert cmd == ("docker", "run", "--rm", "--init", "--network", "host", "-e", "AWS_BATCH_JOB_ARRAY_INDEX",
                   "-e", "RUN_ID", "catalog-batch:latest")


def test_progress_reports_each_state(tmp_path: Path) -> None:
    seen: list[Progress] = []
    LocalExecutor(make_plan(2), base_env={"FAKE_RECORD": str(tmp_path / "r")},
                  log_dir=tmp_path, command=(sys.executable, FAKE),
                  progress=lambda p: seen.append(Progress({k: v.copy() for k, v in p.counts.items()},
                                                          p.done))).run()
    assert seen[0].counts["collect"]["waiting"] == 2
    assert any(p.counts["feed"]["running"] for p in seen)
    assert seen[-1].done and seen[-1].counts["images"]["succeeded"] == 2


def test_progress_printer_writes_a_line_per_change_off_a_terminal(tmp_path: Path) -> None:
    import io

    from submitter.report import progress_printer

    stream = io.StringIO()
    show = progress_printer(stream, every_s=0.0)
    LocalExecutor(make_plan(2), base_env={"FAKE_RECORD": str(tmp_path / "r")}, log_dir=tmp_path,
                  command=(sys.executable, FAKE), progress=show).run()
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("collect 0 ok 0 failed 0 running 2 waiting")
    assert lines[-1] == ("collect 2 ok 0 failed 0 running 0 waiting | feed 2 ok 0 failed 0 running "
                         "0 waiting | images 2 ok 0 failed 0 running 0 waiting")
    assert "\r" not in stream.getvalue()
    assert len(lines) == len(set(lines))  # an unchanged state is not repeated
