"""One pipelined asyncio connection to Redis, for the commands on ingest's request path.

Ingest serves on an event loop (ingest/server.py). redis-py's asyncio client costs about 95 µs
of CPU per command there (measured: a trivial ASGI app answering one XADD per request, 47
round trips of the benchmark's unit per request against 15 without it), more than the HTTP
server and the app together. A lane is what that path needs and no more: one connection per
process, commands packed by hiredis and written in batches, one batch in flight at a time
(requests that publish while Redis answers the previous batch share one system call), replies
parsed by hiredis' reader and handed back in order, since Redis answers a connection's
commands in the order sent.

Failures, each failing only the commands in flight:
- the connection breaks or Redis closes it: every pending command fails with
  redis.ConnectionError, and the next command connects afresh;
- a reply later than the client's socket_timeout: the connection may hold replies nobody will
  read, so it is closed (redis.TimeoutError for everything pending), as redis-py does;
- an error reply is that command's redis.ResponseError (NoScriptError for NOSCRIPT).
A command that failed may have run (a reply lost with the connection): callers make their
commands safe to repeat, as the publish script is through its dedupe.

Only plain TCP and Unix-socket connections get a lane (`for_client` returns None for TLS,
Sentinel and cluster clients, whose callers keep redis-py's synchronous client in a thread).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import Sequence
from typing import Any, Final, cast

import hiredis
import redis
from redis.exceptions import NoScriptError

# The reply watchdog's period: a command later than socket_timeout fails within this of it.
WATCH_INTERVAL_S: Final = 0.25
DEFAULT_TIMEOUT_S: Final = 5.0

_PLAIN_CONNECTIONS: Final = (redis.Connection, redis.UnixDomainSocketConnection)


_loop: list[asyncio.AbstractEventLoop] = []


def running_loop() -> asyncio.AbstractEventLoop:
    """The running event loop, without a system call.

    Python 3.11's `asyncio.get_running_loop` (and `current_task`, which calls it) asks the
    kernel for the process id on every call, to notice a fork: three calls per ingest request
    were 4 % of its profile. A process serves one loop at a time (uvicorn's; a test's, one
    after another), so the loop found once stays the answer while it runs.
    """
    if _loop and _loop[0].is_running():
        return _loop[0]
    loop = asyncio.get_running_loop()
    _loop[:] = [loop]
    return loop


def for_client(client: Any) -> AsyncLane | None:
    """A lane to the Redis `client` talks to, or None where a lane cannot reach it (see above)."""
    pool = getattr(client, "connection_pool", None)
    if type(client) is not redis.Redis or pool is None:
        return None
    if pool.connection_class not in _PLAIN_CONNECTIONS:
        return None
    kwargs = dict(pool.connection_kwargs)
    return AsyncLane(
        host=kwargs.get("host"),
        port=int(kwargs.get("port") or 6379),
        path=kwargs.get("path"),
        db=int(kwargs.get("db") or 0),
        username=kwargs.get("username"),
        password=kwargs.get("password"),
        timeout_s=float(kwargs.get("socket_timeout") or DEFAULT_TIMEOUT_S),
        connect_timeout_s=float(kwargs.get("socket_connect_timeout") or DEFAULT_TIMEOUT_S),
    )


class AsyncLane:
    """A Redis connection for one event loop; commands may be issued concurrently."""

    def __init__(
        self,
        *,
        host: str | None = None,
        port: int = 6379,
        path: str | None = None,
        db: int = 0,
        username: str | None = None,
        password: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        connect_timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self._address = (host, port, path)
        self._hello = _hello_commands(db, username, password)
        self._timeout_s = timeout_s
        self._connect_timeout_s = connect_timeout_s
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Future[_Protocol] | None = None

    async def execute(self, *command: Any) -> Any:
        """Send one command and return its reply; raise redis' exceptions as redis-py does."""
        protocol = self._protocol
        # A connection serves the loop it was made on; one that is not running belongs to a
        # loop gone (a test's), whose transport will never say it closed.
        if protocol is None or protocol.closed or not protocol.loop.is_running():
            protocol = await self._connect()
        return await protocol.send(_pack(command))

    async def evalsha(self, sha: str, text: str, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """EVALSHA, or EVAL with the text after a Redis restart emptied the script cache."""
        try:
            return await self.execute("EVALSHA", sha, len(keys), *keys, *args)
        except NoScriptError:
            return await self.execute("EVAL", text, len(keys), *keys, *args)

    def close(self) -> None:
        if self._protocol is not None:
            self._protocol.fail(redis.ConnectionError("the lane was closed"))
            self._protocol = None

    async def _connect(self) -> _Protocol:
        # Concurrent callers share one attempt: a burst after a restart makes one connection.
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._open())
        connecting = self._connecting
        try:
            protocol = await asyncio.shield(connecting)
        finally:
            if self._connecting is connecting and connecting.done():
                self._connecting = None
        return protocol

    async def _open(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        host, port, path = self._address
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                if path is not None:
                    _, protocol = await loop.create_unix_connection(
                        lambda: _Protocol(self._timeout_s), path
                    )
                else:
                    _, protocol = await loop.create_connection(
                        lambda: _Protocol(self._timeout_s), host or "localhost", port
                    )
                for command in self._hello:
                    await protocol.send(command)
        except TimeoutError as ex:
            raise redis.TimeoutError(f"connecting to Redis timed out: {ex}") from ex
        except OSError as ex:
            raise redis.ConnectionError(f"cannot connect to Redis: {ex}") from ex
        self._protocol = protocol
        return protocol


def _pack(command: tuple[Any, ...]) -> bytes:
    packed: bytes = hiredis.pack_command(command)
    return packed


def _hello_commands(db: int, username: str | None, password: str | None) -> list[bytes]:
    commands = []
    if password is not None:
        auth: tuple[Any, ...] = ("AUTH", username, password) if username else ("AUTH", password)
        commands.append(_pack(auth))
    if db:
        commands.append(_pack(("SELECT", db)))
    return commands


class _Protocol(asyncio.Protocol):
    """The connection: one batch of commands in flight at a time, replies matched in order.

    Commands issued while a batch waits for its replies go out together, in one write, as soon
    as those replies are in: under load a request's command shares its system calls (and
    Redis' read of it) with the others issued meanwhile, and with nothing in flight a command
    leaves at the end of the current turn of the loop, so alone it waits for nothing.
    """

    def __init__(self, timeout_s: float) -> None:
        self._timeout_s = timeout_s
        self._reader = hiredis.Reader(
            protocolError=redis.InvalidResponse, replyError=redis.ResponseError
        )
        self._transport: asyncio.Transport | None = None
        self._pending: collections.deque[tuple[asyncio.Future[Any], float]] = collections.deque()
        self._outgoing: list[bytes] = []
        self._in_flight = 0  # commands written whose replies have not all arrived
        self._watchdog: asyncio.TimerHandle | None = None
        self.closed = False
        self.loop = asyncio.get_running_loop()  # its transport serves this loop only

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self._watch()

    def send(self, packed: bytes) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = self.loop.create_future()
        if self.closed:
            future.set_exception(redis.ConnectionError("the connection to Redis is closed"))
            return future
        if not self._outgoing and not self._in_flight:
            self.loop.call_soon(self._flush)
        self._outgoing.append(packed)
        self._pending.append((future, time.monotonic()))
        return future

    def _flush(self) -> None:
        outgoing, self._outgoing = self._outgoing, []
        if not outgoing or self._transport is None or self.closed:
            return
        self._in_flight += len(outgoing)
        try:
            self._transport.write(outgoing[0] if len(outgoing) == 1 else b"".join(outgoing))
        except (OSError, RuntimeError) as ex:  # RuntimeError: uvloop's closed transport
            self.fail(redis.ConnectionError(f"cannot write to Redis: {ex}"))

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        try:
            while (reply := self._reader.gets()) is not False:
                future, _ = self._pending.popleft()
                self._in_flight -= 1
                if future.done():
                    continue  # its caller was cancelled; the reply is dropped in order
                if isinstance(reply, redis.ResponseError):
                    future.set_exception(_response_error(reply))
                else:
                    future.set_result(reply)
        except (redis.InvalidResponse, IndexError) as ex:
            # A reply nobody asked for, or bytes that are not RESP: the stream is lost.
            self.fail(redis.ConnectionError(f"unexpected data from Redis: {ex!r}"))
            return
        if not self._in_flight and self._outgoing:
            self._flush()  # the batch that waited for these replies

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(redis.ConnectionError(f"connection to Redis lost: {exc or 'closed by server'}"))

    def fail(self, error: redis.RedisError) -> None:
        """Close the connection and fail every command still waiting for its reply."""
        self.closed = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if self._transport is not None:
            self._transport.abort()
        self._outgoing.clear()
        while self._pending:
            future, _ = self._pending.popleft()
            if not future.done():
                future.set_exception(error)

    def _watch(self) -> None:
        """Every WATCH_INTERVAL_S: fail the connection if its oldest command is overdue."""
        if self.closed:
            return
        if self._pending:
            _, sent_at = self._pending[0]
            if time.monotonic() - sent_at > self._timeout_s:
                self.fail(redis.TimeoutError(f"no reply from Redis within {self._timeout_s:g} s"))
                return
        with contextlib.suppress(RuntimeError):  # the loop is closing
            self._watchdog = self.loop.call_later(WATCH_INTERVAL_S, self._watch)


def _response_error(reply: redis.ResponseError) -> redis.ResponseError:
    message = str(reply)
    if message.startswith("NOSCRIPT"):
        return NoScriptError(message)
    return reply
