"""The ingest endpoint over real HTTP: gunicorn serving the app, a real Redis behind it."""

from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import hmac
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fakeredis
import falcon.testing
import hypothesis
import pytest
import redis
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from segment.analytics.client import Client

from config.errors import ConfigError
from config.redis_keys import RedisKeys
from config.settings import Settings, load_settings
from fleet.embedded_redis import free_port
from ingest import events
from ingest.app import create_app
from ingest.auth import AuthConfig
from ingest.publish import Publisher
from ingest.routing import Route, Router

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
GUNICORN = Path(sys.executable).parent / "gunicorn"
WRITE_KEY = "wk-test"
SECRET = "shh-secret"
JSON = {"Content-Type": "application/json"}
BEARER = {**JSON, "Authorization": f"Bearer {WRITE_KEY}"}
# Small limits keep the over-the-limit requests small.
LIMITS = {
    "INGEST_MAX_REQUEST_BYTES": "65536",
    "INGEST_MAX_EVENT_BYTES": "4096",
    "INGEST_MAX_BATCH_EVENTS": "50",
}
OWN_VARIABLES = ("PUSHWOOSH_", "INGEST_", "REDIS_", "DEDUPE_", "PORT", "WEB_CONCURRENCY")


class Server:
    def __init__(self, url: str, redis_url: str, prefix: str) -> None:
        self.url = url
        self.signature_scope = "body"
        self.keys = RedisKeys(prefix, "default")
        self.redis = redis.Redis.from_url(redis_url, decode_responses=True)

    def queued(self) -> int:
        return int(self.redis.xlen(self.keys.stream(0)))

    def stored(self) -> list[dict[str, Any]]:
        return [json.loads(f["e"]) for _, f in self.redis.xrange(self.keys.stream(0))]

    def post(self, path: str, body: Any = None, *, data: Any = None, **kwargs: Any) -> Any:
        kwargs.setdefault("headers", BEARER)
        payload = json.dumps(body).encode() if data is None else data
        return requests.post(self.url + path, data=payload, timeout=5, **kwargs)


@contextlib.contextmanager
def running_server(redis_url: str, prefix: str, **env: str) -> Iterator[Server]:
    """gunicorn on a free port; fails loudly, with its log, if it never answers /healthz."""
    port = free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith(OWN_VARIABLES)}
    full_env = {
        **base,
        "PORT": str(port),
        "WEB_CONCURRENCY": "1",
        "REDIS_URL": redis_url,
        "REDIS_KEY_PREFIX": prefix,
        "INGEST_WRITE_KEYS": f"other-key,{WRITE_KEY}",
        "INGEST_SHARED_SECRET": SECRET,
        **LIMITS,
        **env,
    }
    command = [str(GUNICORN), "-c", "python:ingest.gunicorn_conf", "ingest.app:get_app()"]
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(command, cwd=ROOT, env=full_env, stdout=log, stderr=log)
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_until_up(url, proc, log)
            yield Server(url, redis_url, prefix)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_until_up(url: str, proc: subprocess.Popen[bytes], log: Any) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            if requests.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except requests.RequestException:  # refused, or accepted but not answered yet
            pass
        time.sleep(0.1)
    log.seek(0)
    pytest.fail(f"ingest server never came up on {url}:\n{log.read().decode(errors='replace')}")


@contextlib.contextmanager
def own_prefix(redis_url: str) -> Iterator[str]:
    prefix = f"t{uuid.uuid4().hex[:10]}"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)


@pytest.fixture(scope="module")
def server(redis_url: str) -> Iterator[Server]:
    with own_prefix(redis_url) as prefix, running_server(redis_url, prefix) as running:
        yield running


def event(kind: str = "track", **extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"type": kind, "userId": "u1", "messageId": uuid.uuid4().hex}
    if kind == "track":
        base["event"] = "Order Completed"
    if kind == "alias":
        base["previousId"] = "old"
    return {**base, **extra}


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"code", "message"}
    assert body["code"] == code
    return dict(body)


def basic(user: str) -> str:
    return "Basic " + base64.b64encode(user.encode()).decode()


def sign(payload: bytes) -> str:
    return hmac.new(SECRET.encode(), payload, hashlib.sha1).hexdigest()


def test_health_and_readiness_say_ok_and_nothing_more(server: Server) -> None:
    assert requests.get(server.url + "/healthz", timeout=5).json() == {"status": "ok"}
    ready = requests.get(server.url + "/readyz", timeout=5)
    assert ready.status_code == 200 and ready.json() == {"status": "ok"}


@pytest.mark.parametrize(
    ("path", "body", "count"),
    [
        ("/webhook", event(), 1),
        ("/webhook", [event(), event("identify"), event("page")], 3),
        ("/webhook", [], 0),
        ("/v1/batch", {"batch": [event(), event("page"), event("alias")]}, 3),
        ("/v1/track", event(), 1),
        ("/v1/identify", event("identify"), 1),
        ("/v1/page", event("page"), 1),
        ("/v1/screen", event("screen"), 1),
        ("/v1/group", event("group", groupId="g"), 1),
        ("/v1/alias", event("alias"), 1),
    ],
)
def test_accepted_requests_answer_exactly_200_success(
    server: Server, path: str, body: Any, count: int
) -> None:
    before = server.queued()
    response = server.post(path, body)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json() == {"success": True}
    assert server.queued() == before + count


def test_stored_events_are_normalised(server: Server) -> None:
    body = {
        "batch": [
            {"type": "identify", "userId": "norm", "originalTimestamp": "2024-05-01T12:00:00Z"}
        ],
        "context": {"library": {"name": "analytics-python"}},
        "sentAt": "2024-05-01T12:01:00Z",
        "writeKey": WRITE_KEY,
    }
    response = server.post("/v1/batch", body, headers=JSON)
    assert response.status_code == 200
    [stored] = [e for e in server.stored() if e.get("userId") == "norm"]
    assert "writeKey" not in stored
    assert stored["context"] == {"library": {"name": "analytics-python"}}
    assert len(stored["messageId"]) == 36
    assert stored["receivedAt"].endswith("Z") and len(stored["receivedAt"]) == 24
    assert stored["timestamp"] != stored["receivedAt"]  # corrected by the minute of clock skew


def test_a_repeated_message_id_is_accepted_and_stored_once(server: Server) -> None:
    message = event()
    before = server.queued()
    for _ in range(3):
        assert server.post("/webhook", message).json() == {"success": True}
    assert server.queued() == before + 1


@pytest.mark.parametrize(
    ("headers", "body_extra"),
    [
        ({**JSON, "Authorization": basic(f"{WRITE_KEY}:")}, {}),
        ({**JSON, "Authorization": basic(WRITE_KEY)}, {}),
        ({**JSON, "Authorization": "Bearer other-key"}, {}),
        (JSON, {"writeKey": WRITE_KEY}),
        ({"Content-Type": "text/plain", "Authorization": f"Bearer {WRITE_KEY}"}, {}),
        (
            {
                "Content-Type": "application/vnd.segment+json; charset=utf-8",
                "Authorization": f"Bearer {WRITE_KEY}",
            },
            {},
        ),
    ],
)
def test_write_key_modes(server: Server, headers: dict[str, str], body_extra: dict) -> None:
    before = server.queued()
    response = server.post("/v1/track", {**event(), **body_extra}, headers=headers)
    assert response.json() == {"success": True}
    assert server.queued() == before + 1


def test_signed_webhooks_single_and_batch(server: Server) -> None:
    before = server.queued()
    single = json.dumps(event()).encode()
    response = server.post("/webhook", data=single, headers={**JSON, "X-Signature": sign(single)})
    assert response.status_code == 200
    first, second = event(), event("identify")
    raw = json.dumps([first, second]).encode()
    response = server.post("/webhook", data=raw, headers={**JSON, "X-Signature": sign(raw)})
    assert response.status_code == 200
    assert server.queued() == before + 3
    # A signature over the first element only authenticates nothing after it: refused unless
    # the operator opted in (INGEST_SIGNATURE_SCOPE=first-element).
    signed = json.dumps(first, separators=(",", ":")).encode()
    response = server.post("/webhook", data=raw, headers={**JSON, "X-Signature": sign(signed)})
    assert_error(response, 401, "unauthorized")
    assert server.queued() == before + 3


@pytest.mark.parametrize(
    "headers",
    [
        JSON,
        {**JSON, "Authorization": "Bearer wrong"},
        {**JSON, "Authorization": basic("wrong:")},
        {**JSON, "X-Signature": "ab" * 20},
    ],
)
def test_wrong_or_missing_credentials_are_401_and_store_nothing(
    server: Server, headers: dict[str, str]
) -> None:
    before = server.queued()
    assert_error(
        server.post("/v1/batch", {"batch": [event()]}, headers=headers), 401, "unauthorized"
    )
    assert server.queued() == before


def test_x_retry_count_is_accepted(server: Server) -> None:
    response = server.post("/v1/track", event(), headers={**BEARER, "X-Retry-Count": "3"})
    assert response.json() == {"success": True}


def gz(data: bytes) -> bytes:
    return gzip.compress(data)


GZIP = {**BEARER, "Content-Encoding": "gzip"}
BATCH = json.dumps({"batch": [event(), event()]}).encode()


@pytest.mark.parametrize(
    ("data", "headers", "status", "code"),
    [
        (BATCH, {**BEARER, "Content-Type": "text/html"}, 415, "unsupported_media_type"),
        (BATCH, {"Authorization": f"Bearer {WRITE_KEY}"}, 415, "unsupported_media_type"),
        (BATCH, {**BEARER, "Content-Encoding": "br"}, 415, "unsupported_encoding"),
        (b"{not json", BEARER, 400, "invalid_json"),
        (b"", BEARER, 400, "invalid_json"),
        (b'{"batch": [1, NaN]}', BEARER, 400, "invalid_json"),
        (b"\xff" * 10, BEARER, 400, "invalid_json"),
        (
            json.dumps({"batch": [event(), {"type": "track"}]}).encode(),
            BEARER,
            400,
            "validation_failed",
        ),
        (b'{"batch": {}}', BEARER, 400, "validation_failed"),
        (gz(BATCH)[:-12], GZIP, 400, "invalid_gzip"),
        (b"not gzip at all", GZIP, 400, "invalid_gzip"),
        (gz(BATCH) + b"\x00\x00", GZIP, 400, "invalid_gzip"),
        (b"x" * 70_000, BEARER, 400, "too_large"),
        (gz(b" " * 10_000_000), GZIP, 400, "too_large"),
        (
            json.dumps({"batch": [event(traits={"x": "y" * 5000})]}).encode(),
            BEARER,
            400,
            "too_large",
        ),
        (json.dumps({"batch": [event() for _ in range(51)]}).encode(), BEARER, 400, "too_large"),
    ],
)
def test_rejected_requests_answer_code_and_message_and_store_nothing(
    server: Server, data: bytes, headers: dict[str, str], status: int, code: str
) -> None:
    before = server.queued()
    error = assert_error(server.post("/v1/batch", data=data, headers=headers), status, code)
    assert server.queued() == before
    if code == "too_large":
        assert "limit" in error["message"]


def test_limits_are_named_in_the_message(server: Server) -> None:
    too_many = {"batch": [event() for _ in range(51)]}
    assert "50 events" in server.post("/v1/batch", too_many).json()["message"]
    big = {"batch": [event(), event(traits={"x": "y" * 5000})]}
    message = server.post("/v1/batch", big).json()["message"]
    assert "batch[1]" in message and "4096 bytes per event" in message
    assert "65536 bytes" in server.post("/v1/batch", data=b" " * 70_000).json()["message"]


def test_gzip_bodies_are_accepted_including_concatenated_members(server: Server) -> None:
    before = server.queued()
    assert server.post("/v1/batch", data=gz(BATCH), headers=GZIP).status_code == 200
    half = len(BATCH) // 2
    two_members = gz(BATCH[:half]) + gz(BATCH[half:])
    assert server.post("/v1/batch", data=two_members, headers=GZIP).status_code == 200
    assert server.queued() == before + 2  # the same two messageIds both times


def test_a_declared_length_over_the_limit_is_refused_without_reading_the_body(
    server: Server,
) -> None:
    port = int(server.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(
            b"POST /v1/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + WRITE_KEY.encode() + b"\r\n"
            b"Content-Length: 100000000\r\n\r\n{"
        )
        reply = _read_response(sock)
    assert reply.startswith("HTTP/1.1 400")
    assert '"code": "too_large"' in reply


def _read_response(sock: socket.socket) -> str:
    """One HTTP response, read up to the end of its body (the server keeps the socket open)."""
    data = b""
    while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < _length(data):
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.decode()


def _length(data: bytes) -> int:
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def test_a_chunked_body_is_cut_off_at_the_limit(server: Server) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(10):
            yield b" " * 8000

    before = server.queued()
    response = requests.post(server.url + "/v1/batch", data=chunks(), headers=BEARER, timeout=5)
    assert_error(response, 400, "too_large")
    assert server.queued() == before


def test_a_chunked_body_within_the_limit_is_accepted(server: Server) -> None:
    body = json.dumps({"batch": [event(), event()]}).encode()
    before = server.queued()
    response = requests.post(
        server.url + "/v1/batch", data=iter([body[:10], body[10:]]), headers=BEARER, timeout=5
    )
    assert response.json() == {"success": True}
    assert server.queued() == before + 2


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/nope", 404, "not_found"),
        ("GET", "/v1/batch", 405, "method_not_allowed"),
        ("POST", "/healthz", 405, "method_not_allowed"),
    ],
)
def test_unknown_routes_answer_in_the_same_shape(
    server: Server, method: str, path: str, status: int, code: str
) -> None:
    assert_error(requests.request(method, server.url + path, timeout=5), status, code)


def test_the_python_client_delivers_to_the_endpoint(server: Server) -> None:
    errors: list[Any] = []
    for use_gzip in (False, True):
        client = Client(
            WRITE_KEY,
            host=server.url,
            sync_mode=True,
            gzip=use_gzip,
            on_error=lambda e, batch: errors.append(e),
        )
        client.track(f"py-{use_gzip}", "Signed Up", {"plan": "pro"})
        client.identify(f"py-{use_gzip}", {"email": "a@example.com"})
        client.flush()
    assert errors == []
    mine = [e for e in server.stored() if str(e.get("userId", "")).startswith("py-")]
    assert sorted((e["userId"], e["type"]) for e in mine) == [
        ("py-False", "identify"),
        ("py-False", "track"),
        ("py-True", "identify"),
        ("py-True", "track"),
    ]
    assert all("writeKey" not in e and e["context"]["library"]["name"] for e in mine)


def test_backpressure_answers_429_with_retry_after(redis_url: str, key_prefix: str) -> None:
    with running_server(redis_url, key_prefix, INGEST_MAX_QUEUED_EVENTS="3") as small:
        # Given a backlog of three events, the limit
        assert small.post("/v1/batch", {"batch": [event(), event()]}).status_code == 200
        assert small.post("/v1/track", event()).status_code == 200
        # When one more arrives, it is refused with a hint when to retry
        response = small.post("/v1/track", event())
        assert_error(response, 429, "queue_full")
        assert int(response.headers["Retry-After"]) > 0
        # Then nothing more is stored, the answer does not tell the backlog's size, and the
        # server stays ready: the backlog is shared by every ingest process, so it is a 429 for
        # senders, never a reason to take every process out of the load balancer at once
        assert small.queued() == 3
        assert "3" not in response.json()["message"]
        ready = requests.get(small.url + "/readyz", timeout=5)
        assert ready.status_code == 200 and ready.json() == {"status": "ok"}


def test_redis_down_answers_503_with_retry_after(key_prefix: str) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    settings = load_settings(
        {"REDIS_URL": dead, "REDIS_KEY_PREFIX": key_prefix, "INGEST_WRITE_KEYS": WRITE_KEY}
    )
    client = redis.Redis.from_url(dead, socket_connect_timeout=1)
    app = create_app(settings, one_route(settings, Publisher(client, settings, "default")))
    test_client = falcon.testing.TestClient(app)
    response = test_client.simulate_post("/v1/track", json=event(), headers=BEARER)
    assert response.status_code == 503
    assert response.json["code"] == "store_unavailable"
    assert int(response.headers["Retry-After"]) > 0
    ready = test_client.simulate_get("/readyz")
    assert ready.status_code == 503
    assert ready.json == {"status": "unavailable", "reason": "store_unavailable"}
    assert test_client.simulate_get("/healthz").status_code == 200


def one_route(settings: Settings, publisher: Publisher) -> Router:
    return Router([Route("default", AuthConfig.from_settings(settings), publisher)])


class _BrokenPublisher(Publisher):
    def publish(self, events: list[dict[str, Any]], route: str, sender: str) -> Any:
        raise RuntimeError("boom")


def test_an_unexpected_error_is_503_never_a_traceback(caplog: pytest.LogCaptureFixture) -> None:
    settings = load_settings({"INGEST_WRITE_KEYS": WRITE_KEY})
    publisher = _BrokenPublisher(fakeredis.FakeRedis(), settings, "default")
    app = create_app(settings, one_route(settings, publisher))
    response = falcon.testing.TestClient(app).simulate_post(
        "/v1/track", json=event(), headers=BEARER
    )
    assert response.status_code == 503
    assert response.json == {"code": "internal_error", "message": "internal error; retry later"}
    assert response.headers["Retry-After"] == "5"
    assert "boom" in caplog.text


def test_no_credentials_configured_refuses_to_start() -> None:
    settings = load_settings({})
    with pytest.raises(ConfigError):
        create_app(settings, one_route(settings, Publisher(fakeredis.FakeRedis(), settings, "x")))


def test_server_refuses_to_start_without_credentials(redis_url: str, key_prefix: str) -> None:
    port = free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith(OWN_VARIABLES)}
    env = {**base, "PORT": str(port), "WEB_CONCURRENCY": "1", "REDIS_URL": redis_url}
    proc = subprocess.run(
        [str(GUNICORN), "-c", "python:ingest.gunicorn_conf", "ingest.app:get_app()"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=30,
    )
    assert proc.returncode != 0
    assert b"INGEST_WRITE_KEYS" in proc.stderr


# ---- fuzzing the live server -------------------------------------------------------------


ADMIN_KEY = "fuzz-admin-key"
PUBLIC_URL = "https://events.example.com"


@pytest.fixture(scope="module", params=["body", "first-element"])
def fuzz_server(request: pytest.FixtureRequest, redis_url: str) -> Iterator[Server]:
    """Every credential at once (write keys, an admin key, a shared secret), in each signature
    scope. Without cross-request dedupe, a 200 must store exactly the request's distinct
    events."""
    with (
        own_prefix(redis_url) as prefix,
        running_server(
            redis_url,
            prefix,
            DEDUPE_WINDOW_S="0",
            INGEST_ADMIN_KEYS=ADMIN_KEY,
            INGEST_SIGNATURE_SCOPE=request.param,
            INGEST_PUBLIC_URL=PUBLIC_URL,
        ) as running,
    ):
        running.signature_scope = request.param
        yield running


scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=20)
    | st.floats(allow_nan=False, allow_infinity=False)
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
messages = st.fixed_dictionaries(
    {"type": st.sampled_from(["track", "identify", "page", "alias", "delete", "nope"])},
    optional={
        "userId": st.sampled_from(["u", "", None]) | st.text(max_size=30),
        "anonymousId": st.text(max_size=10),
        "previousId": st.just("p"),
        "event": st.sampled_from(["E", ""]),
        "messageId": st.sampled_from(["m1", "m2", ""]) | st.text(min_size=90, max_size=110),
        "timestamp": st.sampled_from(["2024-05-01T12:00:00Z", "bad"]),
        "originalTimestamp": st.just("2024-05-01T12:00:00Z"),
        "sentAt": st.just("2024-05-01T12:00:05Z"),
        "properties": json_values,
        "context": st.dictionaries(st.text(max_size=8), json_values, max_size=3) | json_values,
        "writeKey": st.sampled_from([WRITE_KEY, "nope"]),
    },
)


objects = st.dictionaries(st.text(max_size=8), json_values, max_size=3)


@st.composite
def valid_messages(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["track", "identify", "page", "alias", "delete"]))
    message = event(kind, messageId=draw(st.sampled_from(["m1", "m2", "", None, "m3"])))
    # event and previousId too, so that any /v1/<type> route accepts the message
    message.update(event="E", previousId="old")
    message["properties"] = draw(objects)
    return message


some_messages = valid_messages() | valid_messages() | messages
BATCH_ROUTES = ["/v1/batch", "/v1/b"]
# Every route that takes events: each type's long and one-letter name, the batches, /webhook.
SINGLE_ROUTES = [f"/v1/{name}" for name, kind in events.V1_ROUTES.items() if kind is not None]
ROUTES = ["/webhook", *BATCH_ROUTES, *SINGLE_ROUTES]
cases = st.one_of(
    st.tuples(st.just("/webhook"), some_messages | st.lists(some_messages, max_size=6)),
    # what Segment's Webhooks (Actions) batch mode posts
    st.tuples(st.just("/webhook"), st.lists(valid_messages(), min_size=1, max_size=4)),
    st.tuples(
        st.sampled_from(BATCH_ROUTES),
        st.fixed_dictionaries(
            {"batch": st.lists(some_messages, max_size=6)},
            optional={"context": objects | json_values, "writeKey": st.just(WRITE_KEY)},
        ),
    ),
    st.tuples(st.sampled_from(SINGLE_ROUTES), some_messages),
    st.tuples(st.sampled_from(ROUTES), json_values | st.binary(max_size=200)),
)
# How the request proves who sent it. Deletes are allowed only to PRIVILEGED ones.
AUTH_MODES = [
    "bearer", "basic", "body-write-key", "admin-bearer", "admin-basic", "signature",
    "first-element-signature", "wrong-key", "none",
]  # fmt: skip
PRIVILEGED = {"admin-bearer", "admin-basic", "signature"}


def expected_events(path: str, body: Any) -> list[dict[str, Any]]:
    if path in BATCH_ROUTES:
        return list(body["batch"])
    if path == "/webhook" and isinstance(body, list):
        return list(body)
    return [body]


def distinct(events: list[dict[str, Any]]) -> int:
    ids = [e.get("messageId") for e in events]
    given_ids = {i for i in ids if i}
    return len(given_ids) + sum(1 for i in ids if not i)


def authenticate(mode: str, body: Any) -> tuple[bytes, dict[str, str], str]:
    """The raw body (with a write key added to it for `body-write-key`), the headers, and the
    mode in effect: a "first element" signature of a body that is not an array covers all of
    it."""
    if mode == "body-write-key" and isinstance(body, dict):
        body = {**body, "writeKey": WRITE_KEY}
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    if mode in ("bearer", "basic", "admin-bearer", "admin-basic", "wrong-key"):
        key = (
            ADMIN_KEY if mode.startswith("admin") else "nope" if mode == "wrong-key" else WRITE_KEY
        )
        value = basic(f"{key}:") if mode.endswith("basic") else f"Bearer {key}"
        return raw, {"Authorization": value}, mode
    if mode == "signature" or (mode == "first-element-signature" and not _array(body)):
        return raw, {"X-Signature": sign(raw)}, "signature"
    if mode == "first-element-signature":
        # What Segment's Webhooks (Actions) batch mode signs: the first element alone.
        return raw, {"X-Signature": sign(json.dumps(body[0]).encode())}, mode
    return raw, {}, mode


def _array(body: Any) -> bool:
    return isinstance(body, list) and bool(body)


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    case=cases,
    content_type=st.sampled_from(
        ["application/json"] * 6 + ["text/plain", "application/x+json", "text/html", None]
    ),
    encoding=st.sampled_from([None] * 5 + ["gzip", "gzip", "truncated-gzip", "deflate"]),
    mode=st.sampled_from(AUTH_MODES),
)
def test_fuzz_every_route_and_credential_never_a_5xx_never_a_partial_store(
    fuzz_server: Server,
    case: tuple[str, Any],
    content_type: str | None,
    encoding: str | None,
    mode: str,
) -> None:
    path, body = case
    raw, headers, mode = authenticate(mode, body)
    if content_type:
        headers["Content-Type"] = content_type
    data = raw
    if encoding in ("gzip", "truncated-gzip"):
        headers["Content-Encoding"] = "gzip"
        data = gz(raw)[: -max(1, len(raw) // 3)] if encoding == "truncated-gzip" else gz(raw)
    elif encoding:
        headers["Content-Encoding"] = encoding
    before = fuzz_server.queued()
    response = requests.post(fuzz_server.url + path, data=data, headers=headers, timeout=5)
    after = fuzz_server.queued()
    hypothesis.event(f"{mode}: status {response.status_code}")
    assert response.status_code in (200, 400, 401, 403, 415), response.text
    if response.status_code != 200:
        assert set(response.json()) == {"code", "message"}
        assert after == before
        return
    assert response.json() == {"success": True}
    stored = expected_events(path, json.loads(raw))
    assert after - before == distinct(stored)
    # Only a credential that never ships inside an app may delete (a /v1/<type> route stores
    # its own type, whatever the body says)
    if path not in SINGLE_ROUTES and any(e.get("type") == "delete" for e in stored):
        assert mode in PRIVILEGED
    # No credential, a wrong one, or a first-element signature where only whole-body ones are
    # accepted: stored only when the body carried a write key of its own
    refused_mode = mode in ("none", "wrong-key") or (
        mode == "first-element-signature" and fuzz_server.signature_scope == "body"
    )
    if refused_mode:
        assert WRITE_KEY.encode() in raw


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    key=st.sampled_from([WRITE_KEY, "other-key", ADMIN_KEY, SECRET]) | st.text(max_size=40),
    method=st.sampled_from(["GET", "GET", "HEAD", "POST", "OPTIONS"]),
)
def test_fuzz_the_sdk_settings_route(fuzz_server: Server, key: str, method: str) -> None:
    path = "/v1/projects/" + urllib.parse.quote(key, safe="") + "/settings"
    response = requests.request(method, fuzz_server.url + path, timeout=5)
    assert response.status_code < 500, response.text
    if method == "GET" and response.status_code == 200:
        # Served only for a write key: an admin key or the secret is never echoed back
        assert key in (WRITE_KEY, "other-key")
        assert response.json()["integrations"]["Segment.io"]["apiKey"] == key
    elif method == "GET":
        assert response.status_code == 404
