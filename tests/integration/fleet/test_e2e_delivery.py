"""Delivery failures with real worker processes: 429 with Retry-After, a poisoned batch, wrong
credentials, and a dead-letter replay through the command line.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from config.redis_keys import RedisKeys
from tests.support.harness import FleetProcesses, cli, fleet_env, running
from tests.support.pushwoosh_stub import PushwooshStub, RecordedRequest, Reply
from tests.support.traffic import delivered_ids, post_batches, tracks
from worker.dlq import DeadLetterFilter, DeadLetterQueue


def now_ms() -> int:
    return int(time.time() * 1000)


pytestmark = pytest.mark.integration


@pytest.fixture
def fleet(
    redis_url: str, key_prefix: str, stub: PushwooshStub, tmp_path: Path
) -> Iterator[FleetProcesses]:
    env = fleet_env(redis_url, key_prefix, stub.url, PUSHWOOSH_ENABLE_BATCHING="true",
                    PUSHWOOSH_BATCH_FLUSH_DELAY_S="0.2", RETRY_BASE_DELAY_S="0.2",
                    AUTH_FAILURE_PAUSE_S="30")  # fmt: skip
    with running(env, tmp_path) as processes:
        yield processes


def test_429_with_retry_after_is_not_retried_sooner(fleet, stub: PushwooshStub) -> None:
    stub.respond_with(Reply(429, "", headers={"Retry-After": "2"}))
    assert fleet.ingest_url
    post_batches(fleet.ingest_url, tracks(5))
    first, second = stub.wait_for(lambda got: len(got) >= 2, timeout_s=30)[:2]
    assert first.status == 429 and second.status == 200
    assert second.received_at - first.received_at >= 2.0
    assert sorted(delivered_ids(stub)) == [f"m-{i:06d}" for i in range(5)]


def test_one_bad_event_in_a_batch_of_100(
    fleet, stub: PushwooshStub, redis_client, key_prefix
) -> None:
    def reject_event_42(request: RecordedRequest) -> Reply | None:
        if any(e["attributes"]["i"] == 42 for e in request.json["events"]):
            return Reply(400, {"action": "post event", "status": "failure",
                               "error": {"message": "event 42 cannot be decoded"}})  # fmt: skip
        return None

    stub.set_handler(reject_event_42)
    assert fleet.ingest_url
    post_batches(fleet.ingest_url, tracks(100))
    queue = DeadLetterQueue(redis_client, RedisKeys(key_prefix, "default"), 1)
    stub.wait_for(lambda got: len(delivered_ids(stub)) >= 99 and queue.count() >= 1, timeout_s=30)
    assert sorted(delivered_ids(stub)) == [f"m-{i:06d}" for i in range(100) if i != 42]
    (letter,) = queue.iter(DeadLetterFilter(), now_ms())
    assert letter.message_ids == ["m-000042"] and letter.status == 400
    assert "event 42 cannot be decoded" in letter.reply


def test_401_is_dead_lettered_after_one_attempt_and_not_hammered(
    fleet, stub: PushwooshStub, redis_client, key_prefix
) -> None:
    stub.set_default(Reply(401, {"message": "unauthorized"}))
    assert fleet.ingest_url
    post_batches(fleet.ingest_url, tracks(300))
    queue = DeadLetterQueue(redis_client, RedisKeys(key_prefix, "default"), 1)
    stub.wait_for(lambda got: queue.count() >= 1, timeout_s=30)
    time.sleep(3)
    # one request, not one per batch: the others wait out the pause
    assert len(stub.snapshot()) == 1
    assert [letter.status for letter in queue.iter(DeadLetterFilter(), now_ms())] == [401]


def test_dlq_replay_delivers_and_a_second_replay_sends_nothing(
    fleet, stub: PushwooshStub, redis_client, key_prefix, redis_url
) -> None:
    stub.respond_with(Reply(400, {"message": "temporarily refused"}))
    assert fleet.ingest_url
    post_batches(fleet.ingest_url, tracks(1))
    queue = DeadLetterQueue(redis_client, RedisKeys(key_prefix, "default"), 1)
    stub.wait_for(lambda got: queue.count() == 1, timeout_s=30)
    env = {"REDIS_URL": redis_url, "REDIS_KEY_PREFIX": key_prefix}
    assert "replayed 1 entry" in cli("dlq", "replay", **env).stdout
    stub.wait_for(lambda got: len(delivered_ids(stub)) == 1, timeout_s=30)
    assert cli("dlq", "replay", **env).stdout.strip() == "nothing to replay"
    time.sleep(1.5)
    assert delivered_ids(stub) == ["m-000000"] and len(stub.snapshot()) == 2
