"""The async lane keeps one batch of commands in flight: what is issued meanwhile leaves in one
write when the batch's replies are in, and replies go to their commands in order."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis

from store.async_lane import _Protocol


class Recording:
    """A transport that records writes."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def abort(self) -> None:
        pass


async def _batches() -> tuple[list[bytes], list[Any]]:
    protocol = _Protocol(timeout_s=5)
    transport = Recording()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    first = protocol.send(b"*1\r\n$4\r\nPING\r\n")
    await asyncio.sleep(0)  # the end of this turn: the first command leaves alone
    assert transport.writes == [b"*1\r\n$4\r\nPING\r\n"]
    # While it waits for its reply, three more are issued: nothing is written yet
    later = [protocol.send(b"C%d" % i) for i in range(3)]
    await asyncio.sleep(0)
    assert len(transport.writes) == 1
    # The reply comes: the three leave together, in one write
    protocol.data_received(b"+PONG\r\n")
    assert transport.writes[1:] == [b"C0C1C2"]
    protocol.data_received(b":1\r\n-ERR no\r\n:3\r\n")
    results = await asyncio.gather(first, *later, return_exceptions=True)
    protocol.fail(redis.ConnectionError("done"))
    return transport.writes, results


def test_one_batch_in_flight_the_rest_in_one_write_after_it() -> None:
    writes, results = asyncio.run(_batches())
    assert writes == [b"*1\r\n$4\r\nPING\r\n", b"C0C1C2"]
    assert results[0] == "PONG" or results[0] == b"PONG"
    assert results[1] == 1 and results[3] == 3
    assert isinstance(results[2], redis.ResponseError) and str(results[2]) == "ERR no"


async def _overdue() -> Any:
    protocol = _Protocol(timeout_s=0.1)
    protocol.connection_made(Recording())  # type: ignore[arg-type]
    waiting = protocol.send(b"*1\r\n$4\r\nPING\r\n")
    return (await asyncio.gather(waiting, return_exceptions=True))[0]


@pytest.mark.timeout(10)
def test_a_command_without_a_reply_fails_after_the_timeout() -> None:
    assert isinstance(asyncio.run(_overdue()), redis.TimeoutError)
