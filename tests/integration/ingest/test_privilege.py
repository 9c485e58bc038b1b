"""Write keys are public: they cannot delete users, and a signature covers what it signs.

Real gunicorn, a real worker, real Redis and the Pushwoosh stand-in.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
import requests

from config.redis_keys import RedisKeys
from tests.support.harness import WRITE_KEY, FleetProcesses, fleet_env
from tests.support.pushwoosh_stub import PushwooshStub

pytestmark = pytest.mark.integration

ADMIN_KEY = "admin-key-for-gdpr-tooling"
CLI = str(Path(sys.executable).with_name("pushwoosh-fleet"))
SECRET = "webhook-secret"
JSON = {"Content-Type": "application/json"}


def _basic(key: str) -> str:
    return "Basic " + base64.b64encode(f"{key}:".encode()).decode()


def _sign(raw: bytes) -> str:
    return hmac.new(SECRET.encode(), raw, hashlib.sha1).hexdigest()


def _identify(user: str, version: int) -> dict[str, object]:
    return {"type": "identify", "userId": user, "traits": {"v": version}}


DELETE = {"type": "delete", "userId": "victim-1"}


@pytest.fixture
def fleet(redis_url: str, key_prefix: str, stub: PushwooshStub, tmp_path: Path):  # type: ignore[no-untyped-def]
    env = fleet_env(
        redis_url,
        key_prefix,
        stub.url,
        INGEST_ADMIN_KEYS=ADMIN_KEY,
        INGEST_SHARED_SECRET=SECRET,
    )
    processes = FleetProcesses(env, tmp_path)
    processes.start_ingest()
    yield processes
    processes.stop_all()


@pytest.mark.parametrize(
    ("path", "body", "headers"),
    [
        ("/v1/batch", {"batch": [DELETE], "writeKey": WRITE_KEY}, JSON),
        (
            "/v1/batch",
            {"batch": [_identify("u", 1), DELETE]},
            {**JSON, "Authorization": _basic(WRITE_KEY)},
        ),
        ("/webhook", DELETE, {**JSON, "Authorization": f"Bearer {WRITE_KEY}"}),
        ("/webhook", [DELETE], {**JSON, "Authorization": f"Bearer {WRITE_KEY}"}),
    ],
)
def test_a_write_key_cannot_delete_and_nothing_of_the_request_is_stored(
    fleet: FleetProcesses,
    redis_url: str,
    key_prefix: str,
    path: str,
    body: object,
    headers: dict[str, str],
) -> None:
    response = requests.post(f"{fleet.ingest_url}{path}", json=body, headers=headers, timeout=10)
    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"
    client = redis.Redis.from_url(redis_url)
    assert client.xlen(RedisKeys(key_prefix, "default").stream(0)) == 0


def test_a_first_element_signature_cannot_carry_a_delete_or_a_forged_element(
    redis_url: str, key_prefix: str, stub: PushwooshStub, tmp_path: Path
) -> None:
    # Given an operator who opted in to Segment's Webhooks (Actions) batch signatures
    env = fleet_env(
        redis_url, key_prefix, stub.url,
        INGEST_SHARED_SECRET=SECRET, INGEST_SIGNATURE_SCOPE="first-element",
    )  # fmt: skip
    processes = FleetProcesses(env, tmp_path)
    try:
        url = processes.start_ingest()
        signed = _identify("u", 1)
        signature = _sign(json.dumps(signed, separators=(",", ":")).encode())
        # When a captured signed event is re-sent with a delete behind it
        forged = json.dumps([signed, DELETE], separators=(",", ":")).encode()
        response = requests.post(
            f"{url}/webhook", data=forged, headers={**JSON, "X-Signature": signature}, timeout=10
        )
        # Then the delete is refused, and so is the whole request
        assert response.status_code == 403
        client = redis.Redis.from_url(redis_url)
        assert client.xlen(RedisKeys(key_prefix, "default").stream(0)) == 0
        # (In this opted-in mode an ordinary forged element is accepted: the README says so.)
        response = requests.post(
            f"{url}/webhook",
            data=json.dumps([signed, _identify("x", 2)], separators=(",", ":")).encode(),
            headers={**JSON, "X-Signature": signature},
            timeout=10,
        )
        assert response.status_code == 200
    finally:
        processes.stop_all()


@pytest.mark.parametrize("credential", ["admin_key", "signature"])
def test_a_privileged_delete_is_sent_after_that_users_earlier_events(
    fleet: FleetProcesses, stub: PushwooshStub, credential: str
) -> None:
    # Given three profile updates of the victim, queued
    updates = {"batch": [_identify("victim-1", v) for v in range(3)], "writeKey": WRITE_KEY}
    response = requests.post(f"{fleet.ingest_url}/v1/batch", json=updates, timeout=10)
    assert response.status_code == 200
    # When a deletion arrives with a privileged credential
    raw = json.dumps(DELETE).encode()
    if credential == "admin_key":
        headers = {**JSON, "Authorization": f"Bearer {ADMIN_KEY}"}
    else:
        headers = {**JSON, "X-Signature": _sign(raw)}
    response = requests.post(f"{fleet.ingest_url}/webhook", data=raw, headers=headers, timeout=10)
    assert response.status_code == 200
    fleet.start_worker(concurrency=1)
    # Then Pushwoosh gets the three updates, then the deletion
    got = stub.wait_for(lambda got: len(got) >= 4, timeout_s=30)
    time.sleep(0.5)
    got = stub.snapshot()
    assert [r.path.rsplit("/", 1)[-1] for r in got] == ["track-user"] * 3 + ["delete-user"]
    assert [r.json["attributes"]["v"] for r in got[:3]] == [0, 1, 2]
    assert got[3].json == {"external_id": "victim-1"}


def test_delete_user_command_queues_deletions_behind_queued_events(
    redis_url: str, key_prefix: str, stub: PushwooshStub, tmp_path: Path
) -> None:
    # Given a queued profile update for two users
    env = fleet_env(redis_url, key_prefix, stub.url)
    processes = FleetProcesses(env, tmp_path)
    try:
        url = processes.start_ingest()
        batch = {"batch": [_identify("gdpr-1", 1), _identify("gdpr-2", 1)], "writeKey": WRITE_KEY}
        assert requests.post(f"{url}/v1/batch", json=batch, timeout=10).status_code == 200
        # When the operator runs delete-user for both (one on the command line, one in a file)
        ids = tmp_path / "ids.txt"
        ids.write_text("gdpr-2\n\n")
        done = subprocess.run(
            [CLI, "delete-user", "gdpr-1", "--file", str(ids)],
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "queued 2 deletion(s)" in done.stdout
        processes.start_worker(concurrency=1)
        # Then each user's update goes out before their deletion
        stub.wait_for(lambda got: len(got) >= 4, timeout_s=30)
        paths = [(r.path.rsplit("/", 1)[-1], r.json.get("user_id") or r.json.get("external_id"))
                 for r in stub.snapshot()]  # fmt: skip
        for user in ("gdpr-1", "gdpr-2"):
            assert [p for p, u in paths if u == user] == ["track-user", "delete-user"]
    finally:
        processes.stop_all()


def test_delete_user_without_ids_says_so(redis_url: str, key_prefix: str) -> None:
    env = fleet_env(redis_url, key_prefix, "http://127.0.0.1:9")
    done = subprocess.run([CLI, "delete-user"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "no user ids" in done.stderr
