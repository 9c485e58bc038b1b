"""The async lane: one pipelined connection, replies in order, every failure ends its commands.

Against the real Redis; each test runs its own event loop (uvloop, as ingest does).
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis
import uvloop

from store import async_lane
from store.async_lane import AsyncLane

pytestmark = pytest.mark.integration


def run(main: Callable[[], Awaitable[Any]]) -> Any:
    return uvloop.run(main())  # type: ignore[arg-type]


def lane_for(url: str, **kwargs: Any) -> AsyncLane:
    lane = async_lane.for_client(redis.Redis.from_url(url, **kwargs))
    assert lane is not None
    return lane


def test_concurrent_commands_get_their_own_replies(redis_url: str, key_prefix: str) -> None:
    async def main() -> list[Any]:
        lane = lane_for(redis_url)
        replies = await asyncio.gather(
            *(lane.execute("INCRBY", f"{key_prefix}:n{i % 7}", i) for i in range(500))
        )
        lane.close()
        return replies

    replies = run(main)
    # Each INCRBY's reply is the running total of its own key, so a reply handed to the
    # wrong command would break the sums
    totals: dict[int, int] = {}
    for i, reply in enumerate(replies):
        totals[i % 7] = totals.get(i % 7, 0) + i
        assert reply == totals[i % 7]


def test_an_error_reply_fails_only_its_command(redis_url: str, key_prefix: str) -> None:
    async def main() -> tuple[Any, ...]:
        lane = lane_for(redis_url)
        results = await asyncio.gather(
            lane.execute("SET", f"{key_prefix}:s", "x"),
            lane.execute("INCR", f"{key_prefix}:s"),
            lane.execute("GET", f"{key_prefix}:s"),
            return_exceptions=True,
        )
        lane.close()
        return tuple(results)

    ok, failed, value = run(main)
    assert ok == b"OK" and value == b"x"
    assert isinstance(failed, redis.ResponseError) and "not an integer" in str(failed)


def test_evalsha_falls_back_to_the_text_when_redis_lacks_the_script(
    redis_url: str, key_prefix: str
) -> None:
    text = f"-- {uuid.uuid4().hex}\nreturn redis.call('INCR', KEYS[1])"
    sha = hashlib.sha1(text.encode()).hexdigest()

    async def main() -> list[Any]:
        lane = lane_for(redis_url)
        first = await lane.evalsha(sha, text, [f"{key_prefix}:e"], [])
        second = await lane.evalsha(sha, text, [f"{key_prefix}:e"], [])
        lane.close()
        return [first, second]

    assert run(main) == [1, 2]


def test_a_killed_connection_fails_what_is_pending_and_the_next_command_reconnects(
    redis_url: str, key_prefix: str
) -> None:
    name = f"{key_prefix}-lane"

    async def main() -> tuple[Any, Any]:
        lane = lane_for(redis_url)
        await lane.execute("CLIENT", "SETNAME", name)
        # A command waiting 5 s for a key nobody pushes is pending when the connection dies
        pending = asyncio.ensure_future(lane.execute("BLPOP", f"{key_prefix}:never", 5))
        await asyncio.sleep(0.2)
        admin = redis.Redis.from_url(redis_url)
        (client_id,) = [c["id"] for c in admin.client_list() if c.get("name") == name]
        admin.client_kill_filter(_id=client_id)
        failed = await asyncio.gather(pending, return_exceptions=True)
        after = await lane.execute("PING")
        lane.close()
        return failed[0], after

    failed, after = run(main)
    assert isinstance(failed, redis.ConnectionError), failed
    assert after is True or after == b"PONG"


def test_a_reply_later_than_the_socket_timeout_fails_and_closes_the_connection(
    redis_url: str, key_prefix: str
) -> None:
    async def main() -> tuple[Any, Any, float]:
        lane = lane_for(redis_url, socket_timeout=0.5)
        loop = asyncio.get_running_loop()
        started = loop.time()
        late = await asyncio.gather(
            lane.execute("BLPOP", f"{key_prefix}:never", 3), return_exceptions=True
        )
        waited = loop.time() - started
        # The connection that may still deliver BLPOP's reply is gone: a new one answers
        after = await lane.execute("ECHO", "fresh")
        lane.close()
        return late[0], after, waited

    late, after, waited = run(main)
    assert isinstance(late, redis.TimeoutError), late
    assert after == b"fresh"
    assert waited < 2.5  # failed near the 0.5 s timeout, not when BLPOP gave up at 3 s


def test_credentials_and_database_come_from_the_client(redis_url: str, key_prefix: str) -> None:
    admin = redis.Redis.from_url(redis_url)
    user, password = f"{key_prefix}-user", uuid.uuid4().hex
    admin.acl_setuser(
        user, enabled=True, passwords=[f"+{password}"], keys=["*"], commands=["+@all"]
    )
    try:
        host, port = (
            admin.connection_pool.connection_kwargs["host"],
            admin.connection_pool.connection_kwargs["port"],
        )
        url = f"redis://{user}:{password}@{host}:{port}/3"

        async def main() -> Any:
            lane = lane_for(url)
            await lane.execute("SET", f"{key_prefix}:db3", "here")
            who = await lane.execute("ACL", "WHOAMI")
            lane.close()
            return who

        assert run(main) == user.encode()
        assert redis.Redis(host=host, port=port, db=3).get(f"{key_prefix}:db3") == b"here"
        assert admin.get(f"{key_prefix}:db3") is None
    finally:
        admin.acl_deluser(user)
        redis.Redis(host=host, port=port, db=3).delete(f"{key_prefix}:db3")


def test_a_refused_connection_is_a_connection_error() -> None:
    async def main() -> Any:
        lane = AsyncLane(host="127.0.0.1", port=9, connect_timeout_s=1)
        return (await asyncio.gather(lane.execute("PING"), return_exceptions=True))[0]

    assert isinstance(run(main), redis.ConnectionError)


def test_only_plain_connections_get_a_lane() -> None:
    assert async_lane.for_client(redis.Redis.from_url("redis://127.0.0.1:6379")) is not None
    assert async_lane.for_client(redis.Redis.from_url("unix:///tmp/none.sock")) is not None
    assert async_lane.for_client(redis.Redis.from_url("rediss://127.0.0.1:6379")) is None
