"""A step's unit of work against a real Redis: everything it settled is written in one call, and
nothing at all once the lease is another task's."""

from __future__ import annotations

import pytest

from config.redis_keys import CONSUMER_GROUP
from tests.support.drain import enqueue, make_runtime, now_ms, track
from tests.support.pushwoosh_stub import PushwooshStub
from worker import dlq
from worker.batcher import Outgoing
from worker.batching import PlannedRequest
from worker.drain import CONSUMER_NAME
from worker.lease import Lease, LeaseLost
from worker.retries import RetryRecord
from worker.runtime import Runtime
from worker.settlement import Settlement

pytestmark = pytest.mark.integration


def a_step(runtime: Runtime, events: int) -> tuple[Settlement, Lease, list[str]]:
    """A held lease, `events` entries read and pending, and a step that settled all of them:
    one delivered, one dead-lettered, the rest parked on the retry schedule, and an older
    record moved and another removed."""
    keys = runtime.keys.shard(0)
    enqueue(runtime, [track(i) for i in range(events)])
    read = runtime.redis.xreadgroup(CONSUMER_GROUP, CONSUMER_NAME, {keys.stream: ">"})
    ids = [entry_id for entry_id, _ in read[0][1]]
    runtime.redis.zadd(keys.retry, {"old-1": 1, "old-2": 2})
    runtime.redis.hset(keys.retry_data, mapping={"old-1": "{}", "old-2": "{}"})
    lease = Lease(runtime.redis, keys.lease, 5)
    assert lease.acquire()
    work = Settlement(runtime.redis, keys, 10, 3_600_000)
    now = now_ms()
    work.expect(ids[0], 1)
    work.delivered(1, now)
    work.sent(1, 0.02, now)
    work.settle([ids[0]])
    letter = dlq.unreadable_entry("?", accepted_ms=now, now_ms=now, destination="default")
    work.dead_letter(letter, now)
    work.ack(ids[1])
    request = PlannedRequest("post-events", {"events": []}, ("m-2",), "Track", "trackEvent")
    parked = Outgoing(request, tuple(ids[2:]), (now,), order=ids[2])
    work.schedule(RetryRecord.of(parked, "r-1", 1, 503, "busy"), now + 60_000, now)
    work.settle(ids[2:])
    work.reschedule("old-1", 99)
    work.unschedule("old-2")
    return work, lease, ids


def test_a_step_is_written_whole_while_the_lease_is_held(
    redis_url: str, key_prefix: str, stub: PushwooshStub
) -> None:
    runtime = make_runtime(redis_url, key_prefix, stub)
    keys = runtime.keys.shard(0)
    # Given a step that settled every entry it read, its lease still held
    work, lease, _ = a_step(runtime, 2_500)
    # When it commits
    assert work.commit(lease, now_ms()) is True
    # Then every entry is acknowledged and deleted (more than one chunk of them)
    assert runtime.redis.xpending(keys.stream, CONSUMER_GROUP)["pending"] == 0
    assert runtime.redis.xlen(keys.stream) == 0
    # and the dead letter, the schedule, the holds and the counters are written with them
    assert runtime.redis.xlen(keys.dlq) == 1
    assert runtime.redis.zrange(keys.retry, 0, -1, withscores=True) == [
        ("old-1", 99.0), ("r-1", pytest.approx(now_ms() + 60_000, abs=5_000)),
    ]  # fmt: skip
    assert set(runtime.redis.hkeys(keys.retry_data)) == {"old-1", "r-1"}
    assert runtime.redis.hkeys(keys.holds) == ["r-1"]
    stats = runtime.redis.hgetall(keys.stats)
    assert stats["delivered"] == "1" and stats["dead_lettered"] == "1"
    assert stats["retried"] == "1" and stats["requests"] == "1"
    hour = keys.minutes(now_ms() // 3_600_000)
    assert any(field.endswith(":lat:25") for field in runtime.redis.hkeys(hour))
    assert 0 < runtime.redis.ttl(hour) <= 25 * 3600
    # and the step is empty again
    assert work.commit(lease, now_ms()) is False


def test_a_step_whose_lease_was_taken_writes_nothing(
    redis_url: str, key_prefix: str, stub: PushwooshStub
) -> None:
    runtime = make_runtime(redis_url, key_prefix, stub)
    keys = runtime.keys.shard(0)
    # Given a step whose lease expired and another task took the shard
    work, lease, ids = a_step(runtime, 10)
    runtime.redis.set(keys.lease, "another-task", px=5000)
    schedule = runtime.redis.zrange(keys.retry, 0, -1, withscores=True)
    records = runtime.redis.hgetall(keys.retry_data)
    # When it commits
    with pytest.raises(LeaseLost):
        work.commit(lease, now_ms())
    # Then nothing of it was written: every entry still pending, no dead letter, no counter,
    # the schedule untouched
    assert runtime.redis.xpending(keys.stream, CONSUMER_GROUP)["pending"] == len(ids)
    assert runtime.redis.xlen(keys.stream) == len(ids)
    assert not runtime.redis.exists(keys.dlq, keys.stats, keys.holds)
    assert not runtime.redis.exists(keys.minutes(now_ms() // 3_600_000))
    assert runtime.redis.zrange(keys.retry, 0, -1, withscores=True) == schedule
    assert runtime.redis.hgetall(keys.retry_data) == records
