"""The drain loop in-process, against a real Redis and the real HTTP stand-in (no Celery):
batching, poisoned batches, retries, the shared back-off, dead letters, and crash recovery.
"""

from __future__ import annotations

import json
import random
import threading
import time

import pytest

from config.redis_keys import CONSUMER_GROUP, shard_of
from tests.support.drain import enqueue, make_runtime, now_ms, track
from tests.support.harness import API_KEY
from tests.support.pushwoosh_stub import RecordedRequest, Reply
from worker.dlq import DeadLetterFilter, DeadLetterQueue
from worker.drain import CONSUMER_NAME, ShardDrainer
from worker.runtime import Runtime

pytestmark = pytest.mark.integration


def sent_indexes(requests: list[RecordedRequest]) -> list[int]:
    return [e["attributes"]["i"] for r in requests for e in r.json["events"]]


def drain_until_empty(runtime: Runtime, rounds: int = 20) -> None:
    for _ in range(rounds):
        ShardDrainer(runtime, 0, rng=random.Random(3)).run()
        if not runtime.redis.xlen(runtime.keys.stream(0)) and not runtime.redis.zcard(
            runtime.keys.shard(0).retry
        ):
            return
        time.sleep(0.1)


def test_full_batches_then_a_partial_one_after_the_flush_delay(redis_url, key_prefix, stub):
    runtime = make_runtime(redis_url, key_prefix, stub)
    enqueue(runtime, [track(i) for i in range(250)])
    started = time.monotonic()
    report = ShardDrainer(runtime, 0).run()
    assert [len(r.json["events"]) for r in stub.snapshot()] == [100, 100, 50]
    assert sent_indexes(stub.snapshot()) == list(range(250))
    assert report.delivered == 250 and report.requests == 3
    assert time.monotonic() - started < 3  # the partial batch did not wait for the slice end
    assert runtime.redis.xlen(runtime.keys.stream(0)) == 0  # acked and deleted


def test_poisoned_batch_is_split_so_only_the_bad_event_is_dead_lettered(
    redis_url, key_prefix, stub
):
    runtime = make_runtime(redis_url, key_prefix, stub)

    def reject_batches_holding_event_37(request: RecordedRequest) -> Reply | None:
        if 37 in [e["attributes"]["i"] for e in request.json["events"]]:
            return Reply(400, {"action": "post event", "status": "failure",
                               "error": {"message": "cannot decode event 37"}})  # fmt: skip
        return None

    stub.set_handler(reject_batches_holding_event_37)
    enqueue(runtime, [track(i) for i in range(100)])
    ShardDrainer(runtime, 0).run()
    delivered = [
        i
        for r in stub.snapshot()
        if 37 not in [e["attributes"]["i"] for e in r.json["events"]]
        for i in [e["attributes"]["i"] for e in r.json["events"]]
    ]
    assert sorted(delivered) == [i for i in range(100) if i != 37]
    letters = list(
        DeadLetterQueue(runtime.redis, runtime.keys, 1).iter(DeadLetterFilter(), now_ms())
    )
    assert len(letters) == 1
    assert letters[0].message_ids == ["m-37"] and letters[0].status == 400
    assert "cannot decode event 37" in letters[0].reason
    # isolating one bad event in 100 costs a handful of requests, not 100
    assert len(stub.snapshot()) <= 2 * 7 + 1


def test_a_reply_echoing_the_api_key_leaves_no_key_in_the_dead_letter(redis_url, key_prefix, stub):
    # Given a Pushwoosh that quotes the request's key back in its refusal
    runtime = make_runtime(redis_url, key_prefix, stub)
    stub.respond_with(Reply(400, {"status_message": f"token {API_KEY} may not post this"}))
    enqueue(runtime, [track(0)])
    # When the event is dead-lettered
    ShardDrainer(runtime, 0).run()
    # Then the stored reply keeps its words and masks the key
    (letter,) = DeadLetterQueue(runtime.redis, runtime.keys, 1).iter(DeadLetterFilter(), now_ms())
    assert "may not post this" in letter.reply and "****" in letter.reply
    assert API_KEY not in json.dumps(runtime.redis.xrange(runtime.keys.shard(0).dlq))


def test_retryable_failure_is_parked_then_delivered(redis_url, key_prefix, stub):
    runtime = make_runtime(redis_url, key_prefix, stub)
    stub.respond_with(Reply(503, "busy"), Reply(503, "busy"))
    enqueue(runtime, [track(i) for i in range(10)])
    drain_until_empty(runtime)
    assert sent_indexes(stub.snapshot()[-1:]) == list(range(10))
    assert len(stub.snapshot()) == 3
    assert DeadLetterQueue(runtime.redis, runtime.keys, 1).count() == 0


def test_429_retry_after_is_honoured(redis_url, key_prefix, stub):
    # Retry-After is honoured up to RETRY_MAX_DELAY_S (it is untrusted input): here 5 s.
    runtime = make_runtime(redis_url, key_prefix, stub, RETRY_MAX_DELAY_S="5")
    stub.respond_with(Reply(429, "", headers={"Retry-After": "2"}))
    enqueue(runtime, [track(1)])
    drain_until_empty(runtime, rounds=60)
    first, second = stub.snapshot()
    assert second.received_at - first.received_at >= 2.0


def test_401_dead_letters_and_backs_off_hard(redis_url, key_prefix, stub):
    runtime = make_runtime(redis_url, key_prefix, stub, PUSHWOOSH_ENABLE_BATCHING="false")
    stub.set_default(Reply(401, {"message": "unauthorized"}))
    enqueue(runtime, [track(i) for i in range(20)])
    for _ in range(5):
        ShardDrainer(runtime, 0).run()
    # one request, dead-lettered; the others wait (parked) until the pause is over
    assert len(stub.snapshot()) == 1
    letters = list(
        DeadLetterQueue(runtime.redis, runtime.keys, 1).iter(DeadLetterFilter(), now_ms())
    )
    assert [letter.status for letter in letters] == [401]
    circuit = runtime.redis.hgetall(runtime.keys.circuit)
    parked = runtime.redis.zrange(runtime.keys.shard(0).retry, 0, -1, withscores=True)
    assert len(parked) == 19
    assert min(due for _, due in parked) >= int(circuit["open_until_ms"])
    assert int(circuit["open_until_ms"]) - time.time() * 1000 > 50_000  # a hard pause: ~60 s
    assert circuit["kind"] == "auth"
    assert API_KEY not in json.dumps(circuit) and API_KEY not in letters[0].to_json()


def test_a_dead_owner_leaves_its_events_pending_for_the_next(redis_url, key_prefix, stub):
    runtime = make_runtime(redis_url, key_prefix, stub)
    enqueue(runtime, [track(i) for i in range(30)])
    # Given a drain that read the events and died before settling them
    runtime.redis.xreadgroup(CONSUMER_GROUP, CONSUMER_NAME, {runtime.keys.stream(0): ">"}, count=30)
    assert runtime.redis.xpending(runtime.keys.stream(0), CONSUMER_GROUP)["pending"] == 30
    # When the next drain task gets the shard
    ShardDrainer(runtime, 0).run()
    # Then it delivers what the dead one left pending
    assert sent_indexes(stub.snapshot()) == list(range(30))
    assert runtime.redis.xpending(runtime.keys.stream(0), CONSUMER_GROUP)["pending"] == 0


def test_only_one_drain_owns_a_shard(redis_url, key_prefix, stub):
    runtime = make_runtime(redis_url, key_prefix, stub)
    runtime.redis.set(runtime.keys.shard(0).lease, "someone-else", px=5000)
    enqueue(runtime, [track(1)])
    report = ShardDrainer(runtime, 0).run()
    assert report.not_started and stub.snapshot() == []


def test_rejected_event_is_dead_lettered_with_the_reason(redis_url, key_prefix, stub):
    runtime = make_runtime(redis_url, key_prefix, stub)
    enqueue(runtime, [track(1, timestamp="not a date"), track(2)])
    ShardDrainer(runtime, 0).run()
    assert sent_indexes(stub.snapshot()) == [2]
    (letter,) = DeadLetterQueue(runtime.redis, runtime.keys, 1).iter(DeadLetterFilter(), now_ms())
    assert letter.kind == "rejected" and letter.message_ids == ["m-1"]
    assert "timestamp" in letter.reason


def test_dlq_replay_delivers_once(redis_url, key_prefix, stub):
    runtime = make_runtime(redis_url, key_prefix, stub)
    stub.respond_with(Reply(400, {"message": "bad"}))
    enqueue(runtime, [track(1)])
    ShardDrainer(runtime, 0).run()
    queue = DeadLetterQueue(runtime.redis, runtime.keys, 1)
    (letter,) = queue.iter(DeadLetterFilter(), now_ms())
    assert queue.replay(letter, now_ms()) is True
    assert queue.replay(letter, now_ms()) is False  # a second replay finds nothing to send again
    drain_until_empty(runtime)
    assert len(stub.snapshot()) == 2 and queue.count() == 0


def test_drain_threads_share_one_client_safely_and_reuse_connections(redis_url, key_prefix, stub):
    # Given one client, as the worker's threads pool shares it between drain tasks
    client = make_runtime(redis_url, key_prefix, stub).sender
    replies: list[int | None] = []
    lock = threading.Lock()

    def send_ten(thread: int) -> None:
        for i in range(10):
            reply = client.send("createMessage", {"thread": thread, "i": i})
            with lock:
                replies.append(reply.status)

    # When four threads send ten requests each at the same time
    threads = [threading.Thread(target=send_ten, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    # Then every request arrived once, and keep-alive connections carried them (one per thread
    # at most, not one per request)
    assert replies == [200] * 40
    got = stub.snapshot()
    assert sorted((r.json["thread"], r.json["i"]) for r in got) == [
        (t, i) for t in range(4) for i in range(10)
    ]
    assert len({r.client_port for r in got}) <= 4


def test_events_without_a_user_id_are_skipped_not_dead_lettered(redis_url, key_prefix, stub):
    # Anonymous page views are ordinary traffic: counted and traced as skipped, never kept
    # (personal data and all) in the dead-letter queue.
    runtime = make_runtime(redis_url, key_prefix, stub)
    anonymous = {**track(1), "anonymousId": "anon-1"}
    anonymous.pop("userId")
    switched_off = {**track(2), "integrations": {"All": False}}
    enqueue(runtime, [anonymous, switched_off, track(3)])
    report = ShardDrainer(runtime, 0).run()
    assert sent_indexes(stub.snapshot()) == [3]
    assert report.skipped == 2 and report.dead_lettered == 0
    assert DeadLetterQueue(runtime.redis, runtime.keys, 1).count() == 0
    stats = runtime.redis.hgetall(runtime.keys.shard(0).stats)
    assert stats["skipped"] == "2"
    assert stats["skipped:no_user_id"] == "1" and stats["skipped:integrations"] == "1"
    assert runtime.redis.xlen(runtime.keys.stream(0)) == 0


def test_the_dead_letter_queue_keeps_at_most_its_bound(redis_url, key_prefix, stub):
    runtime = make_runtime(redis_url, key_prefix, stub, DLQ_MAX_ENTRIES="5")
    enqueue(runtime, [track(i, timestamp="not a date") for i in range(20)])
    ShardDrainer(runtime, 0).run()
    queue = DeadLetterQueue(runtime.redis, runtime.keys, 1)
    assert queue.count() == 5
    kept = [letter.message_ids[0] for letter in queue.iter(DeadLetterFilter(), now_ms())]
    assert kept == [f"m-{i}" for i in range(15, 20)]  # the newest stay


def test_replaying_a_dead_letter_with_a_numeric_user_id_on_several_shards(
    redis_url, key_prefix, stub
):
    runtime = make_runtime(redis_url, key_prefix, stub, PUSHWOOSH_SHARDS="3")
    event = {**track(1, timestamp="not a date"), "userId": 12345}
    shard = shard_of(event, 3)
    enqueue(runtime, [event], shard=shard)
    ShardDrainer(runtime, shard).run()
    queue = DeadLetterQueue(runtime.redis, runtime.keys, 3)
    (letter,) = queue.iter(DeadLetterFilter(), now_ms())
    assert letter.id.startswith(f"{shard}/")
    assert queue.replay(letter, now_ms()) is True
    assert runtime.redis.xlen(runtime.keys.stream(shard)) == 1  # back on its own shard


class _SteppedClock:
    """Redis-like wall time the test moves by hand."""

    def __init__(self) -> None:
        self.ms = now_ms()

    def now_ms(self) -> int:
        return self.ms

    def monotonic_s(self) -> float:
        return self.ms / 1000


def test_the_retry_schedule_is_read_at_most_every_look_interval_unless_a_park_is_due(
    redis_url, key_prefix, stub, monkeypatch
):
    from worker.delivery import RETRY_LOOK_MS
    from worker.retries import RetrySchedule

    runtime = make_runtime(redis_url, key_prefix, stub)
    looks: list[int] = []
    real_due = RetrySchedule.due
    monkeypatch.setattr(
        RetrySchedule, "due", lambda self, now: looks.append(now) or real_due(self, now)
    )
    clock = _SteppedClock()
    delivery = ShardDrainer(runtime, 0, clock=clock)._delivery
    delivery.send_due_retries()
    delivery.send_due_retries()  # same moment: not read again
    clock.ms += RETRY_LOOK_MS - 1
    delivery.send_due_retries()
    assert len(looks) == 1
    clock.ms += 1
    delivery.send_due_retries()
    assert len(looks) == 2
    # A park due sooner than the next look is looked at from its due time on.
    delivery._look_at_retries_by(clock.ms + 10)
    clock.ms += 10
    delivery.send_due_retries()
    assert len(looks) == 3


def _trickle(runtime: Runtime, drainer: ShardDrainer, events: int) -> list[int]:
    """Run `drainer` while events arrive one by one (2 ms apart); the sizes of its reads."""
    reads: list[int] = []
    real_read = drainer._read

    def counted(start: str, block_ms: int) -> list:
        entries = real_read(start, block_ms)
        if start == ">" and entries:
            reads.append(len(entries))
        return entries

    drainer._read = counted  # type: ignore[method-assign]
    enqueue(runtime, [])  # the stream and its group, before the drain looks
    draining = threading.Thread(target=drainer.run)
    draining.start()
    for i in range(events):
        enqueue(runtime, [track(i)])
        time.sleep(0.002)
    draining.join(timeout=30)
    return reads


def test_events_arriving_one_by_one_are_read_together_while_a_partial_batch_waits(
    redis_url, key_prefix, stub
):
    runtime = make_runtime(
        redis_url, key_prefix, stub, PUSHWOOSH_BATCH_FLUSH_DELAY_S="1", DRAIN_SLICE_S="1.5"
    )
    naps: list[float] = []
    drainer = ShardDrainer(runtime, 0, sleep=lambda s: naps.append(s) or time.sleep(s))
    reads = _trickle(runtime, drainer, 100)
    assert sent_indexes(stub.snapshot()) == list(range(100))  # all of them, in order
    assert sum(reads) == 100
    # A step per read: about one per 20 ms gathered, not one per event.
    assert len(reads) <= 40, reads
    assert naps and max(naps) <= 0.02


def test_with_no_flush_delay_reads_are_not_delayed(redis_url, key_prefix, stub):
    runtime = make_runtime(
        redis_url, key_prefix, stub, PUSHWOOSH_BATCH_FLUSH_DELAY_S="0", DRAIN_SLICE_S="1"
    )
    naps: list[float] = []
    drainer = ShardDrainer(runtime, 0, sleep=lambda s: naps.append(s) or time.sleep(s))
    _trickle(runtime, drainer, 30)
    assert sorted(sent_indexes(stub.snapshot())) == list(range(30))
    assert naps == []
