"""The watchdog: a block that outlives its deadline is cut off, one that ends in time never is,
and guards that end in time neither wake its thread nor pile up."""

from __future__ import annotations

import threading
import time

from worker.deadline import Watchdog


def test_a_block_that_outlives_its_deadline_is_cut_off() -> None:
    watchdog, cut = Watchdog(), threading.Event()
    with watchdog.guard(time.monotonic() + 0.05, cut.set):
        assert cut.wait(5)


def test_a_block_that_ends_in_time_is_never_cut_off() -> None:
    watchdog, cut = Watchdog(), threading.Event()
    with watchdog.guard(time.monotonic() + 0.1, cut.set):
        pass
    assert not cut.wait(0.3)


def test_an_earlier_deadline_added_later_is_still_kept() -> None:
    # Given a long block whose deadline is far off (the watchdog sleeps until it)
    watchdog, far_cut, near_cut = Watchdog(), threading.Event(), threading.Event()
    release = threading.Event()

    def long_block() -> None:
        with watchdog.guard(time.monotonic() + 30, far_cut.set):
            release.wait(10)

    holder = threading.Thread(target=long_block)
    holder.start()
    time.sleep(0.1)
    # When a block with a nearer deadline outlives it
    started = time.monotonic()
    with watchdog.guard(started + 0.1, near_cut.set):
        cut_in_time = near_cut.wait(5)
    # Then it is cut off at its own deadline, not the far one
    release.set()
    holder.join(10)
    assert cut_in_time and time.monotonic() - started < 2
    assert not far_cut.is_set()


def test_blocks_that_end_in_time_neither_wake_the_watchdog_nor_pile_up() -> None:
    woken = [0]

    def clock() -> float:  # read by the watchdog's thread each time it wakes
        woken[0] += 1
        return time.monotonic()

    watchdog = Watchdog(clock)
    for _ in range(1000):
        with watchdog.guard(time.monotonic() + 30, lambda: None):
            time.sleep(0)
    time.sleep(0.1)
    assert woken[0] <= 3
    assert len(watchdog._heap) <= 1
