"""Failed calls grouped by kind for the delivery page: noted in memory, one sample per kind and
flush, written per hour by the flusher; the key never kept."""

from __future__ import annotations

import json
from typing import Any

import fakeredis
import pytest
from hypothesis import given
from hypothesis import strategies as st

from config.redis_keys import RedisKeys
from telemetry import error_groups
from telemetry.error_groups import ErrorGroups, ErrorKind

NOW_MS = 1_714_565_100_000
HOUR = NOW_MS // error_groups.HOUR_MS
KEYS = RedisKeys("pwf", "default")


class RecordingPipe:
    """Stands in for the flusher's pipeline: records the script calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def evalsha(self, *args: Any) -> None:
        self.calls.append(args)


@given(
    st.sampled_from(["retried", "split", "dead_lettered"]),
    st.text(alphabet=st.characters(blacklist_characters="|"), max_size=20),
    st.one_of(st.none(), st.integers(100, 599)),
)
def test_a_kind_reads_back_from_its_id(outcome, code, status) -> None:
    kind = ErrorKind(outcome, code, status)
    assert ErrorKind.parse(kind.id) == kind


def test_the_overflow_kind_reads_as_an_outcome_only() -> None:
    assert ErrorKind.parse(error_groups.OVERFLOW_KIND) == ErrorKind("other", "", None)


@pytest.mark.parametrize(
    ("status", "transport_error", "code"),
    [
        (503, None, "http_503"),
        (429, None, "http_429"),
        (None, "timed out", "timeout"),
        (None, "connection error (ConnectionRefusedError)", "connection_error"),
        (None, None, "no_response"),
        (None, "something odd", "no_response"),
    ],
)
def test_reply_codes(status, transport_error, code) -> None:
    assert error_groups.reply_code(status, transport_error) == code


def test_long_text_is_cut_and_says_by_how_much() -> None:
    assert error_groups.cut("abc", 5) == "abc"
    assert error_groups.cut("abcdefgh", 5) == "abcde… (3 more characters)"


def _groups() -> ErrorGroups:
    return ErrorGroups(fakeredis.FakeRedis(decode_responses=True), KEYS)


def test_calls_of_a_kind_add_up_and_the_sample_is_made_once_per_flush() -> None:
    groups = _groups()
    made: list[int] = []

    def sample() -> dict[str, Any]:
        made.append(1)
        return {"action": "trackEvent"}

    kind = ErrorKind("retried", "http_503", 503)
    groups.note(kind, 100, NOW_MS, sample)
    groups.note(kind, 40, NOW_MS + 5, sample)
    groups.note(ErrorKind("dead_lettered", "http_400", 400), 1, NOW_MS + 1, sample)
    assert len(made) == 2
    batch = groups.take()
    pending = batch[(HOUR, kind.id)]
    assert (pending.calls, pending.events, pending.last_ms) == (2, 140, NOW_MS + 5)
    assert json.loads(pending.sample) == {"kind": kind.id, "t": NOW_MS, "action": "trackEvent"}
    assert groups.take() == {}  # taken once
    groups.note(kind, 1, NOW_MS, sample)
    assert len(made) == 3  # the next flush gets a fresh sample


def test_each_hour_is_written_in_one_script_call_with_the_bounds() -> None:
    groups = _groups()
    groups.note(ErrorKind("retried", "http_503", 503), 3, NOW_MS, dict)
    groups.note(ErrorKind("retried", "timeout"), 1, NOW_MS + 1, dict)
    groups.note(ErrorKind("retried", "timeout"), 2, NOW_MS + error_groups.HOUR_MS, dict)
    pipe = RecordingPipe()
    assert groups.write(pipe, groups.take()) == 2
    by_key = {call[2]: call[3:] for call in pipe.calls}  # sha, key count, key, args...
    this_hour = by_key[KEYS.errors(HOUR)]
    assert this_hour[:3] == (error_groups.MAX_KINDS, error_groups.ERRORS_TTL_S, "other")
    assert this_hour[3:7] == ("retried|http_503|503", 1, 3, NOW_MS)
    assert this_hour[8:12] == ("retried|timeout|", 1, 1, NOW_MS + 1)
    assert by_key[KEYS.errors(HOUR + 1)][3:7] == ("retried|timeout|", 1, 2, NOW_MS + 3_600_000)


def test_a_flood_of_new_kinds_is_counted_as_other() -> None:
    groups = _groups()
    for status in range(error_groups.MAX_PENDING_KINDS + 10):
        groups.note(ErrorKind("dead_lettered", f"http_{status}", status), 1, NOW_MS, dict)
    batch = groups.take()
    assert len(batch) == error_groups.MAX_PENDING_KINDS + 1
    assert batch[(HOUR, "other")].calls == 10


def test_a_failed_write_keeps_the_counts_for_the_next_flush() -> None:
    groups = _groups()
    kind = ErrorKind("retried", "http_503", 503)
    groups.note(kind, 5, NOW_MS, dict)
    lost = groups.take()
    groups.note(kind, 1, NOW_MS + 10, dict)
    groups.restore(lost)
    pending = groups.take()[(HOUR, kind.id)]
    assert (pending.calls, pending.events, pending.last_ms) == (2, 6, NOW_MS + 10)


def test_reading_sums_the_hours_and_takes_the_newest_sample() -> None:
    client = fakeredis.FakeRedis(decode_responses=True)
    kind = "dead_lettered|http_400|400"
    client.hset(KEYS.errors(HOUR - 3), mapping={
        f"n:{kind}": 2, f"e:{kind}": 2, f"t:{kind}": NOW_MS - 3 * 3_600_000,
        f"s:{kind}": json.dumps({"reply": {"body": "old"}}), "kinds": 1,
    })  # fmt: skip
    client.hset(KEYS.errors(HOUR), mapping={
        f"n:{kind}": 1, f"e:{kind}": 1, f"t:{kind}": NOW_MS,
        f"s:{kind}": json.dumps({"reply": {"body": "new"}}),
        "n:retried|timeout|": 4, "e:retried|timeout|": 400, "t:retried|timeout|": NOW_MS - 10,
        "kinds": 2,
    })  # fmt: skip
    client.hset(KEYS.errors(HOUR - 30), mapping={f"n:{kind}": 99})  # older than the day read
    found = error_groups.read_error_groups(client, KEYS, NOW_MS, hours=24)
    assert [g.kind.id for g in found] == [kind, "retried|timeout|"]  # the latest first
    first, second = found
    assert (first.calls, first.events, first.last_ms) == (3, 3, NOW_MS)
    assert first.sample == {"reply": {"body": "new"}}
    assert (second.calls, second.events, second.sample) == (4, 400, None)
    assert second.kind == ErrorKind("retried", "timeout", None)
