"""The local executor with the real ``python -m worker``: the router resolves each child's shop from
RUN_ID + SHOP_INDEX_OFFSET + AWS_BATCH_JOB_ARRAY_INDEX and records the job id and attempt it saw."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import psycopg

from submitter.config import SubmitterConfig
from submitter.local import LocalExecutor, local_base_env
from submitter.plan import plan_run
from tests.fixtures_shops import make_shop


def test_children_resolve_their_shops_and_a_failing_collect_stops_only_its_index(
    database_url: str, conn: psycopg.Connection, tmp_path: Path
) -> None:
    good = tmp_path / "good.jsonl"
    good.write_text("\n".join(json.dumps({
        "id": f"p{i}", "title": f"Product {i}", "link": f"https://shop.example/p{i}",
        "price": "1000", "image_link": f"https://shop.example/p{i}.jpg",
    }) for i in range(3)) + "\n")
    make_shop(conn, id="a-good", source_url=str(good), format="jsonl")
    make_shop(conn, id="b-missing", source_url=str(tmp_path / "nope.jsonl"), format="jsonl")
    make_shop(conn, id="c-good", source_url=f"file://{good}", format="jsonl")
    plan = plan_run(conn, dt.date(2026, 11, 29), kind="local")
    env = local_base_env(SubmitterConfig(), database_url)
    env["OUTPUT_URL"] = str(tmp_path / "out")
    env["SOURCE_FILE_ROOT"] = str(tmp_path)  # local catalogs are allowed from this folder only
    summary = LocalExecutor(plan, base_env=env, log_dir=tmp_path / "logs", parallel=2).run()

    rows = conn.execute(
        "SELECT shop_id, task, status, exit_code, array_index, job_id, attempt, rows_in "
        "FROM task_runs WHERE run_id = %s ORDER BY shop_id, task", (plan.run_id,)
    ).fetchall()
    collect = {r[0]: r for r in rows if r[1] == "collect"}
    assert collect["a-good"][2:4] == ("succeeded", 0) and collect["a-good"][7] == 3
    assert collect["c-good"][2:4] == ("succeeded", 0)
    assert collect["b-missing"][2] == "failed" and collect["b-missing"][3] == 65
    # Each child saw its own index and Batch's parent:index job id.
    assert {r[0]: r[4] for r in collect.values()} == {"a-good": 0, "b-missing": 1, "c-good": 2}
    (parent,) = {r[5].split(":")[0] for r in collect.values()}
    assert {r[5] for r in collect.values()} == {f"{parent}:{i}" for i in range(3)}
    assert all(r[6] == 1 for r in rows)
    # b's feed and images never ran; a's and c's did (whatever their own outcome).
    ran = {(r[0], r[1]) for r in rows}
    assert ("b-missing", "feed") not in ran and ("b-missing", "images") not in ran
    assert {("a-good", "feed"), ("c-good", "images")} <= ran
    assert summary.counts["collect"]["failed"] == 1
    failure = next(f for f in summary.failures if f.task == "collect")
    assert failure.position == 1 and failure.exit_code == 65
    assert failure.last_line and "b-missing" in failure.last_line
