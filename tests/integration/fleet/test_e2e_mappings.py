"""Custom mappings with real processes: several mappings per event, disabled ones, and a bad
file that stops the fleet at start-up instead of failing per event.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
import requests
import yaml

from tests.support.harness import CLI, WRITE_KEY, FleetProcesses, fleet_env
from tests.support.pushwoosh_stub import PushwooshStub

pytestmark = pytest.mark.integration

MAPPINGS = {
    "mappings": [
        {
            "name": "Every track",
            "action": "trackEvent",
            "trigger": 'type = "track"',
            "defaults": True,
            "fields": {"enable_batching": False},
        },
        {
            "name": "VIP purchases",
            "action": "trackEvent",
            "trigger": 'type = "track" and event = "Order Completed" and properties.total > 100',
            "defaults": True,
            "fields": {"name": "VIP Order", "properties": {"@path": "$.properties"}},
        },
        {
            "name": "Plan as a profile attribute",
            "action": "updateUserProfile",
            "trigger": 'type = "track" and event = "Order Completed"',
            "enabled": False,
            "fields": {"custom_attributes": {"plan": {"@path": "$.properties.plan"}}},
        },
    ]
}


def test_two_mappings_on_one_event_both_deliver_and_a_disabled_one_does_not(
    redis_url: str, key_prefix: str, stub: PushwooshStub, tmp_path: Path
) -> None:
    # Given three mappings, one disabled
    path = tmp_path / "mappings.yaml"
    path.write_text(yaml.safe_dump(MAPPINGS))
    fleet = FleetProcesses(
        fleet_env(redis_url, key_prefix, stub.url, PUSHWOOSH_MAPPINGS_FILE=str(path)), tmp_path
    )
    try:
        url = fleet.start_ingest()
        fleet.start_worker(concurrency=1)
        # When a big order and a small one arrive
        events = [
            {"type": "track", "event": "Order Completed", "userId": "u1", "messageId": "big",
             "timestamp": "2024-05-01T12:05:00.000Z", "properties": {"total": 150, "plan": "pro"}},
            {"type": "track", "event": "Order Completed", "userId": "u2", "messageId": "small",
             "timestamp": "2024-05-01T12:06:00.000Z", "properties": {"total": 20, "plan": "free"}},
        ]  # fmt: skip
        response = requests.post(
            f"{url}/v1/batch", json={"batch": events}, auth=(WRITE_KEY, ""), timeout=10
        )
        assert response.status_code == 200
        # Then the big one is sent twice (by both mappings), the small one once, no profile update
        got = stub.wait_for(lambda got: len(got) >= 3, timeout_s=30)
        time.sleep(1.0)
        got = stub.snapshot()
        names = sorted((e["user_id"], e["name"]) for r in got for e in json.loads(r.body)["events"])
        assert names == [("u1", "Order Completed"), ("u1", "VIP Order"), ("u2", "Order Completed")]
        assert all(r.path.endswith("post-events") for r in got)
    finally:
        fleet.stop_all()


def test_a_51_mapping_file_stops_the_worker_and_ingest_at_start_up(
    redis_url: str, key_prefix: str, tmp_path: Path
) -> None:
    path = tmp_path / "too-many.json"
    many = [
        {"name": f"m{i}", "action": "trackEvent", "trigger": 'type = "track"'} for i in range(51)
    ]
    path.write_text(json.dumps({"mappings": many}))
    env = fleet_env(redis_url, key_prefix, "http://127.0.0.1:9", PUSHWOOSH_MAPPINGS_FILE=str(path))
    fleet = FleetProcesses(env, tmp_path)
    try:
        worker = fleet.start_worker(concurrency=1)
        assert worker.wait(timeout=60) != 0
        assert "50" in fleet.logs("worker") and "mappings" in fleet.logs("worker")
        with pytest.raises(RuntimeError, match="ingest exited"):
            fleet.start_ingest()
        assert "50" in fleet.logs("ingest")
    finally:
        fleet.stop_all()
    check = subprocess.run(
        [CLI, "check-config"], env=env, capture_output=True, text=True, timeout=60
    )
    assert check.returncode == 2 and "50" in check.stdout
