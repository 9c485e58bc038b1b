"""A Redis near its maxmemory: ingest refuses new events (503, Retry-After) before Redis would,
so the workers keep the room they need to lease, settle and deliver; nothing accepted is lost."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis
import requests

from fleet.embedded_redis import EmbeddedRedis
from tests.support.harness import WRITE_KEY, FleetProcesses, fleet_env
from tests.support.pushwoosh_stub import PushwooshStub, Reply
from tests.support.traffic import tracks, wait_all_accounted

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MAXMEMORY = 64 * 1024 * 1024


def test_ingest_refuses_before_redis_is_full_and_delivery_goes_on(
    key_prefix: str, stub: PushwooshStub, tmp_path: Path
) -> None:
    # Given a Redis of 64 MB that does not evict, and a slow Pushwoosh
    server = EmbeddedRedis(
        tmp_path / "redis",
        appendonly=False,
        extra_args=["--maxmemory", str(MAXMEMORY), "--maxmemory-policy", "noeviction"],
    ).start()
    stub.set_default(Reply(200, delay_s=0.3))
    env = fleet_env(
        server.url, key_prefix, stub.url,
        PUSHWOOSH_ENABLE_BATCHING="true", PUSHWOOSH_BATCH_FLUSH_DELAY_S="0.1",
        TRACE_WINDOW_S="0", REDIS_MEMORY_HEADROOM="0.2",
    )  # fmt: skip
    fleet = FleetProcesses(env, tmp_path)
    client = redis.Redis(port=server.port, decode_responses=True)
    try:
        url = fleet.start_ingest()
        fleet.start_worker(concurrency=1)
        # When events arrive faster than they go out, until ingest refuses them
        accepted: list[str] = []
        refusals = []
        peak = 0
        for start in range(0, 20_000, 50):  # 50 events of 6 KB: under the 500 KB request limit
            batch = tracks(50, start, padding="x" * 6000)
            response = requests.post(
                f"{url}/v1/batch", json={"batch": batch}, auth=(WRITE_KEY, ""), timeout=10
            )
            peak = max(peak, int(client.info("memory")["used_memory"]))
            if response.status_code == 200:
                accepted += [str(e["messageId"]) for e in batch]
            else:
                refusals.append(response)
                if len(refusals) >= 5:
                    break
        # Then the refusals are 503s with Retry-After, saying why, before Redis was full
        assert refusals, "ingest never refused"
        assert {r.status_code for r in refusals} == {503}
        assert all(int(r.headers["Retry-After"]) > 0 for r in refusals)
        assert "nearly full" in refusals[0].json()["message"]
        assert peak < MAXMEMORY
        # And with Pushwoosh fast again, every accepted event is delivered
        stub.set_default(Reply(200))
        counts, dead = wait_all_accounted(stub, client, key_prefix, accepted, timeout_s=120)
        assert dead == [] and set(counts) == set(accepted)
        assert "OOM" not in fleet.logs("worker")
    finally:
        fleet.stop_all()
        server.stop()


def test_the_fleet_warns_when_redis_may_evict_keys(
    key_prefix: str, stub: PushwooshStub, tmp_path: Path
) -> None:
    server = EmbeddedRedis(
        tmp_path / "redis", appendonly=False, extra_args=["--maxmemory-policy", "allkeys-lru"]
    ).start()
    fleet = FleetProcesses(fleet_env(server.url, key_prefix, stub.url), tmp_path)
    try:
        fleet.start_ingest()
        fleet.start_worker(concurrency=1)
        deadline = time.monotonic() + 30
        while "maxmemory-policy" not in fleet.logs("worker") and time.monotonic() < deadline:
            time.sleep(0.2)
        for name in ("ingest", "worker"):
            assert "'allkeys-lru'" in fleet.logs(name) and "noeviction" in fleet.logs(name)
    finally:
        fleet.stop_all()
        server.stop()
