"""The bounded pool: lazily consumed input, a fixed number of items in flight, failures surface."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from worker.images.pipeline import bounded_map


def test_never_more_than_max_in_flight_items_taken_and_unfinished() -> None:
    taken: list[int] = []

    def items() -> Iterator[int]:
        for i in range(200):
            taken.append(i)
            yield i

    def work(i: int) -> int:
        time.sleep(0.0005 * (i % 3))
        return i * 2

    done: list[int] = []
    in_flight: list[int] = []
    for result in bounded_map(work, items(), workers=3, max_in_flight=5):
        in_flight.append(len(taken) - len(done))
        done.append(result)
    assert sorted(done) == [i * 2 for i in range(200)]
    assert max(in_flight) <= 5
    assert max(in_flight) >= 2  # it did run things side by side


def test_workers_bound_concurrency() -> None:
    lock = threading.Lock()
    active = peak = 0

    def work(i: int) -> int:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        time.sleep(0.002)
        with lock:
            active -= 1
        return i

    assert len(list(bounded_map(work, range(40), workers=3, max_in_flight=10))) == 40
    assert 1 < peak <= 3


def test_a_failure_stops_the_map_and_the_input_is_not_drained() -> None:
    taken: list[int] = []

    def items() -> Iterator[int]:
        for i in range(1000):
            taken.append(i)
            yield i

    def work(i: int) -> int:
        if i == 7:
            raise RuntimeError("boom at 7")
        return i

    with pytest.raises(RuntimeError, match="boom at 7"):
        for _ in bounded_map(work, items(), workers=2, max_in_flight=4):
            pass
    assert len(taken) < 20


def test_closing_early_cancels_what_has_not_started() -> None:
    started: list[int] = []

    def work(i: int) -> int:
        started.append(i)
        time.sleep(0.001)
        return i

    results = bounded_map(work, range(1000), workers=2, max_in_flight=4)
    first = next(results)
    results.close()
    assert first in range(1000)
    assert len(started) <= 6
