"""The images task's limits (issue 13, findings 5 and 6): a total time per image against a server
that drips, a time budget per attempt, decode concurrency from the CPU quota, a memory budget for
decodes in flight, a bounded ICC transform cache, and progress committed by time as well."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import threading
import time
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from tests.worker.images import samples as s
from tests.worker.images.helpers import Harness, ImageHost, add_product
from worker.common.errors import TransientError, exit_code_for
from worker.common.settings import Settings
from worker.images import task
from worker.images.pipeline import (
    ImagesConfig,
    MemoryBudget,
    cgroup_cpu_quota,
    decode_concurrency,
)
from worker.images.process import (
    ImageRejected,
    Outcome,
    ProcessOptions,
    TransformCache,
    channel_rules,
    process_image,
)

TODAY = date(2026, 11, 29)


def fast(h: Harness, **overrides: Any) -> ImagesConfig:
    values: dict[str, Any] = {
        "allow": h.settings.fetch_allow_networks, "read_timeout": 5.0, "connect_timeout": 2.0,
        "retries": 0, "fetch_workers": 4, "decode_workers": 2, "on": TODAY,
    }
    values.update(overrides)
    return ImagesConfig(**values)


def statuses(h: Harness) -> dict[str, str]:
    rows = h.rows("SELECT source_url, status FROM images WHERE shop_id = %s", h.shop.id)
    return {url.rsplit("/", 1)[1]: status for url, status in rows}


class SteppingClock:
    """A monotonic clock that moves ``step`` seconds each time it is read."""

    def __init__(self, step: float) -> None:
        self.now = 0.0
        self.step = step
        self.lock = threading.Lock()

    def __call__(self) -> float:
        with self.lock:
            value = self.now
            self.now += self.step
            return value


# ---- a total time per image -------------------------------------------------------------------


def test_a_server_dripping_one_byte_a_second_is_cut_at_the_total_time(
    harness: Harness, image_host: ImageHost
) -> None:
    h = harness
    add_product(h.conn, h.shop, "drip", image_host.url("/drip.jpg"))
    image_host.files["/fine.jpg"] = s.jpeg((600, 600))
    add_product(h.conn, h.shop, "fine", image_host.url("/fine.jpg"))
    # Each byte comes well within the read timeout (5 s): only the total (2 s) can stop it.
    result = task.run(h.context(), config=fast(h, total_timeout=2.0, read_timeout=5.0))
    row = h.rows(
        "SELECT status, last_outcome, error FROM images WHERE source_url = %s",
        image_host.url("/drip.jpg"),
    )[0]
    assert row[:2] == ("pending", "timeout")
    assert "total time limit" in row[2]
    assert image_host.drip_sent <= 4  # cut after about two of its bytes, not a hundred thousand
    assert statuses(h)["fine.jpg"] == "ok"
    assert result.counts["outcomes"]["timeout"] == 1


def test_the_total_time_per_image_comes_from_the_settings(settings_env: dict[str, str]) -> None:
    settings = Settings.from_env({**settings_env, "IMAGE_TOTAL_TIMEOUT": "7.5",
                                  "IMAGE_DECODE_MEMORY": str(64 << 20),
                                  "IMAGES_TIME_BUDGET": "900", "IMAGES_COMMIT_SECONDS": "12"})
    config = ImagesConfig.from_settings(settings)
    assert (config.total_timeout, config.decode_memory, config.time_budget,
            config.commit_seconds) == (7.5, 64 << 20, 900.0, 12.0)
    default = ImagesConfig.from_settings(Settings.from_env(settings_env))
    assert (default.total_timeout, default.decode_memory) == (60.0, 1 << 30)


@pytest.mark.parametrize(
    ("name", "value"),
    [("IMAGE_TOTAL_TIMEOUT", "0"), ("IMAGE_TOTAL_TIMEOUT", "soon"), ("IMAGES_TIME_BUDGET", "inf"),
     ("IMAGE_DECODE_MEMORY", "1000"), ("IMAGES_COMMIT_SECONDS", "-1")],
)
def test_a_bad_images_setting_is_refused_naming_it(
    settings_env: dict[str, str], name: str, value: str
) -> None:
    with pytest.raises(Exception, match=name) as caught:
        Settings.from_env({**settings_env, name: value})
    assert exit_code_for(caught.value) == 65


# ---- a time budget per attempt ----------------------------------------------------------------


def test_past_its_time_budget_an_attempt_records_what_it_did_and_exits_75(
    harness: Harness, image_host: ImageHost
) -> None:
    h = harness
    for n in range(10):
        image_host.files[f"/p{n}.jpg"] = s.jpeg((600, 600), color=(20 * n, 100, 100))
        add_product(h.conn, h.shop, f"p{n}", image_host.url(f"/p{n}.jpg"))
    # The night's run, and its first images attempt's row (the router writes it before the task).
    h.conn.execute("INSERT INTO runs (id, run_date, shop_count) VALUES ('r1', '2026-11-29', 1)")
    h.conn.execute(
        "INSERT INTO task_runs (run_id, shop_id, task) VALUES ('r1', %s, 'images')", (h.shop.id,)
    )
    h.conn.commit()
    ctx = dataclasses.replace(h.context(), run_id="r1")
    # The clock reads 0 at the start and 1 for the commit timer; the supply then reads 2, 3, 4
    # for three images and 5, the end of a 5-second budget, before the fourth.
    with pytest.raises(TransientError, match="IMAGES_TIME_BUDGET") as caught:
        task.run(ctx, config=fast(h, time_budget=5.0), clock=SteppingClock(1.0))
    assert exit_code_for(caught.value) == 75
    first = statuses(h)
    assert sorted(first.values()).count("ok") == 3
    assert "after 3 image(s)" in str(caught.value)
    done = {f"/{name}" for name, status in first.items() if status == "ok"}

    # The next attempt of the same night goes on with the rest, and asks nothing of what was done
    # (not even a conditional GET).
    image_host.clear()
    task.run(ctx, config=fast(h))
    assert set(statuses(h).values()) == {"ok"}
    asked = {path for path, _ in image_host.hits}
    assert asked == {f"/p{n}.jpg" for n in range(10)} - done


# ---- progress committed by time as well as by count ---------------------------------------------


@pytest.mark.parametrize(("step", "commits"), [(100.0, 5), (0.0, 0)])
def test_progress_is_committed_every_n_seconds_as_well_as_every_n_records(
    harness: Harness, image_host: ImageHost, step: float, commits: int
) -> None:
    h = harness
    for n in range(5):
        image_host.files[f"/c{n}.jpg"] = s.jpeg((600, 600), color=(10, 30 * n, 10))
        add_product(h.conn, h.shop, f"c{n}", image_host.url(f"/c{n}.jpg"))
    result = task.run(h.context(), config=fast(h, commit_seconds=30.0), clock=SteppingClock(step))
    # Five records, far fewer than the 200 a count-based commit waits for.
    assert result.counts["progress_commits"] == commits


# ---- decode concurrency from the CPU quota ------------------------------------------------------


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
    return root


@pytest.mark.parametrize(
    ("files", "quota", "workers"),
    [
        ({"cpu.max": "max 100000"}, None, 16),  # cgroup v2, no quota: the CPUs we may run on
        ({"cpu.max": "200000 100000"}, 2.0, 2),  # v2: 2 vCPUs on a 16-core host
        ({"cpu.max": "150000 100000"}, 1.5, 1),  # rounded down
        ({"cpu.max": "50000 100000"}, 0.5, 1),  # at least one
        ({"cpu.max": "6400000 100000"}, 64.0, 16),  # never more than the CPUs we may run on
        ({"cpu/cpu.cfs_quota_us": "400000", "cpu/cpu.cfs_period_us": "100000"}, 4.0, 4),  # v1
        ({"cpu,cpuacct/cpu.cfs_quota_us": "300000",
          "cpu,cpuacct/cpu.cfs_period_us": "100000"}, 3.0, 3),
        ({"cpu/cpu.cfs_quota_us": "-1", "cpu/cpu.cfs_period_us": "100000"}, None, 16),
        ({"cpu.max": "garbage"}, None, 16),
        ({}, None, 16),  # no cgroup file system at all
    ],
)
def test_decode_concurrency_follows_the_cgroup_cpu_quota(
    tmp_path: Path, files: dict[str, str], quota: float | None, workers: int
) -> None:
    root = write(tmp_path, files)
    assert cgroup_cpu_quota(root) == quota
    assert decode_concurrency(root, cores=16) == workers


# ---- a memory budget for decodes in flight ------------------------------------------------------


OPTIONS = ProcessOptions(rules=channel_rules(apparel=False, on=TODAY), channels=("google",))


def test_an_image_needing_more_than_the_whole_budget_is_refused_as_a_bomb() -> None:
    budget = MemoryBudget(1 << 20)
    data = s.rgba_png((1000, 1000))  # 4,000,000 bytes decoded
    with pytest.raises(ImageRejected) as caught:
        process_image(data, OPTIONS, reserve=budget.reserve)
    assert caught.value.outcome is Outcome.BOMB
    assert "4,000,000 bytes decoded" in str(caught.value)
    assert budget.peak == 0  # refused before a pixel was decoded


def test_a_decode_reserves_its_pixels_and_gives_them_back() -> None:
    budget = MemoryBudget(8 << 20)
    processed = process_image(s.rgba_png((700, 500)), OPTIONS, reserve=budget.reserve)
    assert processed.width == 700
    assert budget.peak == 700 * 500 * 4
    assert budget.in_use == 0


def test_a_drafted_jpeg_reserves_only_its_reduced_size() -> None:
    budget = MemoryBudget(64 << 20)
    process_image(s.noisy_jpeg((3200, 3200)), OPTIONS, reserve=budget.reserve)
    # max_edge 1600: the JPEG is decoded at half size in the DCT domain.
    assert budget.peak == 1600 * 1600 * 4


def test_decodes_in_flight_never_exceed_the_budget() -> None:
    budget = MemoryBudget(100)
    inside: list[int] = []
    lock = threading.Lock()

    def work() -> None:
        with budget.reserve(40):
            with lock:
                inside.append(budget.in_use)
            time.sleep(0.01)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(inside) == 8
    assert max(inside) <= 100 and budget.peak == 80
    assert budget.in_use == 0
    with pytest.raises(ValueError, match="more than the whole budget"), budget.reserve(101):
        pass


def test_the_task_holds_decoded_pixels_within_its_budget(
    harness: Harness, image_host: ImageHost
) -> None:
    h = harness
    one = 900 * 900 * 4
    for n in range(6):
        image_host.files[f"/m{n}.png"] = s.rgba_png((900, 900), seed=n)
        add_product(h.conn, h.shop, f"m{n}", image_host.url(f"/m{n}.png"))
    image_host.files["/huge.png"] = s.rgba_png((1200, 1200))
    add_product(h.conn, h.shop, "huge", image_host.url("/huge.png"))
    result = task.run(
        h.context(), config=fast(h, decode_workers=4, decode_memory=one + one // 2)
    )
    assert result.counts["decode_memory_peak"] == one  # four decoders, room for one at a time
    found = statuses(h)
    assert found.pop("huge.png") == "bomb"
    assert set(found.values()) == {"ok"}


# ---- the ICC transform cache ---------------------------------------------------------------------


def test_the_transform_cache_is_keyed_by_digest_and_bounded_in_bytes() -> None:
    profile = s.adobe_rgb_icc()
    cache = TransformCache(max_bytes=2 * 2 * (len(profile) + 4))  # room for two (measured 2×)
    first = cache.get(profile, "RGB")
    assert cache.get(bytes(profile), "RGB") is first  # equal bytes, another object: one entry
    assert (cache.builds, len(cache)) == (1, 1)
    assert all(len(key[0]) == 32 for key in cache._entries)  # a sha256, not the profile
    # Three more distinct profiles (a byte of padding each): the oldest go, the bound holds.
    for n in range(3):
        cache.get(profile + bytes([n]) * 4, "RGB")
        assert cache.bytes <= cache.max_bytes
    assert len(cache) == 2
    assert cache.get(profile, "RGB") is not first  # it was evicted and is built again
    too_big = TransformCache(max_bytes=len(profile))
    too_big.get(profile, "RGB")
    assert (len(too_big), too_big.bytes) == (0, 0)  # used once, never kept


MEASURE = """
import io, resource, sys, threading
from datetime import date
from PIL import Image
from worker.images.pipeline import MemoryBudget
from worker.images.process import ProcessOptions, channel_rules, process_image

budget = MemoryBudget(int(sys.argv[1]))
out = io.BytesIO()
Image.new("RGBA", (4000, 4000), (10, 200, 30, 128)).save(out, "PNG")
data = out.getvalue()
options = ProcessOptions(rules=channel_rules(apparel=False, on=date(2026, 11, 29)),
                         channels=("google",))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
threads = [threading.Thread(target=process_image, args=(data, options),
                            kwargs={"reserve": budget.reserve}) for _ in range(6)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before, budget.peak)
"""


def test_the_decode_budget_bounds_real_memory_not_just_its_own_count() -> None:
    # Six decoders at once on six 4000 × 4000 RGBA PNGs (64 MB of pixels each): with a budget
    # of one image they take turns, and the process's peak memory shows it.
    def peak_growth(budget: int) -> tuple[int, int]:
        proc = subprocess.run(
            [sys.executable, "-c", MEASURE, str(budget)], capture_output=True, text=True,
            timeout=300, env={**os.environ, "PYTHONPATH": os.getcwd()},
        )
        assert proc.returncode == 0, proc.stderr
        kib, reserved = proc.stdout.split()
        return int(kib) * 1024, int(reserved)

    bounded, bounded_reserved = peak_growth(70_000_000)
    unbounded, unbounded_reserved = peak_growth(2_000_000_000)
    assert bounded_reserved == 64_000_000 and unbounded_reserved > 2 * 64_000_000
    assert bounded * 1.5 < unbounded
