"""Bundles: small shops packed into one array child by their last successful durations, unknown
and big shops alone; the frozen index → bundle → shops; the plan's jobs sized by children."""

from __future__ import annotations

import datetime as dt

import psycopg
from hypothesis import given
from hypothesis import strategies as st

from submitter.plan import BIG_SHARE, last_durations, pack_bundles, plan_retry, plan_run
from submitter.report import plan_text
from tests.submitter.conftest import add_shops
from worker import router
from worker.common.settings import Settings

NIGHT = dt.date(2026, 11, 29)


def test_unknown_and_big_shops_run_alone_and_small_ones_share_children() -> None:
    # positions: 0 unknown, 1 big (≥ half the target), 2–7 small
    bundles = pack_bundles([None, 200.0, 100.0, 90.0, 60.0, 50.0, 10.0, 1.0], target_s=300)
    assert [0] in bundles and [1] in bundles
    small = [b for b in bundles if b not in ([0], [1])]
    assert sorted(p for b in small for p in b) == [2, 3, 4, 5, 6, 7]
    estimates = {2: 100.0, 3: 90.0, 4: 60.0, 5: 50.0, 6: 10.0, 7: 1.0}
    assert all(sum(estimates[p] for p in b) <= 300 for b in small)
    assert len(small) == 2  # 311 s of small shops: two children, not six
    # longest first (an unknown shop is planned as a full child): the night's tail is shortest
    estimates.update({0: 300.0, 1: 200.0})
    loads = [sum(estimates[p] for p in b) for b in bundles]
    assert loads == sorted(loads, reverse=True) and bundles[0] == [0]


def test_a_target_of_zero_turns_bundling_off() -> None:
    assert pack_bundles([1.0, None, 2.0], target_s=0) == [[0], [1], [2]]


def test_a_child_holds_at_most_max_shops() -> None:
    bundles = pack_bundles([0.01] * 25, target_s=300, max_shops=10)
    assert sorted(len(b) for b in bundles) == [5, 10, 10]


@given(st.lists(st.one_of(st.none(), st.floats(min_value=0, max_value=2000)), max_size=200),
       st.floats(min_value=1, max_value=1000))
def test_every_shop_is_in_exactly_one_bundle_and_no_shared_child_passes_the_target(
    estimates: list[float | None], target: float
) -> None:
    bundles = pack_bundles(estimates, target_s=target)
    assert sorted(p for b in bundles for p in b) == list(range(len(estimates)))
    for b in bundles:
        assert b == sorted(b)
        if len(b) > 1:
            assert all(estimates[p] is not None and estimates[p] < BIG_SHARE * target  # type: ignore[operator]
                       for p in b)
            assert sum(estimates[p] for p in b) <= target + 1e-6  # type: ignore[misc]


def _history(conn: psycopg.Connection, shop_id: str, seconds: float, *,
             tasks: tuple[str, ...] = ("collect", "feed", "images")) -> None:
    for task in tasks:
        conn.execute(
            "INSERT INTO task_runs (shop_id, task, status, exit_code, duration_s, finished_at) "
            "VALUES (%s, %s, 'succeeded', 0, %s, clock_timestamp())", (shop_id, task, seconds))
    conn.commit()


def test_the_plan_packs_by_history_and_the_router_maps_index_to_bundle(
    conn: psycopg.Connection, settings_env: dict[str, str]
) -> None:
    add_shops(conn, 6)  # shop00000 … shop00005
    _history(conn, "shop00000", 2.0)
    _history(conn, "shop00001", 3.0)
    _history(conn, "shop00002", 4.0)
    _history(conn, "shop00003", 400.0)  # big: alone
    _history(conn, "shop00004", 1.0, tasks=("collect", "feed"))  # images never succeeded: unknown
    # shop00005 has no history at all
    assert last_durations(conn, [f"shop0000{i}" for i in range(6)]) == {
        "shop00000": 2.0, "shop00001": 3.0, "shop00002": 4.0, "shop00003": 400.0}
    plan = plan_run(conn, NIGHT, bundle_target_s=300)
    assert (plan.shop_count, plan.children) == (6, 4)
    collect = next(j for j in plan.jobs if j.task == "collect")
    assert collect.array_size == 4  # the arrays are sized by children, not shops
    rows = conn.execute(
        "SELECT child, array_agg(shop_id ORDER BY idx), array_agg(idx ORDER BY idx) "
        "FROM run_shops WHERE run_id = %s GROUP BY child ORDER BY child", (plan.run_id,)).fetchall()
    conn.commit()
    assert rows[0][1] == ["shop00003"]  # the longest child first
    assert sorted(r[1] for r in rows) == [
        ["shop00000", "shop00001", "shop00002"], ["shop00003"], ["shop00004"], ["shop00005"]]
    # idx stays each shop's place in the night (id order)
    assert sorted(i for r in rows for i in r[2]) == list(range(6))
    bundle_child = next(r[0] for r in rows if len(r[1]) == 3)
    settings = Settings.from_env({**settings_env, "RUN_ID": plan.run_id,
                                  "AWS_BATCH_JOB_ARRAY_INDEX": str(bundle_child)})
    assert router.resolve_shop_ids(settings, conn)[0] == ["shop00000", "shop00001", "shop00002"]
    text = plan_text(conn, plan)
    assert "6 shops in 4 children" in text
    assert f"[{bundle_child}] bundle of 3: shop00000+shop00001+shop00002" in text


def test_a_retry_packs_the_failed_shops_again(conn: psycopg.Connection) -> None:
    add_shops(conn, 3)
    for i in range(3):
        _history(conn, f"shop0000{i}", 1.0)
    plan = plan_run(conn, NIGHT, bundle_target_s=300)
    assert plan.children == 1
    for shop, status in (("shop00000", "succeeded"), ("shop00001", "lost"),
                         ("shop00002", "interrupted")):
        conn.execute("INSERT INTO task_runs (run_id, shop_id, task, status) VALUES (%s, %s, "
                     "'collect', %s)", (plan.run_id, shop, status))
    conn.commit()
    retry = plan_retry(conn, plan.run_id, bundle_target_s=300)
    assert retry is not None and (retry.shop_count, retry.children) == (2, 1)
