"""What the worker's observer counts: reads, deliveries, and each event's delivery lag from the
moment Redis stored it (its stream entry id) to the delivery of each call made from it."""

from __future__ import annotations

import fakeredis
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest

from config.settings import load_settings
from telemetry.lag import AcceptedTimes
from telemetry.metrics import Counts, FleetMetrics
from telemetry.trace import TraceBuffer, make_record
from tests.support.prometheus import value
from worker.batching import PlannedRequest
from worker.dlq import DeadLetter
from worker.mapping import Call
from worker.pushwoosh import Reply
from worker.telemetry import FleetObserver

STORED_MS = 1_714_565_100_000


def observer(now_s: list[float]) -> tuple[FleetObserver, CollectorRegistry]:
    registry = CollectorRegistry()
    counts = Counts(FleetMetrics(registry), "default")
    return FleetObserver(counts, None, clock=lambda: now_s[0]), registry


def call(message_id: str, action: str = "trackEvent") -> Call:
    return Call("M", action, "post-events", message_id, {"name": "x"}, True)


def request(*message_ids: str, action: str = "trackEvent") -> PlannedRequest:
    return PlannedRequest("post-events", {"events": []}, message_ids, "M", action)


def test_the_lag_runs_from_storage_to_delivery_for_each_call() -> None:
    # Given two events stored 2 s and 0.5 s before they are delivered, one with two calls
    now = [STORED_MS / 1000 + 2.0]
    watch, registry = observer(now)
    watch.on_mapped([
        ("a", STORED_MS, "v1/batch",
         [call("a"), call("a", "updateUserProfile")]),
        ("b", STORED_MS + 1500, "v1/batch", [call("b")]),
        ("c", STORED_MS, "webhook", []),
    ])  # fmt: skip
    # When both track calls are delivered, then a's profile call a second later
    watch.on_attempt(request("a", "b"), Reply(200, elapsed_s=0.01), "delivered", 1)
    now[0] += 1
    watch.on_attempt(request("a", action="updateUserProfile"), Reply(200), "delivered", 1)
    # Then each call's lag is counted once, and nothing stays remembered
    text = generate_latest(registry).decode()
    lag = "pushwoosh_fleet_delivery_lag_seconds"
    assert value(text, f"{lag}_count", action="trackEvent") == 2
    assert value(text, f"{lag}_sum", action="trackEvent") == 2.5
    assert value(text, f"{lag}_sum", action="updateUserProfile") == 3.0
    assert value(text, "pushwoosh_fleet_events_read_total", src="v1/batch") == 2
    assert value(text, "pushwoosh_fleet_events_unmatched_total") == 1
    assert len(watch.accepted) == 0


def test_a_dead_lettered_call_is_forgotten_without_a_lag() -> None:
    now = [STORED_MS / 1000 + 1.0]
    watch, registry = observer(now)
    watch.on_mapped([("d", STORED_MS, "v1/track", [call("d")])])
    watch.on_attempt(request("d"), Reply(400, body="bad"), "dead_letter", 1)
    watch.on_dead_lettered(
        DeadLetter(kind="failed", mapping="M", action="trackEvent", path="post-events",
                   status=400, reason="bad", reply="bad", attempts=1, first_attempt_ms=STORED_MS,
                   last_attempt_ms=STORED_MS, message_ids=["d"], destination="default")
    )  # fmt: skip
    text = generate_latest(registry).decode()
    assert value(text, "pushwoosh_fleet_delivery_lag_seconds_count", action="trackEvent") == 0
    assert len(watch.accepted) == 0


def test_remembered_events_are_bounded() -> None:
    times = AcceptedTimes(max_events=3)
    for i in range(5):
        times.note(f"m{i}", i, 1)
    assert len(times) == 3
    assert times.settle(["m0", "m1", "m2", "m3", "m4"]) == [2, 3, 4]


def test_events_read_together_are_counted_and_traced_as_one_at_a_time_would_be() -> None:
    # Given a read of five events: two with the same call, one with two calls, one that
    # matched nothing and one without a messageId
    registry = CollectorRegistry()
    trace = TraceBuffer(fakeredis.FakeRedis(), load_settings({}))
    watch = FleetObserver(Counts(FleetMetrics(registry), "default"), trace,
                          clock=lambda: STORED_MS / 1000 + 1)  # fmt: skip
    watch.on_mapped([
        ("a", STORED_MS, "v1/batch", [call("a")]),
        ("b", STORED_MS, "v1/batch", [call("b")]),
        (7, STORED_MS, "webhook",
         [call("7"), call("7", "updateUserProfile")]),
        ("c", STORED_MS, "v1/batch", []),
        (None, STORED_MS, "", []),
    ])  # fmt: skip
    # Then each event with a messageId has its own "mapped" record, in the order read
    now_ms = STORED_MS + 1000
    one = make_record("mapped", now_ms, mappings=["M (trackEvent)"])
    two = make_record("mapped", now_ms, mappings=["M (trackEvent)", "M (updateUserProfile)"])
    none = make_record("mapped", now_ms, mappings=[])
    assert trace.take() == [("a", now_ms, one), ("b", now_ms, one), ("7", now_ms, two),
                            ("c", now_ms, none)]  # fmt: skip
    # And the reads, the unmatched events and the calls waiting to be delivered are counted
    text = generate_latest(registry).decode()
    assert value(text, "pushwoosh_fleet_events_read_total", src="v1/batch") == 3
    assert value(text, "pushwoosh_fleet_events_read_total", src="webhook") == 1
    assert value(text, "pushwoosh_fleet_events_read_total", src="unknown") == 1
    assert value(text, "pushwoosh_fleet_events_unmatched_total") == 2
    assert watch.accepted.settle(["a", "b", "7", "7", "c"]) == [STORED_MS] * 4
    assert len(watch.accepted) == 0


@given(st.lists(st.tuples(st.sampled_from(["m0", "m1", "m2", "m3"]), st.integers(0, 9),
                         st.integers(0, 2)), max_size=12))  # fmt: skip
def test_remembered_events_noted_together_are_bounded_as_one_at_a_time(
    events: list[tuple[str, int, int]],
) -> None:
    together, alone = AcceptedTimes(max_events=3), AcceptedTimes(max_events=3)
    together.note_many(events)
    for event in events:
        alone.note(*event)
    ids = [f"m{i}" for i in range(4)]
    assert together.settle(ids) == alone.settle(ids) and len(together) == len(alone)
