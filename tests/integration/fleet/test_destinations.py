"""Several Pushwoosh apps in one fleet: each write key reaches only its own destination, with its
own credentials; a failing destination does not hold up the others.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml

from fleet.embedded_redis import free_port
from tests.support.destinations import IOS_KEY, WEB_KEY, destinations_file, env_for
from tests.support.harness import FleetProcesses, cli, fleet_env
from tests.support.prometheus import value
from tests.support.pushwoosh_stub import PushwooshStub, Reply


@pytest.fixture
def two_stubs() -> Iterator[tuple[PushwooshStub, PushwooshStub]]:
    ios, web = PushwooshStub().start(), PushwooshStub().start()
    yield ios, web
    ios.stop()
    web.stop()


@pytest.fixture
def fleet(
    redis_url: str, key_prefix: str, two_stubs: tuple[PushwooshStub, PushwooshStub], tmp_path: Path
) -> Iterator[FleetProcesses]:
    ios, web = two_stubs
    path = destinations_file(tmp_path, ios.url, web.url)
    env = fleet_env(redis_url, key_prefix, "http://127.0.0.1:9", **env_for(path),
                    PUSHWOOSH_BATCH_FLUSH_DELAY_S="0.2", RETRY_BASE_DELAY_S="0.5",
                    RETRY_MAX_DELAY_S="2", METRICS_PORT=str(free_port()),
                    WORKER_METRICS_PORT=str(free_port()))  # fmt: skip
    for name in ("PUSHWOOSH_API_KEY", "PUSHWOOSH_APPLICATION_CODE", "INGEST_WRITE_KEYS"):
        env.pop(name)
    processes = FleetProcesses(env, tmp_path)
    processes.start_ingest()
    processes.start_worker(concurrency=2)
    yield processes
    processes.stop_all()


def track(i: int) -> dict[str, object]:
    return {"type": "track", "event": "E", "userId": f"u{i}", "messageId": f"m{i}",
            "timestamp": "2024-05-01T12:05:00.000Z", "properties": {"i": i}}  # fmt: skip


@pytest.mark.integration
def test_each_event_reaches_only_its_own_app(fleet, two_stubs) -> None:
    ios, web = two_stubs
    url = fleet.ingest_url
    post = requests.post
    assert post(f"{url}/v1/track", json=track(1), auth=("ios-write-key", ""), timeout=10).ok
    assert post(f"{url}/v1/track", json=track(2), auth=("web-old-key", ""), timeout=10).ok
    wrong = post(f"{url}/v1/track", json=track(3), auth=("nobody", ""), timeout=10)
    assert wrong.status_code == 401
    (to_ios,) = ios.wait_for(lambda got: len(got) >= 1, timeout_s=30)
    (to_web,) = web.wait_for(lambda got: len(got) >= 1, timeout_s=30)
    time.sleep(1.0)
    assert len(ios.snapshot()) == 1 and len(web.snapshot()) == 1
    assert to_ios.headers["Authorization"] == f"Token {IOS_KEY}"
    assert to_ios.headers["X-PW-Appcode"] == "IOSAP-00001"
    assert to_ios.json["events"][0]["app_code"] == "IOSAP-00001"
    assert to_ios.json["events"][0]["attributes"] == {"i": 1}
    assert to_web.headers["Authorization"] == f"Token {WEB_KEY}"
    assert to_web.json["events"][0]["attributes"] == {"i": 2}
    # and the worker's metrics label every series with its destination
    worker_metrics = f"http://127.0.0.1:{fleet.env['WORKER_METRICS_PORT']}/metrics"
    deadline = time.monotonic() + 10
    while True:
        text = requests.get(worker_metrics, timeout=5).text
        ios_count = value(
            text, "pushwoosh_fleet_events_delivered_total", "ios", action="trackEvent"
        )
        web_count = value(
            text, "pushwoosh_fleet_events_delivered_total", "web", action="trackEvent"
        )
        if (ios_count, web_count) == (1.0, 1.0) or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert (ios_count, web_count) == (1.0, 1.0)
    # ingest's own counters are kept per destination too (they used to vanish with a file)
    ingest = requests.get(f"http://127.0.0.1:{fleet.env['METRICS_PORT']}/metrics", timeout=5).text
    accepted = "pushwoosh_fleet_ingest_events_accepted_total"
    assert value(ingest, accepted, "ios", route="v1/track") == 1.0
    assert value(ingest, accepted, "web", route="v1/track") == 1.0


@pytest.mark.integration
@pytest.mark.slow
def test_a_failing_destination_does_not_hold_up_another(fleet, two_stubs) -> None:
    ios, web = two_stubs
    # Given the iOS app answering 503 for 15 seconds
    ios.set_default(Reply(503, "down"))
    url = fleet.ingest_url
    sent_at: dict[int, float] = {}

    def send(key: str, start: int) -> None:
        session = requests.Session()
        for i in range(start, start + 150):
            sent_at[i] = time.time()
            session.post(f"{url}/v1/track", json=track(i), auth=(key, ""), timeout=10)
            time.sleep(0.1)

    senders = [
        threading.Thread(target=send, args=("ios-write-key", 0)),
        threading.Thread(target=send, args=("web-write-key", 1000)),
    ]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join()
    # Then the web app got each of its events promptly all along
    got = web.wait_for(lambda got: len(got) >= 150, timeout_s=30)
    lags = [r.received_at - sent_at[r.json["events"][0]["attributes"]["i"]] for r in got]
    assert max(lags) < 3.0, sorted(lags)[-5:]
    ios.set_default(Reply(200))
    # And the iOS events are all delivered once the app is back
    ios.wait_for(lambda got: sum(len(r.json["events"]) for r in got if r.status == 200) >= 150, 60)


def test_preview_and_check_config_per_destination(tmp_path: Path) -> None:
    env = env_for(destinations_file(tmp_path, "http://ios.test", "http://web.test"))
    events = "\n".join(f'{{"type":"track","event":"E","userId":"u","messageId":"m{i}",'
                       f'"timestamp":"2024-05-01T12:05:00.000Z"}}' for i in range(3))  # fmt: skip
    ios = cli("preview", "--destination", "ios", stdin=events, **env)
    web = cli("preview", "--destination", "web", stdin=events, **env)
    ios_requests = json.loads(ios.stdout)["requests"]
    web_requests = json.loads(web.stdout)["requests"]
    assert [r["url"] for r in ios_requests] == [
        "http://ios.test/integration-segment/v1/post-events"
    ]
    assert len(web_requests) == 3 and web_requests[0]["headers"]["X-PW-Appcode"] == "WEBAP-00002"
    missing = cli("preview", "--destination", "android", stdin=events, **env)
    assert missing.returncode == 2 and "android" in missing.stderr
    check = cli("check-config", **env)
    assert check.returncode == 0
    assert "(destination 'ios')" in check.stdout and "(destination 'web')" in check.stdout


def test_preview_batching_override_keeps_the_destinations_own_mappings(tmp_path: Path) -> None:
    # Given a destination with an inline mapping of its own
    path = tmp_path / "destinations.yaml"
    path.write_text(yaml.safe_dump({"destinations": [
        {"name": "ios", "api_key": "k", "application_code": "IOSAP-00001",
         "write_keys": ["w"], "mappings": [
             {"name": "Only orders", "action": "trackEvent", "trigger": 'event = "Order"',
              "defaults": True, "fields": {"name": "iOS order"}}]},
    ]}))  # fmt: skip
    events = "\n".join(
        json.dumps({"type": "track", "event": "Order", "userId": "u", "messageId": f"m{i}",
                    "timestamp": "2024-05-01T12:05:00.000Z"})
        for i in range(3)
    )  # fmt: skip
    # When it is previewed with batching switched on
    done = cli("preview", "--batching", "on", stdin=events, DESTINATIONS_FILE=str(path))
    # Then the destination's own mapping is used, batched
    (request,) = json.loads(done.stdout)["requests"]
    assert [e["name"] for e in request["json"]["events"]] == ["iOS order"] * 3


def test_status_covers_every_destination_and_ping_each_one(
    redis_url: str, key_prefix: str, two_stubs: tuple[PushwooshStub, PushwooshStub], tmp_path: Path
) -> None:
    ios, web = two_stubs
    web.set_default(Reply(401, "unauthorized"))
    env = {**env_for(destinations_file(tmp_path, ios.url, web.url)), "REDIS_URL": redis_url,
           "REDIS_KEY_PREFIX": key_prefix}  # fmt: skip
    status = cli("status", "--json", "--timeout", "0.2", **env)
    assert status.returncode == 1, status.stderr  # degraded: no worker runs here
    report = json.loads(status.stdout)
    assert report["state"] == "degraded" and "no live worker" in report["problems"][0]
    assert [s["destination"] for s in report["destinations"]] == ["ios", "web"]
    one = cli("status", "--json", "--destination", "web", "--timeout", "0.2", **env)
    assert [s["destination"] for s in json.loads(one.stdout)["destinations"]] == ["web"]
    ping = cli("ping", **env)
    assert "ios: credentials OK" in ping.stdout and "web: credentials REJECTED" in ping.stdout
    assert ping.returncode == 1
    assert [r.path for r in ios.snapshot()] == ["/integration-segment/v1/ping"]
    assert ios.snapshot()[0].headers["Authorization"] == f"Token {IOS_KEY}"


def test_replay_sends_with_the_chosen_destinations_write_key(fleet, two_stubs, tmp_path) -> None:
    ios, web = two_stubs
    lines = tmp_path / "events.ndjson"
    lines.write_text("\n".join(json.dumps(track(i)) for i in range(5)) + "\n")
    env = {**fleet.env, "PORT": fleet.ingest_url.rsplit(":", 1)[1]}
    several = cli("replay", str(lines), "--no-progress", **env)
    assert several.returncode == 2 and "--destination" in several.stderr
    done = cli("replay", str(lines), "--no-progress", "--destination", "web", **env)
    assert done.returncode == 0, done.stderr
    web.wait_for(lambda got: sum(len(r.json["events"]) for r in got) >= 5, timeout_s=30)
    assert ios.snapshot() == []
