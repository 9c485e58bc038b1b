"""A Lane runs scripts on connections of its own: never a stale reply, never a lost command."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import pytest
import redis

from store import scripts
from store.scripts import Lane

pytestmark = pytest.mark.integration


class Interrupted(BaseException):
    """What a greenlet's timeout or kill looks like to the code it interrupts."""


def echo_script() -> tuple[str, str]:
    """A script no Redis has cached yet (its text is unique), so its first EVALSHA misses."""
    text = f"-- {uuid.uuid4().hex}\nreturn {{ARGV[1], redis.call('INCR', KEYS[1])}}"
    return hashlib.sha1(text.encode()).hexdigest(), text


@pytest.fixture
def client(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url, socket_timeout=5)


def test_a_script_redis_has_not_cached_runs_once_and_is_cached(
    client: redis.Redis, key_prefix: str
) -> None:
    sha, text = echo_script()
    lane = Lane(client.connection_pool)
    counter = f"{key_prefix}:n"
    assert lane.evalsha(sha, text, [counter], ["a"]) == [b"a", 1]
    assert client.script_exists(sha) == [True]
    assert lane.evalsha(sha, text, [counter], ["b"]) == [b"b", 2]


def test_an_interrupted_command_leaves_no_reply_for_the_next(
    client: redis.Redis, key_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    sha, text = echo_script()
    lane = Lane(client.connection_pool)
    counter = f"{key_prefix}:n"
    lane.evalsha(sha, text, [counter], ["warm"])
    [conn] = lane._idle
    read = conn.read_response
    calls = {"n": 0}

    def interrupted_once(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise Interrupted  # sent, its reply not read
        return read(*args, **kwargs)

    monkeypatch.setattr(conn, "read_response", interrupted_once)
    with pytest.raises(Interrupted):
        lane.evalsha(sha, text, [counter], ["first"])
    # The next command reads its own reply, not the first one's.
    assert lane.evalsha(sha, text, [counter], ["second"]) == [b"second", 3]


def test_a_connection_the_server_closed_is_replaced_and_the_command_runs_once(
    client: redis.Redis, key_prefix: str
) -> None:
    sha, text = echo_script()
    lane = Lane(client.connection_pool)
    counter = f"{key_prefix}:n"
    lane.evalsha(sha, text, [counter], ["warm"])
    [conn] = lane._idle
    conn.send_command("CLIENT", "ID")
    assert client.client_kill_filter(_id=conn.read_response()) == 1
    assert lane.evalsha(sha, text, [counter], ["again"]) == [b"again", 2]
    assert int(client.get(counter) or 0) == 2


def test_an_error_reply_raises_and_the_connection_stays_usable(
    client: redis.Redis, key_prefix: str
) -> None:
    sha, text = echo_script()
    lane = Lane(client.connection_pool)
    counter = f"{key_prefix}:n"
    client.set(counter, "not a number")
    with pytest.raises(redis.ResponseError):
        lane.evalsha(sha, text, [counter], ["x"])
    [conn] = lane._idle
    client.delete(counter)
    assert lane.evalsha(sha, text, [counter], ["y"]) == [b"y", 1]
    assert lane._idle == [conn]


def test_concurrent_callers_each_get_a_connection_of_their_own(
    client: redis.Redis, key_prefix: str
) -> None:
    lane = Lane(client.connection_pool)
    first = lane._take()
    second = lane._take()
    assert first is not second
    lane._give_back(first)
    lane._give_back(second)
    assert lane._take() is second


def test_direct_is_only_for_a_plain_client_without_a_pipeline(
    client: redis.Redis, key_prefix: str
) -> None:
    direct = scripts.script(client, "publish", direct=True)
    assert direct._lane is not None
    assert scripts.script(client, "publish")._lane is None
    stream, sizes = f"{key_prefix}:s", f"{key_prefix}:sizes"
    args = [1, 1000, 0, 60, "webhook", f"{key_prefix}:seen:", 1, 12345, 678, b'{"a":1}']
    assert direct(keys=[stream, sizes], args=args) == [1, 0]
    with client.pipeline(transaction=False) as pipe:
        direct(keys=[stream, sizes], args=args, client=pipe)
        assert pipe.execute() == [[1, 0]]
    assert client.xlen(stream) == 2


def test_the_lane_sends_the_bytes_redis_py_would(
    client: redis.Redis, key_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    sha, text = echo_script()
    lane = Lane(client.connection_pool)
    counter = f"{key_prefix}:n"
    lane.evalsha(sha, text, [counter], ["warm"])
    [conn] = lane._idle
    sent: list[Any] = []
    send = conn.send_packed_command

    def recording(command: Any, check_health: bool = True) -> None:
        sent.append(command)
        send(command, check_health)

    monkeypatch.setattr(conn, "send_packed_command", recording)
    args = ["é", b"\x00\xff", 7, -(2**63)]
    lane.evalsha(sha, text, [counter], args)
    expected = conn.pack_command("EVALSHA", sha, 1, counter, *args)
    assert [b"".join(command) for command in sent] == [b"".join(expected)]
