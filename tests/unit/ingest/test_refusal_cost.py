"""Refusals are cheap: a request refused for a limit costs about what decoding its JSON costs.

Every size and count limit, the delete privilege and the backlog cap are checked before any
message is validated, so a sender cannot make ingest validate thousands of events it is about
to refuse. Each case compares, in the same test, the CPU time of the refused request (the whole
app: reading, gunzip, auth, limits) with that of `orjson.loads` on the same decoded body, the
parse every request pays; the least of several runs of each, so a busy machine does not decide.
"""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Callable
from typing import Any

import fakeredis
import falcon.testing
import orjson
import pytest

from config.settings import load_settings
from ingest.app import create_app
from ingest.auth import AuthConfig
from ingest.errors import QueueFull
from ingest.publish import Publisher, PublishResult
from ingest.routing import Route, Router

WRITE_KEY = "wk-cost"
# Generous: the refusal also reads, gunzips and authenticates the body and goes through falcon
# (0.2 to 3 times the parse, seen on a loaded machine). Validating the events is what the bound
# must catch: accepting the same 2,500 events costs about 17 times the parse.
MAX_RATIO = 6.0
RUNS = 9


class _Publisher(Publisher):
    """Counts publishes; raises QueueFull when `full`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.full = False
        self.calls = 0

    def publish(self, events: list[dict[str, Any]], route: str, sender: str) -> PublishResult:
        self.calls += 1
        if self.full:
            raise QueueFull("the queue holds 1000001 events")
        return PublishResult(len(events), 0)


def _client() -> tuple[falcon.testing.TestClient, _Publisher]:
    settings = load_settings({"INGEST_WRITE_KEYS": WRITE_KEY})
    publisher = _Publisher(fakeredis.FakeRedis(), settings, "default")
    router = Router([Route("default", AuthConfig.from_settings(settings), publisher)])
    return falcon.testing.TestClient(create_app(settings, router)), publisher


def _event(i: int, **extra: Any) -> dict[str, Any]:
    # An event the fast path cannot take (a timestamp with a space), so validating it would
    # cost marshmallow's full load: what an attacker would send.
    return {"type": "track", "userId": f"u{i}", "event": "Order Completed",
            "timestamp": "2024-05-01 12:00:00", "properties": {"total": i}, **extra}  # fmt: skip


def _batch(count: int, last: dict[str, Any] | None = None) -> dict[str, Any]:
    events = [_event(i) for i in range(count)]
    if last is not None:
        events[-1] = last
    return {"batch": events}


def _least_cpu(*calls: Callable[[], object]) -> list[float]:
    """The least CPU time of each call over RUNS rounds, the calls taking turns within a round,
    so a busy stretch of the machine weighs on all of them alike."""
    least = [float("inf")] * len(calls)
    for _ in range(RUNS):
        for i, call in enumerate(calls):
            started = time.process_time()
            call()
            least[i] = min(least[i], time.process_time() - started)
    return least


GZIP = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
BEARER = {**GZIP, "Authorization": f"Bearer {WRITE_KEY}"}

CASES = [
    ("count: 2,501 events in /v1/batch", "/v1/batch", _batch(2501), BEARER, 400, "too_large"),
    ("count: 2,501 events in /webhook", "/webhook", _batch(2501)["batch"], BEARER, 400,
     "too_large"),
    ("size: the last of 2,500 events over 32 KB", "/v1/batch",
     _batch(2500, _event(0, properties={"x": "y" * 33_000})), BEARER, 400, "too_large"),
    ("privilege: a delete after 2,499 events, write key", "/v1/batch",
     _batch(2500, {"type": "delete", "userId": "victim"}), BEARER, 403, "forbidden"),
    ("request size: 600 KB after gunzip", "/v1/batch",
     {"batch": [_event(i, properties={"x": "y" * 200}) for i in range(2400)]}, BEARER, 400,
     "too_large"),
    ("credentials: 2,500 events, a wrong key", "/v1/batch", _batch(2500),
     {**GZIP, "Authorization": "Bearer nope"}, 401, "unauthorized"),
    ("backlog: 2,500 events while the queue is full", "/v1/batch", _batch(2500), BEARER, 429,
     "queue_full"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("path", "body", "headers", "status", "code"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_a_refusal_costs_about_what_parsing_the_body_costs(
    path: str, body: object, headers: dict[str, str], status: int, code: str
) -> None:
    test_client, publisher = _client()
    raw = json.dumps(body).encode()
    compressed = gzip.compress(raw)
    if code == "queue_full":
        publisher.full = True
        # the publish that finds the queue full validates the request (it might have fitted)
        assert test_client.simulate_post(path, body=compressed, headers=headers).status_code == 429

    def refuse() -> None:
        response = test_client.simulate_post(path, body=compressed, headers=headers)
        assert (response.status_code, response.json["code"]) == (status, code), response.json

    refused, parsed = _least_cpu(refuse, lambda: orjson.loads(raw))
    ratio = refused / parsed
    print(f"{len(raw):,} bytes: refused in {refused * 1e3:.2f} ms CPU, parsed in "
          f"{parsed * 1e3:.2f} ms: ratio {ratio:.2f}")  # fmt: skip
    assert ratio <= MAX_RATIO
    if code == "queue_full":
        assert publisher.calls == 1  # the later refusals never reached the publish
