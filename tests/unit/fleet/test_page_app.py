"""The delivery page as an app, over an in-memory Redis: who may see it, what its actions need,
the headers every answer carries, and that each view shows what the fleet's own functions say."""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Iterator

import fakeredis
import falcon.testing
import pytest
from prometheus_client import CollectorRegistry, Gauge

from config.destinations import load_destinations
from config.redis_keys import RedisKeys
from config.settings import load_settings
from fleet.exporter import listener_app
from fleet.page.app import create_page
from fleet.page.reads import MinuteCounters, rate_limit_now
from worker.dlq import DeadLetter

ADMIN_KEY = "page-admin-key"
API_KEY = "PW_API_TOKEN_unit"
NOW_S = 1_714_565_100.0
NOW_MS = int(NOW_S * 1000)
ENV = {
    "INGEST_WRITE_KEYS": "write-key",
    "INGEST_ADMIN_KEYS": ADMIN_KEY,
    "PUSHWOOSH_API_KEY": API_KEY,
    "PUSHWOOSH_APPLICATION_CODE": "ABCDE-12345",
    "PUSHWOOSH_ENABLE_BATCHING": "true",
}
KEYS = RedisKeys("pwf", "default")
AUTH = {"Authorization": "Basic " + base64.b64encode(f"admin:{ADMIN_KEY}".encode()).decode()}


@pytest.fixture
def redis_client() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(decode_responses=True)


@pytest.fixture
def client(redis_client: fakeredis.FakeRedis) -> Iterator[falcon.testing.TestClient]:
    settings = load_settings(ENV)
    app = create_page(settings, load_destinations(settings, ENV), redis_client, clock=lambda: NOW_S)
    yield falcon.testing.TestClient(app)


def _token(client: falcon.testing.TestClient) -> str:
    page = client.simulate_get("/delivery/default/test-mapping", headers=AUTH).text
    match = re.search(r'<meta name="csrf-token" content="([0-9a-f]+)">', page)
    assert match is not None
    return match.group(1)


@pytest.mark.parametrize(
    "path", ["/", "/delivery", "/delivery/default", "/delivery/default/dead-letters",
             "/delivery/default/trace?message_id=m-1", "/delivery/default/test-mapping"],
)  # fmt: skip
def test_without_a_key_every_view_is_refused_and_the_browser_asked(client, path) -> None:
    for headers in ({}, {"Authorization": "Basic " + base64.b64encode(b"admin:nope").decode()}):
        result = client.simulate_get(path, headers=headers)
        assert result.status_code == 401
        assert result.headers["WWW-Authenticate"].startswith("Basic realm=")
        assert "delivered" not in result.text


def test_a_write_key_does_not_open_the_page(client) -> None:
    result = client.simulate_get("/delivery/default", headers={"Authorization": "Bearer write-key"})
    assert result.status_code == 401


def test_without_any_admin_key_the_page_says_how_to_open_it(redis_client) -> None:
    env = {k: v for k, v in ENV.items() if k != "INGEST_ADMIN_KEYS"}
    settings = load_settings(env)
    app = create_page(settings, load_destinations(settings, env), redis_client)
    result = falcon.testing.TestClient(app).simulate_get("/delivery", headers=AUTH)
    assert result.status_code == 403 and "INGEST_ADMIN_KEYS" in result.text


@pytest.mark.parametrize("action", ["replay", "purge"])
def test_actions_need_the_key_and_a_browsers_need_the_token(client, action) -> None:
    path = f"/delivery/default/dead-letters/{action}"
    assert client.simulate_post(path, json={"ids": []}).status_code == 401
    refused = client.simulate_post(path, json={"ids": []}, headers=AUTH)
    assert refused.status_code == 403 and "CSRF" in refused.text
    wrong = client.simulate_post(path, json={"ids": []}, headers={**AUTH, "X-CSRF-Token": "0"})
    assert wrong.status_code == 403
    ok = client.simulate_post(
        path, json={"ids": []}, headers={**AUTH, "X-CSRF-Token": _token(client)}
    )
    assert ok.status_code == 200 and ok.json["done"] == 0
    # A script's Bearer header cannot be sent by another site's page: no token needed.
    bearer = client.simulate_post(path, json={"ids": []},
                                  headers={"Authorization": f"Bearer {ADMIN_KEY}"})  # fmt: skip
    assert bearer.status_code == 200


def test_every_answer_forbids_framing_and_foreign_scripts(client) -> None:
    result = client.simulate_get("/delivery/default", headers=AUTH)
    assert result.status_code == 200
    policy = result.headers["Content-Security-Policy"]
    nonce = re.search(r"'nonce-([^']+)'", policy)
    assert (
        nonce is not None and "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
    )
    assert result.headers["X-Frame-Options"] == "DENY"
    assert result.headers["Cache-Control"] == "no-store"
    # Every inline script (the charts' configuration) carries this answer's nonce.
    scripts = re.findall(r"<script[^>]*>", result.text)
    assert scripts and all(f'nonce="{nonce.group(1)}"' in tag or "src=" in tag for tag in scripts)
    assert "//" not in "".join(re.findall(r'(?:src|href)="([^"]*)"', result.text)).replace(
        "http://www.w3.org", ""
    )  # nothing from another host


def test_the_page_assets_come_from_the_package_without_a_key(client) -> None:
    for name, kind in (("page.css", "text/css"), ("page.js", "text/javascript"),
                       ("pygal-tooltips.min.js", "text/javascript")):  # fmt: skip
        result = client.simulate_get(f"/delivery/_static/{name}")
        assert result.status_code == 200 and result.headers["Content-Type"] == kind
        assert len(result.content) > 500
    assert client.simulate_get("/delivery/_static/../app.py").status_code == 404


def test_one_destination_opens_straight_away_and_others_are_not_found(client) -> None:
    result = client.simulate_get("/delivery", headers=AUTH)
    assert result.status_code == 302 and result.headers["Location"].endswith("/delivery/default")
    assert client.simulate_get("/delivery/other", headers=AUTH).status_code == 404


def test_the_overview_shows_the_counters_summed_over_shards_and_minutes(
    client, redis_client
) -> None:
    minute = int(NOW_S // 60)
    for shard, (delivered, dead) in enumerate([(7, 1), (5, 0)]):
        redis_client.hset(KEYS.shard(shard).minutes(minute // 60), mapping={
            f"{minute}:delivered": delivered, f"{minute}:dead_lettered": dead,
            f"{minute - 1}:delivered": 100, f"{minute}:requests": 2, f"{minute}:sent_events": 13,
            f"{minute}:lat:50": 2,
        })  # fmt: skip
    redis_client.xadd(KEYS.shard(0).stream, {"e": "{}"}, id=f"{NOW_MS - 120_000}-0")
    page = client.simulate_get("/delivery/default", headers=AUTH).text
    # shard 1 is not read: the default destination has one shard
    assert 'id="total-delivered" data-count="107"' in page
    assert 'id="total-dead-lettered" data-count="1"' in page
    assert 'id="events-per-request">6.5<' in page
    assert 'id="queued-total">1<' in page and ">2 min<" in page  # the oldest waited 120 s


def test_test_mapping_names_the_mapping_and_masks_the_key(client) -> None:
    event = (
        '{"type": "track", "userId": "u-1", "event": "Order Completed", "messageId": "x", '
        '"timestamp": "2024-05-01T12:05:00Z"}'
    )
    refused = client.simulate_post("/delivery/default/test-mapping", headers=AUTH,
                                   params={"events": event})  # fmt: skip
    assert refused.status_code == 403
    result = client.simulate_post(
        "/delivery/default/test-mapping", headers=AUTH,
        body=f"events={event}&csrf_token={_token(client)}",
        content_type="application/x-www-form-urlencoded",
    )  # fmt: skip
    assert result.status_code == 200
    assert "mapping <strong>Track Events</strong>" in result.text
    assert "Authorization: Token ****" in result.text and API_KEY not in result.text
    assert "Order Completed" in result.text


def test_dead_letters_are_listed_shown_and_replayed(client, redis_client) -> None:
    letter = DeadLetter(
        kind="failed", mapping="Track Events", action="trackEvent", path="post-events",
        status=400, reason=f"HTTP 400: bad, {API_KEY}", reply=f'{{"key": "{API_KEY}"}}', attempts=1,
        first_attempt_ms=NOW_MS, last_attempt_ms=NOW_MS, message_ids=["m-1"],
        destination="default", request={"path": "post-events", "body": {"events": [{}]},
                                        "message_ids": ["m-1"], "mapping": "Track Events",
                                        "action": "trackEvent"},
    )  # fmt: skip
    redis_client.xadd(KEYS.shard(0).dlq, {"d": letter.to_json()}, id="5-0")
    listed = client.simulate_get("/delivery/default/dead-letters", headers=AUTH,
                                 params={"status": "400"}).text  # fmt: skip
    assert 'data-id="0/5-0"' in listed
    assert "HTTP 400: bad, ****" in listed and API_KEY not in listed
    assert (
        "0/5-0"
        not in client.simulate_get(
            "/delivery/default/dead-letters", headers=AUTH, params={"status": "503"}
        ).text
    )
    bad = client.simulate_get("/delivery/default/dead-letters", headers=AUTH,
                              params={"older_than": "soon"}).text  # fmt: skip
    assert "cannot read the age" in bad
    shown = client.simulate_get("/delivery/default/dead-letters/0/5-0", headers=AUTH).text
    assert "Authorization: Token ****" in shown and API_KEY not in shown
    assert (
        client.simulate_get("/delivery/default/dead-letters/0/6-0", headers=AUTH).status_code == 404
    )
    # replay needs the fleet's Lua script, which the in-memory Redis cannot run: the
    # integration test replays from a real browser; here, purge (plain XDEL).
    purged = client.simulate_post("/delivery/default/dead-letters/purge", headers={
        **AUTH, "X-CSRF-Token": _token(client)}, json={"ids": ["0/5-0", "0/9-0"]})  # fmt: skip
    assert purged.json == {"action": "purge", "asked": 2, "done": 1, "not_found": 1}
    too_many = client.simulate_post("/delivery/default/dead-letters/purge", headers={
        **AUTH, "X-CSRF-Token": _token(client)}, json={"ids": ["0/1-0"] * 101})  # fmt: skip
    assert too_many.status_code == 400


def test_trace_shows_the_history(client, redis_client) -> None:
    hour = time.strftime("%Y%m%d%H", time.gmtime(NOW_S))
    redis_client.hset("{pwf:trace:" + hour + "}", "m-1",
                      f'{{"t": {NOW_MS}, "k": "received", "route": "v1/batch"}}\n')  # fmt: skip
    page = client.simulate_get("/delivery/default/trace", headers=AUTH,
                               params={"message_id": "m-1"}).text  # fmt: skip
    assert "received via v1/batch" in page
    missing = client.simulate_get("/delivery/default/trace", headers=AUTH,
                                  params={"message_id": "m-2"}).text  # fmt: skip
    assert 'id="history-empty"' in missing


def test_the_listener_serves_metrics_openly_and_the_page_behind_the_key(client) -> None:
    registry = CollectorRegistry()
    Gauge("pushwoosh_fleet_test", "a gauge", registry=registry).set(1)
    app = listener_app(registry, client.app)
    served = falcon.testing.TestClient(app)
    assert "pushwoosh_fleet_test 1.0" in served.simulate_get("/metrics").text
    assert served.simulate_get("/delivery/default").status_code == 401


@pytest.mark.parametrize(
    ("state", "expected_factor"),
    [
        ({}, 1.0),
        ({"factor": "0.5", "ts": str(NOW_MS)}, 0.5),
        ({"factor": "0.5", "ts": str(NOW_MS - 4000)}, 0.7),  # recovering 5 % a second
        ({"factor": "0.5", "ts": str(NOW_MS - 60_000)}, 1.0),
        ({"factor": "junk"}, 1.0),
    ],
)
def test_the_rate_limit_in_force_recovers_as_the_script_does(state, expected_factor) -> None:
    limit = rate_limit_now(state, 20.0, 0.0, 0.05, NOW_MS)
    assert limit.factor == pytest.approx(expected_factor)
    assert limit.enabled
    assert not rate_limit_now({}, 0.0, 0.0, 0.05, NOW_MS).enabled


def test_finished_hours_are_read_once(redis_client) -> None:
    counters = MinuteCounters()
    hour = int(NOW_S // 3600)
    for h in range(hour - 3, hour + 1):
        redis_client.hset(KEYS.shard(0).minutes(h), f"{h * 60}:delivered", 1)
    hours = list(range(hour - 3, hour + 1))
    first = counters.read(redis_client, KEYS, 1, hours, hour)
    for h in hours:  # change every hour behind the page's back
        redis_client.hset(KEYS.shard(0).minutes(h), f"{h * 60}:delivered", 5)
    second = counters.read(redis_client, KEYS, 1, hours, hour)
    assert [first[h * 60]["delivered"] for h in hours] == [1, 1, 1, 1]
    # settled hours come from the cache; the last two hours are read again
    assert [second[h * 60]["delivered"] for h in hours] == [1, 1, 5, 5]
