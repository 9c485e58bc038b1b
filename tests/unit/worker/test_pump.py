"""Which shards the pump starts drains for: a broken shard is skipped, the others still drain."""

from __future__ import annotations

import fakeredis
import pytest

from config.redis_keys import RedisKeys
from config.settings import load_settings
from worker import pump
from worker.pump import shards_with_work

NOW_MS = 1_714_565_100_000


def test_shards_with_events_or_due_retries_and_no_task_are_wanted() -> None:
    client = fakeredis.FakeRedis(decode_responses=True)
    keys = RedisKeys("p", "default")
    settings = load_settings({"REDIS_KEY_PREFIX": "p", "PUSHWOOSH_SHARDS": "4"})
    client.xadd(keys.shard(0).stream, {"e": "{}"})
    client.zadd(keys.shard(1).retry, {"r": NOW_MS - 1})
    client.zadd(keys.shard(2).retry, {"r": NOW_MS + 60_000})  # not due yet
    client.xadd(keys.shard(3).stream, {"e": "{}"})
    client.set(keys.shard(3).lease, "someone")
    assert shards_with_work(client, keys, settings, NOW_MS) == [0, 1]


class _Recorder:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def error(self, message: str, *args: object) -> None:
        self.lines.append(message % args)


def test_a_shard_whose_key_has_the_wrong_type_is_skipped_and_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given shard 1's stream key holding a string, and events on shards 0 and 2
    client = fakeredis.FakeRedis(decode_responses=True)
    keys = RedisKeys("p", "default")
    settings = load_settings({"REDIS_KEY_PREFIX": "p", "PUSHWOOSH_SHARDS": "3"})
    client.set(keys.shard(1).stream, "not a stream")
    for shard in (0, 2):
        client.xadd(keys.shard(shard).stream, {"e": "{}"})
    log = _Recorder()
    monkeypatch.setattr(pump, "logger", log)
    monkeypatch.setattr(pump, "_warned_ms", {})
    # When the pump looks twice in a row
    first = shards_with_work(client, keys, settings, NOW_MS)
    second = shards_with_work(client, keys, settings, NOW_MS + 1000)
    # Then the healthy shards still get drains, and the broken one is named once, not per pass
    assert first == second == [0, 2]
    assert len(log.lines) == 1 and keys.shard(1).tag in log.lines[0]


def test_a_look_is_quiet_only_when_nothing_waits_and_names_the_next_retry() -> None:
    client = fakeredis.FakeRedis(decode_responses=True)
    keys = RedisKeys("p", "default")
    settings = load_settings({"REDIS_KEY_PREFIX": "p", "PUSHWOOSH_SHARDS": "2"})
    assert pump.look(client, keys, settings, NOW_MS) == pump.Look([], True, None)
    client.zadd(keys.shard(1).retry, {"r": NOW_MS + 60_000, "s": NOW_MS + 30_000})
    assert pump.look(client, keys, settings, NOW_MS) == pump.Look([], True, NOW_MS + 30_000)
    client.xadd(keys.shard(0).stream, {"e": "{}"})
    client.set(keys.shard(0).lease, "someone")  # drained by another task: still not quiet
    assert pump.look(client, keys, settings, NOW_MS) == pump.Look([], False, NOW_MS + 30_000)


def test_no_look_is_quiet_while_the_back_off_holds() -> None:
    client = fakeredis.FakeRedis(decode_responses=True)
    keys = RedisKeys("p", "default")
    settings = load_settings({"REDIS_KEY_PREFIX": "p"})
    client.hset(keys.circuit, "open_until_ms", NOW_MS + 1000)
    assert not pump.look(client, keys, settings, NOW_MS).quiet


@pytest.mark.parametrize(
    ("looks", "wait_ms"),
    [
        ([], 0),
        ([pump.Look([], True, None)], pump.IDLE_WAIT_MS),
        ([pump.Look([], True, None), pump.Look([0], False, None)], 0),
        ([pump.Look([], True, NOW_MS + 300)], 300),
        ([pump.Look([], True, NOW_MS + 5_000), pump.Look([], True, NOW_MS + 400)], 400),
        ([pump.Look([], True, NOW_MS - 5)], 0),
    ],
)
def test_the_pump_waits_for_events_only_when_every_look_was_quiet(
    looks: list[pump.Look], wait_ms: int
) -> None:
    assert pump.idle_wait_ms(looks, NOW_MS) == wait_ms
