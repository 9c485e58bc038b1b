"""Real senders against the real fleet: Segment's own Python library, and a Redis that goes away
in the middle of things. Every event is counted at the Pushwoosh stand-in.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from segment.analytics.client import Client

from config.redis_keys import RedisKeys
from fleet.embedded_redis import EmbeddedRedis
from tests.support.harness import WRITE_KEY, FleetProcesses, fleet_env, running
from tests.support.pushwoosh_stub import PushwooshStub

pytestmark = pytest.mark.integration


@pytest.fixture
def fleet(
    redis_url: str, key_prefix: str, stub: PushwooshStub, tmp_path: Path
) -> Iterator[FleetProcesses]:
    env = fleet_env(redis_url, key_prefix, stub.url, PUSHWOOSH_ENABLE_BATCHING="true",
                    PUSHWOOSH_BATCH_FLUSH_DELAY_S="0.2")  # fmt: skip
    with running(env, tmp_path, web_workers=2) as processes:
        yield processes


def seqs_received(stub: PushwooshStub) -> list[int]:
    seen = []
    for request in stub.snapshot():
        body = request.json
        if request.path.endswith("post-events"):
            seen.extend(e["attributes"]["seq"] for e in body["events"])
        elif request.path.endswith("track-user"):
            seen.append(body["attributes"]["seq"])
    return seen


@pytest.mark.parametrize("use_gzip", [False, True], ids=["plain", "gzip"])
def test_segment_python_library_delivers_1000_mixed_events(
    fleet: FleetProcesses, stub: PushwooshStub, use_gzip: bool
) -> None:
    errors: list[Any] = []
    # Given Segment's own Python library pointed at the fleet with host=
    client = Client(
        WRITE_KEY,
        host=fleet.ingest_url,
        gzip=use_gzip,
        upload_size=100,
        on_error=lambda error, batch: errors.append(error),
        max_retries=3,
    )
    message_ids: dict[int, str] = {}
    # When it sends 1,000 identify/track/page/screen calls and flushes
    for seq in range(1000):
        user = f"user-{seq % 37}"
        kind = seq % 4
        if kind == 0:
            _, msg = client.identify(user, {"seq": seq, "plan": "pro"})
        elif kind == 1:
            _, msg = client.track(user, "Order Completed", {"seq": seq, "total": 9.5})
        elif kind == 2:
            _, msg = client.page(user, name="Pricing", properties={"seq": seq})
        else:
            _, msg = client.screen(user, name="Cart", properties={"seq": seq})
        message_ids[seq] = msg["messageId"]
    client.flush()
    client.join()
    assert errors == []
    # Then every one of them arrives at Pushwoosh, once
    stub.wait_for(lambda got: len(seqs_received(stub)) >= 1000, timeout_s=60)
    time.sleep(0.5)
    received = seqs_received(stub)
    assert sorted(received) == list(range(1000))
    assert len(set(message_ids.values())) == 1000


def test_redis_stopped_during_requests_is_503_then_the_same_request_succeeds(
    tmp_path: Path, key_prefix: str
) -> None:
    server = EmbeddedRedis(tmp_path / "redis", appendonly=False).start()
    fleet = FleetProcesses(fleet_env(server.url, key_prefix, "http://127.0.0.1:9"), tmp_path)
    try:
        url = fleet.start_ingest()
        body = {"batch": [{"type": "track", "event": "E", "userId": f"u{i}"} for i in range(50)]}
        auth = (WRITE_KEY, "")
        assert requests.post(f"{url}/v1/batch", json=body, auth=auth, timeout=10).status_code == 200
        # Given Redis goes away
        server.stop()
        # When a request arrives, it gets 503 with Retry-After (Segment retries those)
        response = requests.post(f"{url}/v1/batch", json=body, auth=auth, timeout=30)
        assert response.status_code == 503, response.text
        assert response.json()["code"] == "store_unavailable"
        assert int(response.headers["Retry-After"]) > 0
        assert requests.get(f"{url}/readyz", timeout=10).status_code == 503
        # Then, once Redis is back (empty: it kept nothing), the same request is stored whole
        server.start()
        retried = requests.post(f"{url}/v1/batch", json=body, auth=auth, timeout=30)
        assert retried.status_code == 200, retried.text
        client = redis.Redis.from_url(server.url)
        assert client.xlen(RedisKeys(key_prefix, "default").stream(0)) == 50
    finally:
        fleet.stop_all()
        server.stop()
