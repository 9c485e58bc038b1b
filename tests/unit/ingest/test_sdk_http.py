"""What Segment's browser and mobile SDKs meet at the HTTP edge, in process: the one-letter
routes, CORS on every reply, the SDK settings document and the status codes they retry on.
"""

from __future__ import annotations

import base64
import gzip
import json
from datetime import UTC, datetime
from typing import Any

import fakeredis
import falcon.testing
import pytest

from config.errors import ConfigError
from config.settings import load_settings
from ingest import events
from ingest.app import create_app
from ingest.auth import AuthConfig
from ingest.errors import IngestError, QueueFull, StoreUnavailable
from ingest.publish import Publisher, PublishResult
from ingest.routing import Route, Router

WRITE_KEY = "wk-browser"
ORIGIN = "https://shop.example.com"
RECEIVED_AT = datetime(2024, 5, 1, 12, 0, 1, tzinfo=UTC)
BASIC = "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
# What analytics.js sends: a JSON body as text/plain (no preflight for the type), Basic auth.
BROWSER = {"Origin": ORIGIN, "Content-Type": "text/plain", "Authorization": BASIC}


class RecordingPublisher(Publisher):
    """Keeps what would be stored; raises `fail` instead when it is set."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stored: list[tuple[str, list[dict[str, Any]]]] = []
        self.fail: Exception | None = None

    def publish(self, events: list[dict[str, Any]], route: str, sender: str) -> PublishResult:
        if self.fail is not None:
            raise self.fail
        self.stored.append((route, events))
        return PublishResult(len(events), 0)


def client(**env: str) -> tuple[falcon.testing.TestClient, RecordingPublisher]:
    settings = load_settings({"INGEST_WRITE_KEYS": WRITE_KEY, **env})
    publisher = RecordingPublisher(fakeredis.FakeRedis(), settings, "default")
    router = Router([Route("default", AuthConfig.from_settings(settings), publisher)])
    app = create_app(settings, router, clock=lambda: RECEIVED_AT)
    return falcon.testing.TestClient(app), publisher


def browser_event(kind: str) -> dict[str, Any]:
    """An analytics.js message as its standard mode posts it (normalize.ts adds the last keys)."""
    message: dict[str, Any] = {
        "type": kind,
        "anonymousId": "anon-1",
        "messageId": f"ajs-next-{kind}",
        "properties": {"path": "/"},
        "context": {"library": {"name": "analytics.js", "version": "next-1.84.1"}},
        "integrations": {"Segment.io": True},
        "writeKey": WRITE_KEY,
        "sentAt": "2024-05-01T12:00:00.250Z",
        "_metadata": {"bundled": ["Segment.io"], "unbundled": [], "bundledIds": []},
    }
    if kind == "track":
        message["event"] = "Clicked"
    if kind == "alias":
        message.update(previousId="anon-1", userId="u-1")
    return message


@pytest.mark.parametrize(
    ("letter", "kind"), [(name, kind) for name, kind in events.V1_ROUTES.items() if len(name) == 1]
)
def test_each_one_letter_route_stores_what_its_long_route_stores(
    letter: str, kind: str | None
) -> None:
    test_client, publisher = client()
    if kind is None:
        body: dict[str, Any] = {
            "writeKey": WRITE_KEY,
            "batch": [browser_event("identify"), browser_event("track")],
            "sentAt": "2024-05-01T12:00:01.000Z",
        }
        long_path = "/v1/batch"
    else:
        body = {**browser_event(kind), "type": kind}
        long_path = f"/v1/{kind}"
    short = test_client.simulate_post(f"/v1/{letter}", body=json.dumps(body), headers=BROWSER)
    long = test_client.simulate_post(long_path, body=json.dumps(body), headers=BROWSER)
    assert short.status_code == long.status_code == 200
    assert short.json == {"success": True}
    (short_route, short_events), (_, long_events) = publisher.stored
    assert short_route == f"v1/{letter}"
    assert short_events == long_events
    assert all("writeKey" not in event for event in short_events)


def test_the_type_comes_from_the_route_as_on_the_long_routes() -> None:
    test_client, publisher = client()
    body = {**browser_event("track"), "type": "identify"}
    assert test_client.simulate_post("/v1/t", body=json.dumps(body), headers=BROWSER).status == (
        falcon.HTTP_200
    )
    assert publisher.stored[0][1][0]["type"] == "track"


@pytest.mark.parametrize(
    "auth",
    [{"Authorization": BASIC}, {"Authorization": f"Bearer {WRITE_KEY}"}, {}],
    ids=["basic", "bearer", "body-only"],
)
def test_the_write_key_may_come_in_basic_auth_or_only_in_the_body(auth: dict[str, str]) -> None:
    test_client, publisher = client()
    headers = {"Content-Type": "application/json; charset=utf-8", **auth}
    body = {"batch": [browser_event("track")], "writeKey": WRITE_KEY}
    response = test_client.simulate_post("/v1/b", body=json.dumps(body), headers=headers)
    assert response.status_code == 200, response.text
    assert len(publisher.stored) == 1


def test_a_gzipped_batch_is_accepted_on_the_short_route() -> None:
    test_client, publisher = client()
    body = gzip.compress(json.dumps({"batch": [browser_event("track")]}).encode())
    headers = {**BROWSER, "Content-Encoding": "gzip"}
    assert test_client.simulate_post("/v1/b", body=body, headers=headers).status_code == 200
    assert publisher.stored[0][1][0]["event"] == "Clicked"


def test_the_preflight_allows_post_and_the_headers_analytics_js_asks_for() -> None:
    test_client, _ = client()
    asked = "authorization,x-retry-count,content-type,content-encoding"
    response = test_client.simulate_options(
        "/v1/t",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": asked,
        },
    )
    assert response.status_code == 200
    headers = response.headers
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert "POST" in headers["Access-Control-Allow-Methods"]
    allowed = {h.strip().lower() for h in headers["Access-Control-Allow-Headers"].split(",")}
    assert set(asked.split(",")) <= allowed
    assert int(headers["Access-Control-Max-Age"]) > 0
    assert "Access-Control-Allow-Credentials" not in headers


# The write key is in the Basic header only: the batch envelope carries none.
PAGE_BATCH = json.dumps({"batch": [browser_event("page")]})


@pytest.mark.parametrize(
    ("body", "headers", "publish_error", "status"),
    [
        ("{not json", {}, None, 400),
        (json.dumps({"batch": [{"type": "track"}]}), {}, None, 400),
        ("[" + " " * 600_000 + "]", {}, None, 400),
        (PAGE_BATCH, {"Content-Type": "text/html"}, None, 415),
        (PAGE_BATCH, {"Authorization": "Bearer not-a-key"}, None, 401),
        (PAGE_BATCH, {}, QueueFull("full"), 429),
        (PAGE_BATCH, {}, StoreUnavailable("down"), 503),
        (PAGE_BATCH, {}, RuntimeError("boom"), 503),
    ],
    ids=["bad-json", "invalid", "too-large", "media-type", "key", "shedding", "redis", "bug"],
)
def test_every_error_reply_carries_cors_headers_so_the_browser_can_read_it(
    body: str, headers: dict[str, str], publish_error: Exception | None, status: int
) -> None:
    test_client, publisher = client()
    publisher.fail = publish_error
    response = test_client.simulate_post("/v1/b", body=body, headers={**BROWSER, **headers})
    assert response.status_code == status, response.text
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert set(response.json) == {"code", "message"}
    if status in (429, 503):
        assert int(response.headers["Retry-After"]) > 0
        # analytics.js reads Retry-After after a 429; a cross-origin reply must expose it
        assert "Retry-After" in response.headers["Access-Control-Expose-Headers"]
    assert publisher.stored == []


def test_unknown_paths_answer_with_cors_headers_too() -> None:
    test_client, _ = client()
    response = test_client.simulate_post("/v1/m", body="{}", headers=BROWSER)
    assert response.status_code == 404
    assert response.headers["Access-Control-Allow-Origin"] == "*"


def test_requests_without_an_origin_get_no_cors_headers() -> None:
    test_client, _ = client()
    response = test_client.simulate_post(
        "/v1/t",
        body=json.dumps(browser_event("track")),
        headers={"Authorization": BASIC, "Content-Type": "application/json"},
    )
    assert response.status_code == 200
    assert not [name for name in response.headers if name.lower().startswith("access-control")]


def test_listed_origins_only_are_answered_and_others_cannot_post() -> None:
    test_client, publisher = client(INGEST_CORS_ORIGINS=f"{ORIGIN.upper()},http://localhost:3000")
    body = json.dumps(browser_event("track"))
    # Given an origin in the list: its own origin back, and Vary so caches keep them apart
    allowed = test_client.simulate_post("/v1/t", body=body, headers=BROWSER)
    assert allowed.status_code == 200
    assert allowed.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "Origin" in allowed.headers["Vary"]
    # When another page posts (a text/plain POST needs no preflight), nothing is stored
    other = test_client.simulate_post(
        "/v1/t", body=body, headers={**BROWSER, "Origin": "https://evil.example"}
    )
    assert other.status_code == 403
    assert other.json["code"] == "origin_not_allowed"
    assert "Access-Control-Allow-Origin" not in other.headers
    assert len(publisher.stored) == 1
    # and its preflight is answered without CORS headers, so the browser blocks the POST
    preflight = test_client.simulate_options(
        "/v1/t",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "Access-Control-Allow-Origin" not in preflight.headers


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("*,https://a.example", "not both"),
        ("https://a.example/", "not an origin"),
        ("a.example", "not an origin"),
        (",", "list the origins"),
    ],
)
def test_bad_origin_lists_stop_start_up_naming_the_variable(value: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"INGEST_CORS_ORIGINS": value})
    assert "INGEST_CORS_ORIGINS" in str(caught.value) and problem in str(caught.value)


def test_sdk_settings_point_the_sdks_at_the_public_url() -> None:
    test_client, _ = client(INGEST_PUBLIC_URL="https://events.example.com/")
    response = test_client.simulate_get(
        f"/v1/projects/{WRITE_KEY}/settings", headers={"Origin": ORIGIN}
    )
    assert response.status_code == 200
    assert response.json["integrations"]["Segment.io"] == {
        "apiKey": WRITE_KEY,
        "apiHost": "events.example.com/v1",
        "protocol": "https",
    }
    assert response.json["metrics"] == {"sampleRate": 0}
    assert response.headers["Access-Control-Allow-Origin"] == "*"


def test_sdk_settings_need_a_known_write_key_and_the_public_url() -> None:
    with_url, _ = client(INGEST_PUBLIC_URL="https://events.example.com")
    unknown = with_url.simulate_get("/v1/projects/not-a-key/settings")
    assert unknown.status_code == 404 and "write key" in unknown.json["message"]
    without_url, _ = client()
    unset = without_url.simulate_get(f"/v1/projects/{WRITE_KEY}/settings")
    assert unset.status_code == 404 and "INGEST_PUBLIC_URL" in unset.json["message"]


def test_over_limit_requests_answer_400_which_every_sdk_drops() -> None:
    # analytics-swift without an httpConfig drops a batch only on 400 (SegmentDestination.swift)
    test_client, _ = client(INGEST_MAX_BATCH_EVENTS="1")
    body = {"batch": [browser_event("track"), browser_event("page")]}
    response = test_client.simulate_post("/v1/b", body=json.dumps(body), headers=BROWSER)
    assert response.status_code == 400
    assert response.json["code"] == "too_large" and "limit is 1" in response.json["message"]


def test_ingest_errors_never_use_codes_the_sdks_would_not_retry_when_retrying_helps() -> None:
    # 429 and 503 are retried by analytics.js, -swift, -kotlin, -react-native and the Python
    # library; 501, 505 and 511 are dropped by analytics.js, so ingest must never use them.
    shed = [QueueFull("x"), StoreUnavailable("x")]
    assert {error.status for error in shed} == {429, 503}
    assert all(error.retry_after_s for error in shed)
    refused = [
        cls("x") for cls in IngestError.__subclasses__() if cls not in (QueueFull, StoreUnavailable)
    ]
    assert all(400 <= error.status < 500 and error.status != 429 for error in refused)
