"""Delivery that no reply, clock or retry can break, with real processes, Redis and the stand-in:
a trickled reply cannot make two tasks send one shard, retries are never sent twice, a user's
calls keep their order through a retry, and every event ends delivered, skipped or dead-lettered.
"""

from __future__ import annotations

import collections
import itertools
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

from config.redis_keys import RedisKeys, shard_of
from tests.support.harness import WRITE_KEY, FleetProcesses, cli, fleet_env
from tests.support.pushwoosh_stub import PushwooshStub, RecordedRequest, Reply
from tests.support.traffic import delivered_ids, post_batches, tracks, wait_all_accounted

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _shard_of_request(request: RecordedRequest, shards: int) -> int:
    events = request.json.get("events") or [request.json]
    (shard,) = {shard_of({"userId": e.get("user_id")}, shards) for e in events}
    return shard


def test_a_trickled_reply_never_lets_two_tasks_send_one_shard(
    redis_url: str, key_prefix: str, stub: PushwooshStub, tmp_path: Path
) -> None:
    # Given a stand-in whose first reply comes a byte every 0.2 s (longer than the lease), and
    # two worker processes competing for two shards whose lease is 4 s
    stub.respond_with(Reply(200, trickle_s=0.2))
    env = fleet_env(
        redis_url, key_prefix, stub.url,
        PUSHWOOSH_SHARDS="2", PUSHWOOSH_ENABLE_BATCHING="true",
        PUSHWOOSH_BATCH_FLUSH_DELAY_S="0.2", DRAIN_LEASE_S="4", PUSHWOOSH_TIMEOUT_S="3.5",
        DRAIN_SLICE_S="2", RETRY_BASE_DELAY_S="0.2", RETRY_MAX_DELAY_S="1",
    )  # fmt: skip
    fleet = FleetProcesses(env, tmp_path)
    try:
        url = fleet.start_ingest()
        fleet.start_worker(concurrency=2)
        fleet.start_worker(concurrency=2)
        # When 600 events arrive
        accepted = post_batches(url, tracks(600), 100)
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        wait_all_accounted(stub, client, key_prefix, accepted, timeout_s=90)
    finally:
        fleet.stop_all()
    # Then no two requests of one shard were ever in flight at once
    by_shard: dict[int, list[tuple[float, float]]] = collections.defaultdict(list)
    for request in stub.snapshot():
        end = request.finished_at or time.time()
        by_shard[_shard_of_request(request, 2)].append((request.received_at, end))
    for shard, spans in by_shard.items():
        spans.sort()
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert start >= end - 0.05, f"shard {shard}: a send began before another ended"
    # and the trickled request is the only batch Pushwoosh got twice
    counts = collections.Counter(delivered_ids(stub))
    assert set(counts) >= set(accepted)
    assert sum(n - 1 for n in counts.values()) <= 100


def test_after_an_outage_no_retry_is_delivered_twice_across_shards(
    redis_url: str, key_prefix: str, stub: PushwooshStub, tmp_path: Path
) -> None:
    # Given two shards, two workers and a Pushwoosh that fails for four seconds
    env = fleet_env(
        redis_url, key_prefix, stub.url,
        PUSHWOOSH_SHARDS="2", PUSHWOOSH_ENABLE_BATCHING="true",
        PUSHWOOSH_BATCH_FLUSH_DELAY_S="0.1", RETRY_BASE_DELAY_S="0.2", RETRY_MAX_DELAY_S="1",
    )  # fmt: skip
    fleet = FleetProcesses(env, tmp_path)
    outage_ends = time.time() + 4

    def answer(request: RecordedRequest) -> Reply | None:
        return Reply(503, "down") if time.time() < outage_ends else None

    stub.set_handler(answer)
    try:
        url = fleet.start_ingest()
        fleet.start_worker(concurrency=2)
        fleet.start_worker(concurrency=2)
        # When events keep arriving through the outage
        accepted: list[str] = []
        for start in range(0, 1000, 100):
            accepted += post_batches(url, tracks(100, start), 50)
            time.sleep(0.4)
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        counts, dead = wait_all_accounted(stub, client, key_prefix, accepted, timeout_s=90)
    finally:
        fleet.stop_all()
    # Then every event was delivered exactly once
    assert dead == []
    assert {n for n in counts.values()} == {1}
    assert set(counts) == set(accepted)


def _profile(user: str, version: int) -> dict[str, Any]:
    return {
        "type": "identify",
        "userId": user,
        "messageId": f"{user}-v{version}",
        "traits": {"version": version},
    }


def test_a_users_updates_keep_their_order_through_a_retry(
    redis_url: str, key_prefix: str, stub: PushwooshStub, tmp_path: Path
) -> None:
    # Given a Pushwoosh that answers 503 to the first profile update of user u1
    failed = threading.Event()

    def answer(request: RecordedRequest) -> Reply | None:
        body = request.json
        if body.get("user_id") == "u1" and not failed.is_set():
            failed.set()
            return Reply(503, "busy")
        return None

    stub.set_handler(answer)
    env = fleet_env(redis_url, key_prefix, stub.url, RETRY_BASE_DELAY_S="1", RETRY_MAX_DELAY_S="2")
    fleet = FleetProcesses(env, tmp_path)
    try:
        url = fleet.start_ingest()
        fleet.start_worker(concurrency=1)
        # When eight updates of u1 arrive, among other users' updates
        batch = []
        for version in range(8):
            batch += [_profile("u1", version), _profile(f"other-{version}", 0)]
        response = requests.post(
            f"{url}/v1/batch", json={"batch": batch}, auth=(WRITE_KEY, ""), timeout=10
        )
        assert response.status_code == 200
        stub.wait_for(lambda got: sum(r.status == 200 for r in got) >= 16, timeout_s=60)
    finally:
        fleet.stop_all()
    # Then Pushwoosh got u1's versions in order, and the others' meanwhile
    delivered = [r.json for r in stub.snapshot() if r.status == 200]
    versions = [b["attributes"]["version"] for b in delivered if b.get("user_id") == "u1"]
    assert versions == list(range(8))
    assert sum(1 for b in delivered if b.get("user_id", "").startswith("other-")) == 8


def test_retry_after_of_any_shape_gives_a_bounded_wait_and_status_reads_it(
    redis_url: str, key_prefix: str, stub: PushwooshStub, tmp_path: Path
) -> None:
    # Given replies whose Retry-After is nonsense, huge, negative or a date
    odd = ["inf", "nan", "-5", "1e13", "Wed, 21 Oct 2099 07:28:00 GMT", "soon", "99999999999"]
    stub.respond_with(*(Reply(429, "slow down", headers={"Retry-After": v}) for v in odd))
    env = fleet_env(
        redis_url, key_prefix, stub.url, RETRY_BASE_DELAY_S="0.1", RETRY_MAX_DELAY_S="1"
    )
    fleet = FleetProcesses(env, tmp_path)
    try:
        url = fleet.start_ingest()
        fleet.start_worker(concurrency=1)
        started = time.monotonic()
        response = requests.post(
            f"{url}/v1/track",
            json={"userId": "u", "event": "E", "messageId": "odd-1"},
            auth=(WRITE_KEY, ""),
            timeout=10,
        )
        assert response.status_code == 200
        # Then every odd reply costs at most RETRY_MAX_DELAY_S, and the event gets through
        stub.wait_for(lambda got: any(r.status == 200 for r in got), timeout_s=60)
        assert time.monotonic() - started < len(odd) * 1.0 + 10
        done = cli("status", "--json", "--timeout", "0.5", **env)
        assert done.returncode in (0, 1), done.stderr
        assert json.loads(done.stdout)["destinations"][0]["destination"] == "default"
    finally:
        fleet.stop_all()
    keys = RedisKeys(key_prefix, "default")
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    assert client.hgetall(keys.circuit) == {}  # closed again once Pushwoosh took the event
