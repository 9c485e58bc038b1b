"""Fault injection against real processes: every event ingest accepted is delivered or
dead-lettered, counted by messageId, whatever happens to workers, Redis or Pushwoosh.
"""

from __future__ import annotations

import collections
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from fleet.embedded_redis import EmbeddedRedis
from tests.support.harness import FleetProcesses, fleet_env
from tests.support.pushwoosh_stub import PushwooshStub, Reply
from tests.support.traffic import delivered_ids, post_batches, tracks, wait_all_accounted

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def fleet(
    redis_url: str, key_prefix: str, stub: PushwooshStub, tmp_path: Path
) -> Iterator[FleetProcesses]:
    processes = FleetProcesses(
        fleet_env(
            redis_url,
            key_prefix,
            stub.url,
            PUSHWOOSH_ENABLE_BATCHING="true",
            PUSHWOOSH_BATCH_FLUSH_DELAY_S="0.2",
            RETRY_BASE_DELAY_S="0.2",
            RETRY_MAX_DELAY_S="2",
        ),
        tmp_path,
    )
    yield processes
    processes.stop_all()


# The Procfile's threads pool, and Celery's default prefork pool (a main process and children).
@pytest.mark.parametrize("pool", ["threads", "prefork"])
def test_sigkill_mid_batch_loses_nothing(fleet, stub, redis_client, key_prefix, pool) -> None:
    # Given a fleet whose Pushwoosh is a little slow, so batches are in flight
    stub.set_default(Reply(200, delay_s=0.02))
    url = fleet.start_ingest()
    worker = fleet.start_worker(concurrency=2, pool=pool)
    accepted = post_batches(url, tracks(5000))
    assert len(accepted) == 5000
    # When the worker is killed with SIGKILL (main process and pool) mid-stream
    stub.wait_for(lambda got: len(delivered_ids(stub)) >= 500, timeout_s=60)
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait()
    delivered_before_restart = len(delivered_ids(stub))
    assert delivered_before_restart < 5000, "the kill came too late to test anything"
    # And a new worker starts
    fleet.start_worker(concurrency=2, pool=pool)
    # Then every accepted event is delivered at least once
    counts, dead = wait_all_accounted(stub, redis_client, key_prefix, accepted, timeout_s=90)
    assert not dead
    duplicates = sum(n - 1 for n in counts.values())
    print(
        f"\nSIGKILL: {delivered_before_restart} delivered before the kill, {duplicates} duplicates"
    )
    assert duplicates <= 300  # at most the batches in flight at the kill


def test_sigterm_during_load_loses_nothing_and_duplicates_nothing(
    fleet, stub, redis_client, key_prefix
) -> None:
    stub.set_default(Reply(200, delay_s=0.01))
    url = fleet.start_ingest()
    worker = fleet.start_worker(concurrency=2)
    accepted = post_batches(url, tracks(3000))
    stub.wait_for(lambda got: len(delivered_ids(stub)) >= 300, timeout_s=60)
    # When the worker is asked to stop (a deploy): warm shutdown
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=60) is not None
    fleet.start_worker(concurrency=2)
    counts, dead = wait_all_accounted(stub, redis_client, key_prefix, accepted, timeout_s=90)
    assert not dead
    assert all(n == 1 for n in counts.values()), "a warm shutdown must not send anything twice"


@pytest.mark.timeout(300)
def test_redis_restart_with_aof_loses_nothing(stub, tmp_path, key_prefix) -> None:
    # Given a fleet on a test-owned Redis with AOF (fsync always)
    server = EmbeddedRedis(tmp_path / "redis")
    server.start()
    client = redis.Redis.from_url(server.url, decode_responses=True)
    client.config_set("appendfsync", "always")
    fleet = FleetProcesses(
        fleet_env(
            server.url,
            key_prefix,
            stub.url,
            PUSHWOOSH_ENABLE_BATCHING="true",
            PUSHWOOSH_BATCH_FLUSH_DELAY_S="0.2",
        ),
        tmp_path,
    )
    try:
        stub.set_default(Reply(200, delay_s=0.01))
        url = fleet.start_ingest()
        fleet.start_worker(concurrency=2)
        accepted: list[str] = []
        sender = threading.Thread(target=lambda: accepted.extend(post_batches(url, tracks(3000))))
        sender.start()
        # When Redis restarts mid-stream
        stub.wait_for(lambda got: len(delivered_ids(stub)) >= 300, timeout_s=60)
        server.stop()
        time.sleep(1.0)
        server.start()
        sender.join(timeout=120)
        # Then every event ingest accepted is delivered
        try:
            counts, dead = wait_all_accounted(stub, client, key_prefix, accepted, timeout_s=90)
        except AssertionError:
            raise AssertionError(fleet.logs("worker")[-6000:]) from None
        assert len(accepted) == 3000 and not dead
        print(f"\nRedis restart: {sum(n - 1 for n in counts.values())} duplicates")
    finally:
        fleet.stop_all()
        server.stop()


def test_outage_then_recovery_delivers_all_with_bounded_requests(
    fleet, stub, redis_client, key_prefix
) -> None:
    # Given Pushwoosh answering 503 for 4 seconds
    stub.set_default(Reply(503, "unavailable"))
    url = fleet.start_ingest()
    fleet.start_worker(concurrency=2)
    accepted = post_batches(url, tracks(1000))
    time.sleep(4)
    failed_during_outage = len(stub.snapshot())
    stub.set_default(Reply(200))
    # Then all are delivered once it is back, and the outage cost few requests
    _counts, dead = wait_all_accounted(stub, redis_client, key_prefix, accepted, timeout_s=60)
    assert not dead
    print(f"\noutage: {failed_during_outage} requests in 4 s of 503s")
    assert failed_during_outage <= 12  # one probe per back-off interval, not one per batch


def test_slow_pushwoosh_beyond_the_timeout_is_retried(
    fleet, stub, redis_client, key_prefix
) -> None:
    stub.respond_with(Reply(200, delay_s=4.0))  # PUSHWOOSH_TIMEOUT_S is 3 in these tests
    url = fleet.start_ingest()
    fleet.start_worker(concurrency=2)
    accepted = post_batches(url, tracks(10))
    _counts, dead = wait_all_accounted(stub, redis_client, key_prefix, accepted, timeout_s=60)
    # the first request timed out and was sent again
    assert not dead
    stub.wait_for(lambda got: len(got) >= 2, timeout_s=10)
    first, second = stub.snapshot()[:2]
    assert second.received_at - first.received_at >= 3.0


def test_same_message_id_twice_is_delivered_once(fleet, stub, redis_client, key_prefix) -> None:
    url = fleet.start_ingest()
    fleet.start_worker(concurrency=1)
    events = tracks(5)
    post_batches(url, events)
    post_batches(url, events[2:4])  # a sender retry
    _counts, _ = wait_all_accounted(
        stub, redis_client, key_prefix, [str(e["messageId"]) for e in events], 30
    )
    time.sleep(1.0)  # give a duplicate the time it would need to show up
    assert collections.Counter(delivered_ids(stub)) == {str(e["messageId"]): 1 for e in events}
