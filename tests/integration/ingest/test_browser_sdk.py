"""Segment's real analytics.js (`@segment/analytics-next`, pinned in tests/browser/) in headless
Chromium, on a page served from another origin than the fleet, against real gunicorn ingest,
a real worker and the Pushwoosh stand-in: so the CORS preflight, text/plain bodies, Basic auth,
the one-letter routes and the SDK's own retry rules are all exercised by the SDK itself.

`make test` installs what this needs (scripts/ensure-browser.sh: Debian's chromium, `npm ci`
for analytics.js). Without them these tests skip, saying what is missing; under CI they fail.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import redis

from config.redis_keys import RedisKeys
from fleet.embedded_redis import EmbeddedRedis, free_port
from tests.support.browser import chromium
from tests.support.harness import ROOT, WRITE_KEY, FleetProcesses, fleet_env
from tests.support.pushwoosh_stub import PushwooshStub, RecordedRequest

pytestmark = pytest.mark.integration

ANALYTICS_JS = ROOT / "tests/browser/node_modules/@segment/analytics-next/dist/umd"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    analytics_js = {
        ANALYTICS_JS / "index.js": "analytics.js is not installed (scripts/ensure-browser.sh "
        "runs npm ci)"
    }
    with chromium(analytics_js) as launched:
        yield launched


class PageServer:
    """The shop's web server: the test page at /, analytics.js's files beside it (its lazily
    loaded chunks are fetched relative to the page). Another port, so another origin."""

    def __init__(self, html: str) -> None:
        page = html.encode()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                name = self.path.split("?", 1)[0].lstrip("/")
                path = ANALYTICS_JS / name
                if name == "":
                    body, kind = page, "text/html"
                elif "/" not in name and path.is_file():
                    body, kind = path.read_bytes(), "text/javascript"
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def shop_page(settings: dict[str, Any], options: dict[str, Any]) -> str:
    """A page that loads analytics.js the npm way: `AnalyticsBrowser.load(settings, options)`."""
    return f"""<!doctype html>
<html><head><title>Shop</title><script src="/index.js"></script>
<script>
window.ready = AnalyticsNext.AnalyticsBrowser.load({json.dumps(settings)}, {json.dumps(options)})
  .then(([analytics]) => {{ window.analytics = analytics; }});
</script></head><body>Shop</body></html>"""


class Network:
    """What the page's requests to the fleet got: the browser only reports a status when the
    reply passed CORS; a reply without Access-Control-Allow-Origin is a failed request."""

    def __init__(self, page: Any, fleet_url: str) -> None:
        self._page = page
        self.replies: list[tuple[str, int, dict[str, str]]] = []
        self.failed: list[str] = []
        prefix = fleet_url.rstrip("/") + "/v1/"

        def on_response(response: Any) -> None:
            if response.url.startswith(prefix):
                headers = response.request.all_headers()
                self.replies.append((response.url[len(prefix) - 4 :], response.status, headers))

        page.on("response", on_response)
        page.on(
            "requestfailed",
            lambda request: (
                self.failed.append(f"{request.url} {request.failure}")
                if request.url.startswith(prefix)
                else None
            ),
        )

    def wait_for(
        self, predicate: Callable[[list[tuple[str, int, dict[str, str]]]], bool], timeout_s: float
    ) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate(self.replies):
                return
            # Playwright's sync API reports events only while it runs: wait through it.
            self._page.wait_for_timeout(50)
        raise AssertionError(f"page saw {self.replies}, failed {self.failed}")


@pytest.fixture
def fleet(
    redis_url: str, key_prefix: str, stub: PushwooshStub, tmp_path: Path
) -> Iterator[FleetProcesses]:
    port = free_port()
    processes = FleetProcesses(
        fleet_env(redis_url, key_prefix, stub.url, PUSHWOOSH_ENABLE_BATCHING="true",
                  PUSHWOOSH_BATCH_FLUSH_DELAY_S="0.2",
                  INGEST_PUBLIC_URL=f"http://127.0.0.1:{port}"),
        tmp_path,
    )  # fmt: skip
    processes.start_ingest(port=port)
    # No worker yet: each test reads what ingest stored, then starts one to deliver it.
    yield processes
    processes.stop_all()


def open_shop(browser: Any, settings: dict[str, Any], options: dict[str, Any], fleet_url: str):
    server = PageServer(shop_page(settings, options))
    context = browser.new_context()  # fresh storage: analytics.js persists its queue there
    page = context.new_page()
    network = Network(page, fleet_url)
    page.goto(server.url)
    page.evaluate("window.ready")
    return server, context, page, network


# identify first, so the page and the track carry the userId the presets map to user_id.
CALLS = """async () => {
  const ids = [];
  const traits = {email: "s1@example.com", plan: "pro"};
  ids.push((await analytics.identify("shopper-1", traits)).event.messageId);
  ids.push((await analytics.page("Shop", "Pricing", {tier: "pro"})).event.messageId);
  ids.push((await analytics.track("Order Completed", {total: 42.5})).event.messageId);
  return ids;
}"""


def delivered_for(stub: PushwooshStub, user_id: str) -> tuple[list[Any], list[Any]]:
    profiles, events = [], []
    for request in stub.snapshot():
        if request.path.endswith("track-user") and request.json["user_id"] == user_id:
            profiles.append(request.json)
        elif request.path.endswith("post-events"):
            events.extend(e for e in request.json["events"] if e["user_id"] == user_id)
    return profiles, events


def wait_delivered(stub: PushwooshStub, user_id: str) -> tuple[list[Any], list[Any]]:
    def done(_: list[RecordedRequest]) -> bool:
        profiles, events = delivered_for(stub, user_id)
        return len(profiles) >= 1 and len(events) >= 2

    stub.wait_for(done, timeout_s=30)
    return delivered_for(stub, user_id)


def stored(redis_url: str, key_prefix: str) -> list[dict[str, Any]]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    stream = RedisKeys(key_prefix, "default").stream(0)
    return [json.loads(fields["e"]) for _, fields in client.xrange(stream)]


def test_default_mode_sends_each_call_to_its_one_letter_route_from_another_origin(
    browser: Any, fleet: FleetProcesses, stub: PushwooshStub, redis_url: str, key_prefix: str
) -> None:
    assert fleet.ingest_url
    # Given analytics.js loaded on a shop page, its settings host pointed at the fleet
    server, context, page, network = open_shop(
        browser, {"writeKey": WRITE_KEY, "cdnURL": fleet.ingest_url}, {}, fleet.ingest_url
    )
    try:
        # When the page identifies a shopper, records a page view and a purchase
        message_ids = page.evaluate(CALLS)
        network.wait_for(lambda got: len(got) >= 4, timeout_s=15)
    finally:
        context.close()
        server.stop()
    # Then the settings came from the fleet, and each call went to its own route with 200
    assert [(path, status) for path, status, _ in network.replies] == [
        (f"/v1/projects/{WRITE_KEY}/settings", 200),
        ("/v1/i", 200),
        ("/v1/p", 200),
        ("/v1/t", 200),
    ]
    assert network.failed == []
    for _, _, headers in network.replies[1:]:
        assert headers["content-type"].startswith("text/plain")
        assert headers["authorization"].startswith("Basic ")
        assert headers["origin"] == server.url.rstrip("/")
    # and the fleet stored them as analytics.js sent them, then delivered them to Pushwoosh
    events = {e["messageId"]: e for e in stored(redis_url, key_prefix)}
    assert [events[m]["type"] for m in message_ids] == ["identify", "page", "track"]
    assert all(events[m]["context"]["library"]["name"] == "analytics.js" for m in message_ids)
    fleet.start_worker(concurrency=1)
    profiles, tracked = wait_delivered(stub, "shopper-1")
    assert profiles[0]["email"] == "s1@example.com"
    assert profiles[0]["attributes"]["plan"] == "pro"
    assert sorted(e["name"] for e in tracked) == ["Order Completed", "Pricing"]


def test_batching_mode_sends_one_batch_to_v1_b(
    browser: Any, fleet: FleetProcesses, stub: PushwooshStub, redis_url: str, key_prefix: str
) -> None:
    assert fleet.ingest_url
    host = fleet.ingest_url.removeprefix("http://") + "/v1"
    # Given analytics.js with its settings inline (nothing fetched) and batching on: three
    # calls fill a batch (the timer is long, so only the size sends it)
    settings = {
        "writeKey": WRITE_KEY,
        "cdnSettings": {"integrations": {"Segment.io": {"apiKey": WRITE_KEY}}},
    }
    segment = {
        "apiHost": host,
        "protocol": "http",
        "deliveryStrategy": {"strategy": "batching", "config": {"size": 3, "timeout": 10_000}},
    }
    server, context, page, network = open_shop(
        browser, settings, {"integrations": {"Segment.io": segment}}, fleet.ingest_url
    )
    try:
        # When the page makes three calls
        message_ids = page.evaluate(CALLS)
        network.wait_for(lambda got: len(got) >= 1, timeout_s=15)
    finally:
        context.close()
        server.stop()
    # Then they went out together, in one POST to /v1/b
    assert [(path, status) for path, status, _ in network.replies] == [("/v1/b", 200)]
    events = {e["messageId"]: e for e in stored(redis_url, key_prefix)}
    assert [events[m]["type"] for m in message_ids] == ["identify", "page", "track"]
    fleet.start_worker(concurrency=1)
    profiles, tracked = wait_delivered(stub, "shopper-1")
    assert profiles[0]["email"] == "s1@example.com"
    assert sorted(e["name"] for e in tracked) == ["Order Completed", "Pricing"]


def test_error_replies_are_readable_cross_origin_and_a_503_is_retried(
    browser: Any, tmp_path: Path, key_prefix: str
) -> None:
    # Given ingest on a Redis of its own, which the test can stop
    store = EmbeddedRedis(tmp_path / "redis", appendonly=False).start()
    fleet = FleetProcesses(fleet_env(store.url, key_prefix, "http://127.0.0.1:9"), tmp_path)
    page_server = context = None
    try:
        url = fleet.start_ingest()
        settings = {
            "writeKey": WRITE_KEY,
            "cdnSettings": {"integrations": {"Segment.io": {"apiKey": WRITE_KEY}}},
        }
        segment = {"apiHost": url.removeprefix("http://") + "/v1", "protocol": "http"}
        page_server, context, page, network = open_shop(
            browser, settings, {"integrations": {"Segment.io": segment}}, url
        )
        # When the page posts what ingest refuses, it reads the reply (CORS on errors)
        refused = page.evaluate(
            """async ({base, key}) => {
              const post = (body, auth) => fetch(base + "/v1/t", {method: "POST", body,
                headers: {"Content-Type": "text/plain", Authorization: auth}});
              const bad = await post("{", "Basic " + btoa(key + ":"));
              const unknown = await post(JSON.stringify({userId: "u", event: "E"}), "Basic eDo=");
              return [bad.status, (await bad.json()).code,
                      unknown.status, (await unknown.json()).code];
            }""",
            {"base": url, "key": WRITE_KEY},
        )
        assert refused == [400, "invalid_json", 401, "unauthorized"]
        # When Redis is away, analytics.js gets 503 (readable, so it knows to retry)
        store.stop()
        message_id = page.evaluate(
            "async () => (await analytics.track('Retried Purchase', {total: 1})).event.messageId"
        )
        network.wait_for(lambda got: any(status == 503 for _, status, _ in got), timeout_s=15)
        # Then, once Redis is back, its own retry stores the event
        store.start()
        network.wait_for(lambda got: got and got[-1][1] == 200, timeout_s=30)
        statuses = [status for path, status, _ in network.replies if path == "/v1/t"]
        assert statuses[-1] == 200 and 503 in statuses
        retried = [headers for path, status, headers in network.replies if status == 200]
        assert int(retried[-1]["x-retry-count"]) >= 1
        assert network.failed == []
        events = stored(store.url, key_prefix)
        assert [e["event"] for e in events if e["messageId"] == message_id] == ["Retried Purchase"]
    finally:
        if context is not None:
            context.close()
        if page_server is not None:
            page_server.stop()
        fleet.stop_all()
        store.stop()
