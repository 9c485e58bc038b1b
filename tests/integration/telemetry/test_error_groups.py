"""The error groups' script in a real Redis: one hour's hash holds at most MAX_KINDS kinds plus
"other", whatever fails, and expires after a day."""

from __future__ import annotations

import time

import redis

from config.redis_keys import RedisKeys
from telemetry import error_groups
from telemetry.error_groups import ErrorGroups, ErrorKind, read_error_groups
from telemetry.flusher import Flusher


def test_an_hour_holds_a_bounded_number_of_kinds(redis_url: str, key_prefix: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    keys = RedisKeys(key_prefix, "default")
    now_ms = int(time.time() * 1000)
    groups = ErrorGroups(client, keys)
    flusher = Flusher(client, interval_s=3600)
    flusher.add_writer(groups)
    # Given more kinds of failure than an hour keeps, over two flushes
    extra = 10
    for _ in range(2):
        for status in range(error_groups.MAX_KINDS + extra):
            groups.note(ErrorKind("dead_lettered", f"http_{status}", status), 2, now_ms,
                        lambda: {"reply": {"body": "x" * 100}})  # fmt: skip
        flusher.flush()
    # Then the first MAX_KINDS kinds are kept and every further one counted as "other"
    key = keys.errors(now_ms // error_groups.HOUR_MS)
    fields = client.hgetall(key)
    kinds = {name.partition(":")[2] for name in fields if name.startswith("n:")}
    assert len(kinds) == error_groups.MAX_KINDS + 1 == int(fields["kinds"])
    assert int(fields["n:other"]) == 2 * extra and int(fields["e:other"]) == 4 * extra
    assert all(fields[f"n:{kind}"] == "2" for kind in kinds - {"other"})
    assert 24 * 3600 < client.ttl(key) <= error_groups.ERRORS_TTL_S
    # And the page reads every kind back with its sample
    found = read_error_groups(client, keys, now_ms)
    assert len(found) == error_groups.MAX_KINDS + 1
    assert all(group.sample is not None for group in found)
    assert sum(group.calls for group in found) == 2 * (error_groups.MAX_KINDS + extra)
