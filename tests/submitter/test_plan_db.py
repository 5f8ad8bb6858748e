"""Freezing a night in the database: idempotency, order, filters, chunk offsets, retries."""

from __future__ import annotations

import datetime as dt
import threading

import psycopg
import pytest

from submitter.plan import (
    bundle_members,
    load_plan,
    plan_retry,
    plan_run,
    record_job,
    recorded_jobs,
)
from tests.fixtures_shops import make_shop
from tests.submitter.conftest import add_shops, record_task
from worker.common.errors import ConfigError, FatalError

NIGHT = dt.date(2026, 11, 29)


def frozen(conn: psycopg.Connection, run_id: str) -> list[tuple[int, str]]:
    return [tuple(r) for r in conn.execute(  # type: ignore[misc]
        "SELECT idx, shop_id FROM run_shops WHERE run_id = %s ORDER BY idx", (run_id,))]


def test_a_night_with_no_shops_is_recorded_with_nothing_to_run(conn: psycopg.Connection) -> None:
    plan = plan_run(conn, NIGHT)
    assert plan.run_id == "2026-11-29" and plan.created
    assert plan.shop_count == 0 and plan.jobs == ()
    assert conn.execute("SELECT shop_count, kind FROM runs").fetchall() == [(0, "nightly")]


def test_active_shops_are_frozen_in_id_order(conn: psycopg.Connection) -> None:
    for shop_id in ("zeta", "alpha", "mid"):
        make_shop(conn, id=shop_id)
    make_shop(conn, id="beta", active=False)
    plan = plan_run(conn, NIGHT)
    assert frozen(conn, plan.run_id) == [(0, "alpha"), (1, "mid"), (2, "zeta")]
    assert [j.array_size for j in plan.jobs] == [3, 3, 3]


def test_the_same_night_twice_returns_the_existing_run_unchanged(conn: psycopg.Connection) -> None:
    make_shop(conn, id="a")
    make_shop(conn, id="b")
    first = plan_run(conn, NIGHT, images_before_feed=True)
    make_shop(conn, id="c")  # registered after the night was frozen
    second = plan_run(conn, NIGHT)
    assert (second.run_id, second.created) == (first.run_id, False)
    assert second.jobs == first.jobs  # options come from the run, not from the second call
    assert second.images_before_feed is True
    assert frozen(conn, first.run_id) == [(0, "a"), (1, "b")]
    assert conn.execute("SELECT count(*) FROM runs").fetchone() == (1,)


def test_a_rerun_is_a_new_run_pointing_at_the_night(conn: psycopg.Connection) -> None:
    make_shop(conn, id="a")
    nightly = plan_run(conn, NIGHT)
    rerun = plan_run(conn, NIGHT, kind="rerun")
    again = plan_run(conn, NIGHT, kind="rerun")
    assert (rerun.run_id, rerun.rerun_of, rerun.created) == ("2026-11-29-rerun1", nightly.run_id, True)
    assert again.run_id == "2026-11-29-rerun2"
    assert plan_run(conn, NIGHT).run_id == nightly.run_id


def test_the_database_refuses_a_second_nightly_run_for_a_date(conn: psycopg.Connection) -> None:
    plan_run(conn, NIGHT)
    with pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute("INSERT INTO runs (id, run_date, shop_count) VALUES ('other', %s, 0)", (NIGHT,))
    conn.rollback()


def test_shop_ids_pick_shops_and_unknown_or_inactive_ones_are_named(conn: psycopg.Connection) -> None:
    for shop_id in ("a", "b", "c"):
        make_shop(conn, id=shop_id)
    make_shop(conn, id="off", active=False)
    with pytest.raises(ConfigError, match=r"not registered: ghost .*inactive: off"):
        plan_run(conn, NIGHT, shop_ids=["c", "ghost", "off"])
    assert conn.execute("SELECT count(*) FROM runs").fetchone() == (0,)
    plan = plan_run(conn, NIGHT, shop_ids=["c", "a"])
    assert frozen(conn, plan.run_id) == [(0, "a"), (1, "c")]


def test_concurrent_planners_of_one_night_make_one_run(database_url: str) -> None:
    with psycopg.connect(database_url) as setup:
        add_shops(setup, 5)
    results: list[str] = []
    errors: list[BaseException] = []

    def planner() -> None:
        try:
            with psycopg.connect(database_url) as own:
                results.append(plan_run(own, NIGHT).run_id)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=planner) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert results == ["2026-11-29"] * 4
    with psycopg.connect(database_url) as check:
        assert check.execute("SELECT count(*) FROM run_shops").fetchone() == (5,)


@pytest.mark.parametrize("count", [10_001, 25_000])
def test_large_nights_freeze_every_shop_once_and_chunks_resolve_to_them(
    conn: psycopg.Connection, count: int
) -> None:
    add_shops(conn, count)
    plan = plan_run(conn, NIGHT)
    assert plan.shop_count == count
    row = conn.execute(
        "SELECT count(*), count(DISTINCT shop_id), min(idx), max(idx) FROM run_shops WHERE run_id = %s",
        (plan.run_id,),
    ).fetchone()
    assert row == (count, count, 0, count - 1)
    # The worker resolves SHOP_INDEX_OFFSET + AWS_BATCH_JOB_ARRAY_INDEX: every chunk's last child
    # meets the next chunk's first position, and the last chunk ends on the last shop.
    for job in plan.jobs:
        env = dict(job.environment)
        last = int(env["SHOP_INDEX_OFFSET"]) + (job.array_size or 1) - 1
        shop = conn.execute(
            "SELECT shop_id FROM run_shops WHERE run_id = %s AND idx = %s", (plan.run_id, last)
        ).fetchone()
        assert shop is not None
    assert max(int(dict(j.environment)["SHOP_INDEX_OFFSET"]) + (j.array_size or 1)
               for j in plan.jobs) == count


def test_retry_takes_up_only_the_failed_shops_in_their_order(conn: psycopg.Connection) -> None:
    add_shops(conn, 6)
    night = plan_run(conn, NIGHT)
    for i in range(6):
        record_task(conn, night.run_id, f"shop{i:05d}", "collect", "succeeded", exit_code=0)
    record_task(conn, night.run_id, "shop00004", "feed", "failed", exit_code=65)
    record_task(conn, night.run_id, "shop00001", "images", "failed", exit_code=75)
    # shop 2's feed failed, then a later attempt succeeded: not failed any more.
    record_task(conn, night.run_id, "shop00002", "feed", "failed", exit_code=75)
    record_task(conn, night.run_id, "shop00002", "feed", "succeeded", exit_code=0)
    retry = plan_retry(conn, night.run_id)
    assert retry is not None
    assert (retry.run_id, retry.kind, retry.rerun_of) == ("2026-11-29-retry1", "retry", night.run_id)
    assert frozen(conn, retry.run_id) == [(0, "shop00001"), (1, "shop00004")]
    assert [j.array_size for j in retry.jobs] == [2, 2, 2]
    assert load_plan(conn, retry.run_id).shop_count == 2


def test_retry_of_a_night_without_failures_makes_no_run(conn: psycopg.Connection) -> None:
    make_shop(conn, id="a")
    night = plan_run(conn, NIGHT)
    record_task(conn, night.run_id, "a", "collect", "succeeded", exit_code=0)
    assert plan_retry(conn, night.run_id) is None
    assert conn.execute("SELECT count(*) FROM runs").fetchone() == (1,)


def test_an_unknown_run_is_named(conn: psycopg.Connection) -> None:
    with pytest.raises(FatalError, match="run 'nope' does not exist"):
        load_plan(conn, "nope")


def test_a_recorded_job_is_committed_at_once(conn: psycopg.Connection, database_url: str) -> None:
    # The crash-safety promise: once record_job returns, another connection (the next submitter
    # after a crash) sees the job, without the caller committing anything.
    plan = plan_run(conn, NIGHT)
    record_job(conn, plan.run_id, "collect/0", "job-1")
    with psycopg.connect(database_url) as other:
        assert recorded_jobs(other, plan.run_id) == {"collect/0": "job-1"}
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


def test_reading_the_recorded_jobs_leaves_no_transaction_open(conn: psycopg.Connection) -> None:
    plan = plan_run(conn, NIGHT)
    assert recorded_jobs(conn, plan.run_id) == {}
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


def test_bundle_members_lists_every_child_or_only_those_asked_for(conn: psycopg.Connection) -> None:
    add_shops(conn, 3)
    plan = plan_run(conn, NIGHT, bundle_target_s=0)  # no bundling: child i runs shop i
    every = [(0, ["shop00000"]), (1, ["shop00001"]), (2, ["shop00002"])]
    assert list(bundle_members(conn, plan.run_id)) == every
    assert list(bundle_members(conn, plan.run_id, [2, 0, 2])) == [every[0], every[2]]
    assert list(bundle_members(conn, plan.run_id, [])) == []
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
