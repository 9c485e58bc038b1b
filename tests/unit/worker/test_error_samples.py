"""What the worker notes for the delivery page's errors: each failure by kind, with a sample
request and reply in which the API key (and every other secret) is masked before it is kept."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry

from config.settings import load_settings
from telemetry.error_groups import MAX_SAMPLE_TEXT_CHARS, ErrorKind
from telemetry.metrics import Counts, FleetMetrics
from worker import dlq
from worker.batcher import Outgoing
from worker.batching import PlannedRequest
from worker.mapping import Rejection
from worker.pushwoosh import Reply
from worker.telemetry import ErrorSamples, FleetObserver
from worker.wire import Endpoint

API_KEY = "PW_API_TOKEN_secret123"
WRITE_KEY = "write-key-abc"
NOW_MS = 1_714_565_100_000


class Noted:
    """Stands in for ErrorGroups: keeps what was noted, building each sample."""

    def __init__(self) -> None:
        self.notes: list[tuple[ErrorKind, int, int, dict[str, Any]]] = []

    def note(
        self, kind: ErrorKind, events: int, t_ms: int, sample: Callable[[], dict[str, Any]]
    ) -> None:
        self.notes.append((kind, events, t_ms, sample()))


def _samples() -> tuple[ErrorSamples, Noted]:
    settings = load_settings({
        "PUSHWOOSH_API_KEY": API_KEY, "PUSHWOOSH_APPLICATION_CODE": "ABCDE-12345",
        "INGEST_WRITE_KEYS": WRITE_KEY, "PUSHWOOSH_BASE_URL": "http://pushwoosh.test",
    })  # fmt: skip
    noted = Noted()
    return ErrorSamples(noted, Endpoint.of(settings), settings.secrets()), noted  # type: ignore[arg-type]


def _request(*ids: str, body: dict[str, Any] | None = None) -> PlannedRequest:
    body = body or {"events": [{"name": "Order", "attributes": {"token": API_KEY}}]}
    return PlannedRequest("post-events", body, ids, "Track Events", "trackEvent")


def _text(sample: dict[str, Any]) -> str:
    return json.dumps(sample, ensure_ascii=False)


def test_a_retried_reply_is_noted_with_the_request_and_the_key_masked() -> None:
    samples, noted = _samples()
    reply = Reply(503, body=f"overloaded, your key {API_KEY} and {WRITE_KEY}")
    samples.reply(_request("m-1", "m-2"), reply, "retried", NOW_MS)
    ((kind, events, t_ms, sample),) = noted.notes
    assert (kind, events, t_ms) == (ErrorKind("retried", "http_503", 503), 2, NOW_MS)
    assert sample["request"]["url"] == "http://pushwoosh.test/integration-segment/v1/post-events"
    assert sample["request"]["headers"]["Authorization"] == "Token ****"
    assert sample["request"]["headers"]["X-PW-Appcode"] == "ABCDE-12345"
    assert sample["reply"] == {"status": 503, "body": "overloaded, your key **** and ****"}
    assert sample["message_ids"] == ["m-1", "m-2"]
    assert API_KEY not in _text(sample) and WRITE_KEY not in _text(sample)


def test_a_timeout_is_its_own_kind_with_the_reason_as_reply() -> None:
    samples, noted = _samples()
    samples.reply(_request("m-1"), Reply(None, transport_error="timed out"), "retried", NOW_MS)
    ((kind, _, _, sample),) = noted.notes
    assert kind == ErrorKind("retried", "timeout", None)
    assert sample["reply"] == {"status": None, "body": "timed out"}


def test_a_large_request_is_cut() -> None:
    samples, noted = _samples()
    body = {"events": [{"name": "x" * 100, "attributes": {"i": i}} for i in range(100)]}
    samples.reply(_request("m-1", body=body), Reply(400, body="no"), "split", NOW_MS)
    text = noted.notes[0][3]["request"]["body"]
    assert len(text) < MAX_SAMPLE_TEXT_CHARS + 50 and text.endswith("more characters)")


def test_a_dead_lettered_request_is_noted_with_its_reason_code() -> None:
    samples, noted = _samples()
    out = Outgoing(_request("m-9"), ("1-0",), (NOW_MS - 5000,))
    letter = dlq.failed_request(
        out, code="http_400", reason=f"HTTP 400: bad {API_KEY}", status=400,
        reply=f'{{"status_message": "bad", "key": "{API_KEY}"}}', attempts=1, now_ms=NOW_MS,
        destination="default",
    )  # fmt: skip
    samples.dead_letter(letter, NOW_MS)
    ((kind, events, _, sample),) = noted.notes
    assert (kind, events) == (ErrorKind("dead_lettered", "http_400", 400), 1)
    assert sample["request"]["headers"]["Authorization"] == "Token ****"
    assert sample["reply"]["status"] == 400
    assert sample["reason"] == "HTTP 400: bad ****"
    assert API_KEY not in _text(sample)


def test_a_rejected_event_is_noted_with_the_event_instead_of_a_request() -> None:
    samples, noted = _samples()
    event = {"type": "track", "messageId": "m-3", "properties": {"k": API_KEY}}
    rejection = Rejection("Track Events", "trackEvent", "m-3", "name is required")
    letter = dlq.rejected_event(event, rejection, accepted_ms=NOW_MS, now_ms=NOW_MS,
                                destination="default")  # fmt: skip
    samples.dead_letter(letter, NOW_MS)
    ((kind, _, _, sample),) = noted.notes
    assert kind == ErrorKind("dead_lettered", "mapping_rejected", None)
    assert "request" not in sample and '"m-3"' in sample["event"]
    assert API_KEY not in _text(sample)


def test_the_observer_notes_failures_only() -> None:
    samples, noted = _samples()
    watch = FleetObserver(Counts(FleetMetrics(CollectorRegistry()), "default"), None,
                          errors=samples, clock=lambda: NOW_MS / 1000)  # fmt: skip
    request = _request("m-1")
    watch.on_attempt(request, Reply(200), "delivered", 1)
    watch.on_attempt(request, Reply(503), "retry", 1)
    watch.on_attempt(request, Reply(400), "split", 1)
    watch.on_attempt(request, Reply(400), "dead_letter", 1)  # noted with its letter, below
    assert [kind.outcome for kind, *_ in noted.notes] == ["retried", "split"]
