"""Events that cannot be mapped are dead-lettered one by one; they never stop a shard.

Each poison event sits between two good ones, in one shard, through real ingest, a real worker and
the Pushwoosh stand-in: the good ones are delivered exactly once, the poison ones end in the
dead-letter queue with their reason, and nothing is sent twice.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import redis
import requests
import yaml

from config.redis_keys import RedisKeys
from tests.support.harness import WRITE_KEY, FleetProcesses, fleet_env
from tests.support.pushwoosh_stub import PushwooshStub

pytestmark = pytest.mark.integration

HUGE_INTEGER = int("9" * 400)

MAPPINGS = {
    "mappings": [
        {
            "name": "Profiles",
            "action": "updateUserProfile",
            "trigger": 'type = "identify"',
            "defaults": True,
            "fields": {
                "custom_attributes": {"plan": {"@path": "$.traits.plan"}},
                "current_location": {
                    "latitude": {
                        "@if": {
                            "exists": {"@path": "$.traits.lat"},
                            "then": {
                                "@json": {"mode": "decode", "value": {"@path": "$.traits.lat"}}
                            },
                            "else": {"@path": "$.context.location.latitude"},
                        }
                    },
                    "longitude": {"@path": "$.context.location.longitude"},
                },
            },
        },
        {
            "name": "Orders with their own time",
            "action": "trackEvent",
            "trigger": 'type = "track"',
            "defaults": True,
            "fields": {"timestamp": {"@path": "$.properties.when"}},
        },
    ]
}


def _identify(message_id: str, **location: object) -> dict[str, object]:
    return {
        "type": "identify",
        "userId": "u1",
        "messageId": message_id,
        "traits": {"plan": message_id},
        "context": {"location": {"city": "Berlin", **location}},
    }


def _track(message_id: str, when: str) -> dict[str, object]:
    return {
        "type": "track",
        "event": "Order Completed",
        "userId": "u1",
        "messageId": message_id,
        "properties": {"when": when},
    }


def test_poison_events_are_dead_lettered_and_the_good_ones_around_them_delivered_once(
    redis_url: str, key_prefix: str, stub: PushwooshStub, tmp_path: Path
) -> None:
    # Given a fleet whose mappings read a timestamp and a latitude from the event's own fields
    path = tmp_path / "mappings.yaml"
    path.write_text(yaml.safe_dump(MAPPINGS))
    env = fleet_env(redis_url, key_prefix, stub.url, PUSHWOOSH_MAPPINGS_FILE=str(path))
    fleet = FleetProcesses(env, tmp_path)
    beyond_double = {**_identify("poison-json"), "traits": {"plan": "x", "lat": "1e400"}}
    # 1e400 and a 400-digit integer are valid JSON; the text is posted as is.
    body = (
        json.dumps(
            {
                "batch": [
                    _identify("good-1", latitude=52.5),
                    _identify("huge-int", latitude="HUGE"),
                    _identify("good-2", latitude=1.0),
                    _identify("one-e-400", latitude="LAT"),
                    _identify("good-3", longitude=13.4),
                    _track("poison-far-future", "9e2000000"),
                    beyond_double,
                    _track("good-4", "2024-05-01T12:05:00.000Z"),
                ]
            }
        )
        .replace('"LAT"', "1e400")
        .replace('"HUGE"', "9" * 400)
    )
    try:
        url = fleet.start_ingest()
        fleet.start_worker(concurrency=1)
        # When the batch arrives
        response = requests.post(
            f"{url}/v1/batch",
            data=body,
            headers={"Content-Type": "application/json"},
            auth=(WRITE_KEY, ""),
            timeout=10,
        )
        assert response.status_code == 200, response.text
        # Then every good event is delivered, in order
        stub.wait_for(lambda got: len(got) >= 6, timeout_s=30)
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        keys = RedisKeys(key_prefix, "default")
        dlq = keys.shard(0).dlq
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and client.xlen(dlq) < 2:
            time.sleep(0.1)
        time.sleep(1.5)  # long enough for a stalled drain to resend what it read
        got = stub.snapshot()
        profiles = [r.json for r in got if r.path.endswith("track-user")]
        assert [p["attributes"]["plan"] for p in profiles] == [
            "good-1", "huge-int", "good-2", "one-e-400", "good-3"
        ]  # fmt: skip
        # A number beyond a double's range reads as JavaScript reads it, Infinity, which JSON
        # writes as null: stored so at ingest, as Segment would hold it, and sent without it.
        by_plan = {p["attributes"]["plan"]: p for p in profiles}
        assert "current_location" not in by_plan["huge-int"]
        assert "current_location" not in by_plan["one-e-400"]
        tracks = [e for r in got if r.path.endswith("post-events") for e in r.json["events"]]
        assert [e["timestamp"] for e in tracks] == ["2024-05-01T12:05:00.000Z"]
        # And the events no mapping can send are dead letters with their reasons, nothing else
        letters = [json.loads(f["d"]) for _, f in client.xrange(dlq)]
        by_id = {letter["message_ids"][0]: letter for letter in letters}
        assert sorted(by_id) == ["poison-far-future", "poison-json"]
        assert "is not a date" in by_id["poison-far-future"]["reason"]
        assert "out of range" in by_id["poison-json"]["reason"]
        assert all(letter["kind"] == "rejected" for letter in letters)
        # And the shard is empty: nothing left pending to be re-sent
        assert client.xlen(keys.stream(0)) == 0
    finally:
        fleet.stop_all()
