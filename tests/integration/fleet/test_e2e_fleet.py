"""The fleet end to end, all real: Redis, the gunicorn ingest server, a Celery worker process and
the recording Pushwoosh stand-in. Events go in over HTTP; the exact Pushwoosh requests come out.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support.harness import ADMIN_KEY, API_KEY, APP_CODE, WRITE_KEY, FleetProcesses, fleet_env
from tests.support.pushwoosh_stub import PushwooshStub

pytestmark = pytest.mark.integration

IDENTIFY = {
    "type": "identify",
    "messageId": "m-identify",
    "userId": "user-123",
    "traits": {"email": "jane@example.com", "name": "Jane Doe", "plan": "premium"},
    "context": {
        "app": {"version": "2.3.1"},
        "device": {"id": "D1", "model": "iPhone12,1", "type": "ios", "token": "ff15"},
        "os": {"version": "17.4"},
        "locale": "en-US",
        "location": {"city": "Berlin", "country": "DE", "latitude": 52.52, "longitude": 13.405},
        "timezone": "Europe/Berlin",
        "userAgent": "ShopApp/2.3.1",
    },
}
IDENTIFY_BODY = (
    '{"attributes":{"name":"Jane Doe","plan":"premium"},"user_id":"user-123",'
    '"email":"jane@example.com","app_version":"2.3.1","device_id":"D1",'
    '"device_model":"iPhone12,1","device_platform":"ios","device_token":"ff15",'
    '"language":"en-US","country":"DE","city":"Berlin",'
    '"current_location":{"latitude":52.52,"longitude":13.405},"device_os_version":"17.4",'
    '"timezone":"Europe/Berlin","user_agent":"ShopApp/2.3.1"}'
)
TRACK = {
    "type": "track",
    "messageId": "m-track",
    "event": "Order Completed",
    "userId": "user-123",
    "timestamp": "2024-05-01T12:05:00.000Z",
    "properties": {"total": 59.9},
    "context": {"device": {"id": "D1", "type": "ios"}},
}
TRACK_BODY = (
    '{"events":[{"user_id":"user-123","device_id":"D1","device_platform":"ios",'
    '"app_code":"ABCDE-12345","name":"Order Completed","timestamp":"2024-05-01T12:05:00.000Z",'
    '"attributes":{"total":59.9}}]}'
)
PAGE = {
    "type": "page",
    "messageId": "m-page",
    "name": "Pricing",
    "userId": "user-123",
    "timestamp": "2024-05-01T12:06:00.000Z",
    "properties": {"path": "/pricing"},
}
PAGE_BODY = (
    '{"events":[{"user_id":"user-123","app_code":"ABCDE-12345","name":"Pricing",'
    '"timestamp":"2024-05-01T12:06:00.000Z","attributes":{"path":"/pricing"}}]}'
)
SCREEN = {
    "type": "screen",
    "messageId": "m-screen",
    "name": "Cart",
    "userId": "user-9",
    "timestamp": "2024-05-01T12:07:00.000Z",
}
SCREEN_BODY = (
    '{"events":[{"user_id":"user-9","app_code":"ABCDE-12345","name":"Cart",'
    '"timestamp":"2024-05-01T12:07:00.000Z"}]}'
)
DELETE = {"type": "delete", "messageId": "m-delete", "userId": "user-123"}
DELETE_BODY = '{"external_id":"user-123"}'


def canonical(raw: bytes | str) -> str:
    return json.dumps(json.loads(raw), separators=(",", ":"))


@pytest.fixture
def fleet_factory(
    redis_url: str, key_prefix: str, stub: PushwooshStub, tmp_path: Path
) -> Iterator[object]:
    started: list[FleetProcesses] = []

    def start(worker_concurrency: int = 2, **overrides: str) -> FleetProcesses:
        fleet = FleetProcesses(fleet_env(redis_url, key_prefix, stub.url, **overrides), tmp_path)
        started.append(fleet)
        fleet.start_ingest()
        fleet.start_worker(concurrency=worker_concurrency)
        return fleet

    yield start
    for fleet in started:
        fleet.stop_all()


def post(fleet: FleetProcesses, route: str, body: object) -> requests.Response:
    assert fleet.ingest_url
    # A delete needs the admin key; everything else goes with the public write key.
    key = ADMIN_KEY if isinstance(body, dict) and body.get("type") == "delete" else WRITE_KEY
    return requests.post(f"{fleet.ingest_url}{route}", json=body, auth=(key, ""), timeout=10)


def test_each_event_type_becomes_the_exact_pushwoosh_call(
    fleet_factory, stub: PushwooshStub
) -> None:
    # Given a fleet with the presets and batching off (the preset's default)
    fleet = fleet_factory()
    # When identify, track, page, screen and delete events arrive over HTTP, one per request
    for route, event in (
        ("/v1/identify", IDENTIFY),
        ("/v1/track", TRACK),
        ("/v1/page", PAGE),
        ("/v1/screen", SCREEN),
        ("/webhook", DELETE),
    ):
        response = post(fleet, route, event)
        assert response.status_code == 200, response.text
        assert response.json() == {"success": True}
    # Then Pushwoosh receives exactly one call per event, byte for byte as the contract says
    try:
        received = stub.wait_for(lambda got: len(got) >= 5, timeout_s=30)
    except AssertionError:
        raise AssertionError(fleet.logs("worker")) from None
    by_path: dict[str, list[str]] = {}
    for request in received:
        by_path.setdefault(request.path, []).append(canonical(request.body))
        assert request.method == "POST"
        assert request.headers["Authorization"] == f"Token {API_KEY}"
        assert request.headers["X-PW-Appcode"] == APP_CODE
        assert request.headers["Content-Type"] == "application/json"
        assert request.headers["User-Agent"].startswith("pushwoosh-fleet/")
    assert by_path == {
        "/integration-segment/v1/track-user": [IDENTIFY_BODY],
        "/integration-segment/v1/post-events": [TRACK_BODY, PAGE_BODY, SCREEN_BODY],
        "/integration-segment/v1/delete-user": [DELETE_BODY],
    }
    # key order matters for readable diffs: the body arrives in the documented order
    track_user = next(r for r in received if r.path.endswith("track-user"))
    assert track_user.body.decode() == IDENTIFY_BODY


def _tracks(count: int) -> list[dict[str, object]]:
    return [
        {
            "type": "track",
            "messageId": f"m-{i:04d}",
            "event": "Item Viewed",
            "userId": f"user-{i % 7}",
            "timestamp": "2024-05-01T12:05:00.000Z",
            "properties": {"i": i},
        }
        for i in range(count)
    ]


def test_batching_on_packs_250_tracks_into_100_100_50_in_order(
    fleet_factory, stub: PushwooshStub
) -> None:
    # Given a fleet with batching on
    fleet = fleet_factory(PUSHWOOSH_ENABLE_BATCHING="true")
    events = _tracks(250)
    # When 250 track events are posted quickly
    for start in range(0, 250, 50):
        assert post(fleet, "/v1/batch", {"batch": events[start : start + 50]}).status_code == 200
    # Then they arrive as exactly three requests of 100, 100 and 50 events, in order
    received = stub.wait_for(
        lambda got: sum(len(r.json["events"]) for r in got) >= 250, timeout_s=30
    )
    assert [len(r.json["events"]) for r in received] == [100, 100, 50]
    names = [e["attributes"]["i"] for r in received for e in r.json["events"]]
    assert names == list(range(250))
    assert all(e["app_code"] == APP_CODE for r in received for e in r.json["events"])


def test_batching_off_sends_one_request_per_track(fleet_factory, stub: PushwooshStub) -> None:
    fleet = fleet_factory(PUSHWOOSH_ENABLE_BATCHING="false")
    events = _tracks(250)
    for start in range(0, 250, 125):
        assert post(fleet, "/v1/batch", {"batch": events[start : start + 125]}).status_code == 200
    received = stub.wait_for(lambda got: len(got) >= 250, timeout_s=60)
    assert len(received) == 250
    assert all(len(r.json["events"]) == 1 for r in received)
    assert sorted(r.json["events"][0]["attributes"]["i"] for r in received) == list(range(250))
