"""The front serves ingest's routes without falcon, and answers and counts as falcon did.

In process, through the ASGI interface: falcon's test client for whole requests, and direct
calls where a test needs a client that goes away mid-body.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import fakeredis
import falcon.testing
from prometheus_client import CollectorRegistry, generate_latest

from config.settings import load_settings
from ingest.app import create_app
from ingest.auth import AuthConfig
from ingest.errors import QueueFull
from ingest.publish import Publisher, PublishResult
from ingest.routing import Route, Router
from ingest.telemetry import IngestTelemetry
from telemetry.metrics import FleetMetrics
from tests.support.prometheus import value

WRITE_KEY = "wk-front"
BEARER = {"Authorization": f"Bearer {WRITE_KEY}", "Content-Type": "application/json"}
EVENT = {"type": "track", "event": "Opened", "userId": "u-1", "messageId": "m-1"}


class _Publisher(Publisher):
    """Keeps what would be stored; raises `fail` instead when it is set."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stored: list[list[dict[str, Any]]] = []
        self.fail: Exception | None = None

    def publish(self, events: list[dict[str, Any]], route: str, sender: str) -> PublishResult:
        if self.fail is not None:
            raise self.fail
        self.stored.append(events)
        return PublishResult(len(events), 0)


def _app(**env: str) -> tuple[Any, _Publisher, IngestTelemetry]:
    settings = load_settings({"INGEST_WRITE_KEYS": WRITE_KEY, **env})
    publisher = _Publisher(fakeredis.FakeRedis(), settings, "default")
    router = Router([Route("default", AuthConfig.from_settings(settings), publisher)])
    metrics = FleetMetrics(CollectorRegistry())
    telemetry = IngestTelemetry(None, settings, router.destinations, metrics)
    return create_app(settings, router, telemetry=telemetry), publisher, telemetry


def _metrics(telemetry: IngestTelemetry) -> str:
    telemetry.tally.flush()
    registry = next(iter(telemetry.counts.values()))._metrics.registry
    return generate_latest(registry).decode()


def test_stored_and_refused_posts_are_counted_by_route_status_and_reason() -> None:
    app, publisher, telemetry = _app()
    client = falcon.testing.TestClient(app)
    # Given a stored event, a refused type, an unknown key and a full queue
    assert client.simulate_post("/v1/track", json=EVENT, headers=BEARER).status_code == 200
    wrong_type = {**BEARER, "Content-Type": "text/csv"}
    assert client.simulate_post("/v1/track", body="x", headers=wrong_type).status_code == 415
    stranger = {**BEARER, "Authorization": "Bearer someone-else"}
    assert client.simulate_post("/webhook", json=[EVENT, EVENT], headers=stranger).status == (
        "401 Unauthorized"
    )
    publisher.fail = QueueFull("the queue holds 9 events")
    batch = {"batch": [EVENT, {**EVENT, "messageId": "m-2"}, {**EVENT, "messageId": "m-3"}]}
    assert client.simulate_post("/v1/batch", json=batch, headers=BEARER).status_code == 429
    # Then each request is counted under its route and status, and each refusal's events by
    # reason (the three events of the full queue's batch as shed)
    text = _metrics(telemetry)
    requests = "pushwoosh_fleet_ingest_requests_total"
    assert value(text, requests, route="v1/track", status="200") == 1
    assert value(text, requests, "(none)", route="v1/track", status="415") == 1
    assert value(text, requests, "(none)", route="webhook", status="401") == 1
    assert value(text, requests, route="v1/batch", status="429") == 1
    rejected = "pushwoosh_fleet_ingest_events_rejected_total"
    assert value(text, rejected, "(none)", route="v1/track", reason="unsupported_media_type") == 1
    assert value(text, rejected, "(none)", route="webhook", reason="unauthorized") == 1
    assert value(text, "pushwoosh_fleet_ingest_events_shed_total", route="v1/batch") == 3
    duration = "pushwoosh_fleet_ingest_request_duration_seconds_count"
    assert value(text, duration, route="v1/track") == 1
    assert value(text, duration, "(none)", route="v1/track") == 1
    assert publisher.stored == [[publisher.stored[0][0]]]


def _call(
    app: Any, headers: list[tuple[bytes, bytes]], incoming: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """POST /webhook with exactly these headers and body messages; the answer's messages."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/webhook", "raw_path": b"/webhook", "query_string": b"",
        "root_path": "", "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8000),
        "headers": headers,
    }  # fmt: skip
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent


def _body(message: bytes) -> list[dict[str, Any]]:
    return [{"type": "http.request", "body": message, "more_body": False}]


JSON_TYPE = (b"content-type", b"application/json")
AUTHORIZATION = (b"authorization", f"Bearer {WRITE_KEY}".encode())


def test_a_client_gone_mid_body_stores_nothing_even_when_the_part_received_parses() -> None:
    app, publisher, telemetry = _app()
    # Given a client that sent one whole event as the first part of a longer body, then left
    first_piece = {"type": "http.request", "body": json.dumps(EVENT).encode(), "more_body": True}
    headers = [JSON_TYPE, AUTHORIZATION, (b"content-length", b"100000")]
    answer = _call(app, headers, [first_piece, {"type": "http.disconnect"}])
    # Then nothing is stored, and the (unread) answer says why
    assert publisher.stored == []
    assert answer[0]["status"] == 400
    assert json.loads(answer[1]["body"])["code"] == "client_disconnected"
    text = _metrics(telemetry)
    rejected = "pushwoosh_fleet_ingest_events_rejected_total"
    assert value(text, rejected, "(none)", route="webhook", reason="client_disconnected") == 1


def test_other_methods_on_an_ingest_route_are_405_naming_post_with_cors_headers() -> None:
    app, _, telemetry = _app()
    client = falcon.testing.TestClient(app)
    for method in ("GET", "PUT", "DELETE", "PATCH"):
        answer = client.simulate_request(method, "/v1/identify", headers={"Origin": "https://a.b"})
        assert answer.status_code == 405
        assert answer.headers["Allow"] == "POST, OPTIONS"
        assert answer.headers["Access-Control-Allow-Origin"] == "*"
        assert answer.json == {"code": "method_not_allowed", "message": "405 Method Not Allowed"}
    text = _metrics(telemetry)
    requests = "pushwoosh_fleet_ingest_requests_total"
    assert value(text, requests, "(none)", route="v1/identify", status="405") == 4


def test_a_repeated_authorization_header_is_read_as_its_values_joined_and_refused() -> None:
    app, publisher, _ = _app()
    # Given the right key twice (a proxy adding its own copy): one comma-joined value, no key
    answer = _call(
        app, [JSON_TYPE, AUTHORIZATION, AUTHORIZATION], _body(json.dumps(EVENT).encode())
    )
    assert answer[0]["status"] == 401
    assert publisher.stored == []
    # And once, it is the key
    answer = _call(app, [JSON_TYPE, AUTHORIZATION], _body(json.dumps(EVENT).encode()))
    assert answer[0]["status"] == 200


def test_a_repeated_content_type_header_keeps_its_last_value() -> None:
    app, publisher, _ = _app()
    event = _body(json.dumps(EVENT).encode())
    csv_last = [(b"content-type", b"application/json"), (b"content-type", b"text/csv")]
    assert _call(app, [*csv_last, AUTHORIZATION], event)[0]["status"] == 415
    json_last = csv_last[::-1]
    assert (
        _call(app, [*json_last, AUTHORIZATION], _body(json.dumps(EVENT).encode()))[0]["status"]
        == 200
    )
    assert len(publisher.stored) == 1


def test_the_stored_answer_is_exactly_what_segment_senders_expect() -> None:
    app, _, _ = _app()
    answer = falcon.testing.TestClient(app).simulate_post("/v1/track", json=EVENT, headers=BEARER)
    assert answer.status_code == 200
    assert answer.content == b'{"success": true}'
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.headers["Content-Length"] == str(len(answer.content))
    assert "Access-Control-Allow-Origin" not in answer.headers
