"""A Lane runs scripts on connections of its own: never a stale reply, never a lost command."""

from __future__ import annotations

import dataclasses
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


@dataclasses.dataclass
class Echo:
    """A lane on the test's Redis, and a script it has not run yet that echoes and counts."""

    lane: Lane
    sha: str
    text: str
    counter: str

    def run(self, value: Any) -> Any:
        return self.lane.evalsha(self.sha, self.text, [self.counter], [value])


@pytest.fixture
def echo(client: redis.Redis, key_prefix: str) -> Echo:
    sha, text = echo_script()
    return Echo(Lane(client.connection_pool), sha, text, f"{key_prefix}:n")


def test_a_script_redis_has_not_cached_runs_once_and_is_cached(
    client: redis.Redis, echo: Echo
) -> None:
    assert echo.run("a") == [b"a", 1]
    assert client.script_exists(echo.sha) == [True]
    assert echo.run("b") == [b"b", 2]


def test_an_interrupted_command_leaves_no_reply_for_the_next(
    echo: Echo, monkeypatch: pytest.MonkeyPatch
) -> None:
    echo.run("warm")
    [conn] = echo.lane._idle
    read = conn.read_response
    calls = {"n": 0}

    def interrupted_once(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise Interrupted  # sent, its reply not read
        return read(*args, **kwargs)

    monkeypatch.setattr(conn, "read_response", interrupted_once)
    with pytest.raises(Interrupted):
        echo.run("first")
    # The next command reads its own reply, not the first one's.
    assert echo.run("second") == [b"second", 3]


def test_a_connection_the_server_closed_is_replaced_and_the_command_runs_once(
    client: redis.Redis, echo: Echo
) -> None:
    echo.run("warm")
    [conn] = echo.lane._idle
    conn.send_command("CLIENT", "ID")
    assert client.client_kill_filter(_id=conn.read_response()) == 1
    assert echo.run("again") == [b"again", 2]
    assert int(client.get(echo.counter) or 0) == 2


def test_an_error_reply_raises_and_the_connection_stays_usable(
    client: redis.Redis, echo: Echo
) -> None:
    client.set(echo.counter, "not a number")
    with pytest.raises(redis.ResponseError):
        echo.run("x")
    [conn] = echo.lane._idle
    client.delete(echo.counter)
    assert echo.run("y") == [b"y", 1]
    assert echo.lane._idle == [conn]


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
    echo: Echo, monkeypatch: pytest.MonkeyPatch
) -> None:
    echo.run("warm")
    [conn] = echo.lane._idle
    sent: list[Any] = []
    send = conn.send_packed_command

    def recording(command: Any, check_health: bool = True) -> None:
        sent.append(command)
        send(command, check_health)

    monkeypatch.setattr(conn, "send_packed_command", recording)
    args = ["é", b"\x00\xff", 7, -(2**63)]
    echo.lane.evalsha(echo.sha, echo.text, [echo.counter], args)
    expected = conn.pack_command("EVALSHA", echo.sha, 1, echo.counter, *args)
    assert [b"".join(command) for command in sent] == [b"".join(expected)]


def test_commands_sent_together_answer_in_order_with_errors_in_place(
    client: redis.Redis, key_prefix: str
) -> None:
    # Given a key of the wrong type among keys that can be read
    client.set(f"{key_prefix}:text", "x")
    client.rpush(f"{key_prefix}:list", "a", "b")
    lane = Lane(client.connection_pool)
    # When one command of several fails
    replies = lane.execute_many(
        [
            ("LLEN", f"{key_prefix}:list"),
            ("LLEN", f"{key_prefix}:text"),
            ("GET", f"{key_prefix}:text"),
        ]
    )
    # Then its error stands in its place and the others are answered, and the lane goes on
    assert replies[0] == 2 and replies[2] == b"x"
    assert isinstance(replies[1], redis.ResponseError)
    assert lane.execute("LLEN", f"{key_prefix}:list") == 2


def test_commands_sent_together_leave_in_one_write(
    client: redis.Redis, key_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a lane with a connection made (its handshake sent), which counts what it sends
    lane = Lane(client.connection_pool)
    lane.execute("PING")
    writes: list[int] = []
    conn_class = client.connection_pool.connection_class
    send = conn_class.send_packed_command

    def counted(self: Any, command: Any, check_health: bool = True) -> None:
        writes.append(len(command) if isinstance(command, list) else 1)
        send(self, command, check_health)

    monkeypatch.setattr(conn_class, "send_packed_command", counted)
    # When three commands go together
    replies = lane.execute_many([("EXISTS", f"{key_prefix}:{n}") for n in range(3)])
    # Then they left as one buffer, and each has its reply
    assert writes == [1] and replies == [0, 0, 0]
