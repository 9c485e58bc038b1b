"""The rate limit shared through Redis: many processes together stay under it; 429s slow it."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

import pytest
import redis

from tests.support.harness import FleetProcesses, fleet_env
from tests.support.pushwoosh_stub import PushwooshStub
from tests.support.traffic import post_batches, tracks
from worker.ratelimit import SharedRateLimit

pytestmark = pytest.mark.integration


def _spend(url: str, key: str, until: float, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    limiter = SharedRateLimit(redis.Redis.from_url(url), key, requests_per_s=20, events_per_s=0)
    while time.time() < until:
        limiter.acquire(1)
        queue.put(time.time())


def test_processes_sharing_a_limit_stay_under_it(redis_url: str, key_prefix: str) -> None:
    # Given four processes hammering one 20 requests/s limit for 3 seconds
    queue: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    key = f"{key_prefix}:default:rate-limit"
    start = time.time()
    until = start + 3.0
    procs = [
        multiprocessing.Process(target=_spend, args=(redis_url, key, until, queue))
        for _ in range(4)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=30)
    stamps = []
    while not queue.empty():
        stamps.append(queue.get())
    # Then together they got one second's burst plus 20 per second, not 4 x 20
    elapsed = max(stamps) - start
    assert len(stamps) <= 20 + 20 * elapsed + 2
    assert len(stamps) >= 20 * 2  # and the limit is not starving them either


def test_a_429_halves_the_rate_and_it_recovers(redis_url: str, key_prefix: str) -> None:
    client = redis.Redis.from_url(redis_url)
    limiter = SharedRateLimit(client, f"{key_prefix}:rl", 10, 0, recovery_per_s=0.5)
    limiter.wait_ms(1)
    assert limiter.slow_down() == pytest.approx(0.5)
    assert limiter.slow_down() == pytest.approx(0.25)
    for _ in range(10):
        limiter.slow_down()
    assert limiter.slow_down() == pytest.approx(0.1)  # never below a tenth
    time.sleep(1.0)
    limiter.wait_ms(1)
    factor = float(client.hget(f"{key_prefix}:rl", "factor"))
    assert 0.5 <= factor <= 0.7  # recovering by half the rate per second


def most_within(stamps: list[float], window_s: float) -> int:
    """The most requests that arrived within `window_s` of the first of them (stamps sorted)."""
    return max(
        sum(1 for s in stamps[i:] if s - first <= window_s) for i, first in enumerate(stamps)
    )


@pytest.mark.slow
def test_several_workers_stay_under_the_destination_limit(
    redis_url: str, key_prefix: str, stub: PushwooshStub, tmp_path: Path
) -> None:
    # Given two worker processes of two processes each, four shards, and a 10 requests/s limit
    env = fleet_env(redis_url, key_prefix, stub.url, PUSHWOOSH_SHARDS="4",
                    PUSHWOOSH_MAX_REQUESTS_PER_S="10")  # fmt: skip
    fleet = FleetProcesses(env, tmp_path)
    try:
        url = fleet.start_ingest()
        fleet.start_worker(concurrency=2)
        fleet.start_worker(concurrency=2)
        # When 60 events arrive at once, one request each (batching off)
        post_batches(url, tracks(60))
        got = stub.wait_for(lambda got: len(got) >= 60, timeout_s=60)
    finally:
        fleet.stop_all()
    # Then the combined rate stayed under the limit: a burst of 10, then 10 per second
    stamps = sorted(r.received_at for r in got)
    assert most_within(stamps, 2.0) <= 10 + 10 * 2.0 + 1
    assert stamps[-1] - stamps[0] >= (60 - 10) / 10 - 0.5


FAKETIME_LIBRARY = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1")


@pytest.mark.slow
def test_a_worker_whose_clock_runs_ahead_cannot_stretch_the_limit(
    redis_url: str, key_prefix: str, stub: PushwooshStub, tmp_path: Path
) -> None:
    if not FAKETIME_LIBRARY.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{FAKETIME_LIBRARY} is required in CI (scripts/ensure-debian-packages.sh)")
        pytest.skip("libfaketime is not installed (Debian package faketime)")
    # Given two workers sharing a 10 requests/s limit, one with its clock 5 s ahead
    env = fleet_env(redis_url, key_prefix, stub.url, PUSHWOOSH_SHARDS="4",
                    PUSHWOOSH_MAX_REQUESTS_PER_S="10")  # fmt: skip
    fleet = FleetProcesses(env, tmp_path)
    try:
        url = fleet.start_ingest()
        fleet.start_worker(concurrency=2)
        ahead = {"LD_PRELOAD": str(FAKETIME_LIBRARY), "FAKETIME": "+5s"}
        fleet.start_worker(concurrency=2, env=ahead)
        # When 80 events arrive at once, one request each
        post_batches(url, tracks(80))
        got = stub.wait_for(lambda got: len(got) >= 80, timeout_s=90)
    finally:
        fleet.stop_all()
    # Then the combined rate stayed under the limit: a burst of 10, then 10 per second
    assert most_within(sorted(r.received_at for r in got), 2.0) <= 10 + 10 * 2.0 + 1
