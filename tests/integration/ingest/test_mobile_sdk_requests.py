"""Requests recorded from the mobile SDKs' source (tests/data/segment_sdk_requests.json: the
SDK, its version and commit, and the files each fact was read from), posted byte for byte to
real gunicorn ingest: each is answered 200, stored whole, and delivered by a real worker to the
Pushwoosh stand-in.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

from config.redis_keys import RedisKeys
from tests.support.harness import ROOT, WRITE_KEY, FleetProcesses, fleet_env, running
from tests.support.pushwoosh_stub import PushwooshStub

pytestmark = pytest.mark.integration

RECORDED = json.loads((ROOT / "tests/data/segment_sdk_requests.json").read_text())["requests"]
FIRST_UPLOADS = [r for r in RECORDED if "retry_of" not in r]
RETRIES = [r for r in RECORDED if "retry_of" in r]


def post(url: str, recorded: dict[str, Any]) -> requests.Response:
    """Send a recorded request as the SDK does: same path, headers, framing and encoding."""
    body = recorded["body_text"].replace("<writeKey>", WRITE_KEY).encode()
    if recorded["gzip"]:
        body = gzip.compress(body)
    data: Any = body
    if recorded["chunked"]:
        # no Content-Length: requests sends a generator with Transfer-Encoding: chunked
        data = (body[i : i + 512] for i in range(0, len(body), 512))
    return requests.post(url + recorded["path"], data=data, headers=recorded["headers"], timeout=10)


def sent_batch(recorded: dict[str, Any]) -> dict[str, Any]:
    batch: dict[str, Any] = json.loads(recorded["body_text"])
    return batch


@pytest.fixture
def ingest(
    redis_url: str, key_prefix: str, stub: PushwooshStub, tmp_path: Path
) -> Iterator[FleetProcesses]:
    """Ingest alone: the test reads what was stored before it starts a worker to deliver it."""
    env = fleet_env(redis_url, key_prefix, stub.url, PUSHWOOSH_ENABLE_BATCHING="true",
                    PUSHWOOSH_BATCH_FLUSH_DELAY_S="0.2")  # fmt: skip
    with running(env, tmp_path, worker_concurrency=None) as processes:
        yield processes


def stored(redis_url: str, key_prefix: str) -> list[dict[str, Any]]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    entries = client.xrange(RedisKeys(key_prefix, "default").stream(0))
    return [json.loads(fields["e"]) for _, fields in entries]


@pytest.mark.parametrize("recorded", FIRST_UPLOADS, ids=[r["sdk"] for r in FIRST_UPLOADS])
def test_a_recorded_upload_is_stored_whole_and_delivered(
    ingest: FleetProcesses,
    stub: PushwooshStub,
    redis_url: str,
    key_prefix: str,
    recorded: dict[str, Any],
) -> None:
    assert ingest.ingest_url
    sent = sent_batch(recorded)["batch"]
    # When the SDK uploads its batch file to /v1/b
    response = post(ingest.ingest_url, recorded)
    # Then it gets exactly 200 {"success": true}, which every SDK takes as delivered
    assert response.status_code == 200, response.text
    assert response.json() == {"success": True}
    # and every event is stored as sent, with the batch's sentAt and without the write key
    events = {e["messageId"]: e for e in stored(redis_url, key_prefix)}
    assert sorted(events) == sorted(e["messageId"] for e in sent)
    for original in sent:
        kept = events[original["messageId"]]
        assert "writeKey" not in kept
        assert kept["sentAt"] == "2024-05-01T12:00:05.001Z"
        assert kept["timestamp"] == original["timestamp"]
        assert kept["_metadata"] == original["_metadata"]
        assert kept["context"] == original["context"]
    # When a worker runs, the identify becomes a profile and the track and screen events
    ingest.start_worker(concurrency=1)
    user = sent[0]["userId"]
    stub.wait_for(lambda got: len(delivered(stub, user)[1]) >= 2 and delivered(stub, user)[0])
    profiles, tracked = delivered(stub, user)
    device = sent[0]["context"]["device"]
    assert [p["email"] for p in profiles] == [f"{user}@example.com"]
    assert profiles[0].get("device_token") == device.get("token")
    assert sorted(e["name"] for e in tracked) == ["Cart", "Order Completed"]


def delivered(stub: PushwooshStub, user: str) -> tuple[list[Any], list[Any]]:
    profiles, events = [], []
    for request in stub.snapshot():
        if request.path.endswith("track-user") and request.json["user_id"] == user:
            profiles.append(request.json)
        elif request.path.endswith("post-events"):
            events.extend(e for e in request.json["events"] if e["user_id"] == user)
    return profiles, events


@pytest.mark.parametrize("retry", RETRIES, ids=[r["sdk"] for r in RETRIES])
def test_a_retried_upload_is_accepted_and_stored_once(
    ingest: FleetProcesses, redis_url: str, key_prefix: str, retry: dict[str, Any]
) -> None:
    assert ingest.ingest_url
    first = RECORDED[retry["retry_of"]]
    # Given an upload the SDK believes failed (its reply was lost) though ingest stored it
    assert post(ingest.ingest_url, first).status_code == 200
    # When the SDK sends it again, with X-Retry-Count
    response = post(ingest.ingest_url, retry)
    # Then the retry is answered 200, so the SDK drops its copy, and nothing is stored twice
    assert response.status_code == 200, response.text
    ids = [e["messageId"] for e in stored(redis_url, key_prefix)]
    assert sorted(ids) == sorted(e["messageId"] for e in sent_batch(first)["batch"])
