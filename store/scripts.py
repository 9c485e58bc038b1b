"""The fleet's Lua scripts, one `.lua` file each in `store/lua/`, loaded by one loader.

Each file starts with a header saying what the script does, its KEYS, its ARGV and what it
returns. `script(client, name)` registers the file's text with a client; redis-py then runs it
with EVALSHA and falls back to EVAL after a Redis restart emptied the script cache. In a Redis
Cluster pipeline, where redis-py refuses EVALSHA, it is queued as EVAL with its text (the node
caches it by the same digest).

`script(client, name, direct=True)` runs the script, when called without a pipeline on a plain
(or Sentinel) client, through a `Lane` instead of redis-py's command layers: for the scripts on
every ingest request's and every drain step's path (one lane per client in a process, which
the drain's per-step reads use too). `resend=False`: a lane sends the script at most once, for a
script whose second run would write twice.
"""

from __future__ import annotations

import functools
import os
import select
import threading
import weakref
from collections.abc import Callable, Sequence
from importlib import resources
from typing import Any, Final

import redis
from redis.cluster import ClusterPipeline
from redis.exceptions import NoScriptError

# hiredis' packer and redis-py's serializer that uses it (None without hiredis: redis-py then
# packs in Python, and the lane lets it).
try:
    import hiredis
    from redis.connection import HiredisRespSerializer
except ImportError:
    _hiredis_pack: Any = None
    _HIREDIS: Any = None
else:
    _hiredis_pack = hiredis.pack_command
    _HIREDIS = HiredisRespSerializer

NAMES: Final = (
    "dlq_replay",
    "error_groups",
    "lease_release",
    "lease_renew",
    "publish",
    "rate_limit_acquire",
    "rate_limit_slow_down",
    "settle",
    "trace_append",
)


@functools.cache
def source(name: str) -> str:
    """The text of `store/lua/<name>.lua`; KeyError for a script that does not exist."""
    if name not in NAMES:
        raise KeyError(f"no Lua script {name!r}; known: {', '.join(NAMES)}")
    return resources.files("store").joinpath("lua", f"{name}.lua").read_text(encoding="utf-8")


class Script:
    """A registered script, called as redis-py's are: `script(keys=..., args=..., client=pipe)`."""

    def __init__(
        self, client: Any, name: str, *, direct: bool = False, resend: bool = True
    ) -> None:
        self.name = name
        self._text = source(name)
        self._registered = client.register_script(self._text)
        self._lane = lane_for(client) if direct else None
        self._resend = resend

    @property
    def text(self) -> str:
        return self._text

    @property
    def sha(self) -> str:
        """The digest Redis knows the script by (EVALSHA)."""
        return str(self._registered.sha)

    def __call__(
        self, keys: Sequence[Any] = (), args: Sequence[Any] = (), client: Any = None
    ) -> Any:
        if isinstance(client, ClusterPipeline):
            return client.execute_command("EVAL", self._text, len(keys), *keys, *args)
        if client is None and self._lane is not None:
            sha = self._registered.sha
            return self._lane.evalsha(sha, self._text, keys, args, resend=self._resend)
        return self._registered(keys=keys, args=args, client=client)

    def reconnect(self) -> None:
        """The lane's next call connects afresh (through Sentinel: to the primary it names
        now). For a caller whose script read something that says its connection may be to a
        primary demoted to a replica since, which only a write would have made fail."""
        if self._lane is not None:
            self._lane.close_idle()


def script(client: Any, name: str, *, direct: bool = False, resend: bool = True) -> Script:
    """The script registered with `client` (a redis.Redis or cluster client).

    `direct`: run it through the client's `Lane` when called without a pipeline (see there).
    `resend` False: the lane does not send it again after a connection error (redis-py's retry
    policy would), for a script that must not run twice; the error is raised instead.
    """
    return Script(client, name, direct=direct, resend=resend)


_lanes_lock = threading.Lock()
_lanes: weakref.WeakKeyDictionary[Any, Lane] = weakref.WeakKeyDictionary()


def lane_for(client: Any) -> Lane | None:
    """The process's one lane on a plain (or Sentinel) client, shared by every caller, so
    callers made often (a drain task per shard and slice) reuse its connections; None for a
    cluster client (it has no pool: it routes each command itself)."""
    pool = getattr(client, "connection_pool", None)
    if not isinstance(client, redis.Redis) or pool is None:
        return None
    with _lanes_lock:
        lane = _lanes.get(client)
        if lane is None:
            lane = _lanes[client] = Lane(pool)
        return lane


class Lane:
    """Connections made by a client's pool, each used by one caller at a time, for EVALSHA
    and the drain's per-step reads.

    What redis-py does around every command cost more CPU than the command itself on ingest's
    request path: handing out a pooled connection, it polls the socket for unread data or a
    close by the server (when ingest ran under gevent, an emulated poll that created, started
    and stopped an event-loop watcher), takes the pool's lock and records observability
    counters; then come the command's wrapper layers. Measured in a gevent-patched process
    against a local Redis: about 105 µs of client CPU per EVALSHA of the publish script, 31 µs
    through a lane.

    A lane makes the same check with one poll of its own, which never blocks with a timeout
    of 0; a connection that is readable before a command (the server closed it, or it holds
    bytes nobody asked for) is reconnected, as the pool does.
    Commands go through each connection's own methods, so its health check (a PING after
    health_check_interval idle), timeouts, Sentinel's choice of the primary and the client's
    retry policy apply as before. Any error but an error reply disconnects the connection (it
    may hold an unread reply), so the next command never reads another's reply.
    """

    def __init__(self, pool: Any) -> None:
        self._pool = pool
        self._idle: list[Any] = []
        self._pid = os.getpid()

    def evalsha(
        self,
        sha: str,
        text: str,
        keys: Sequence[Any],
        args: Sequence[Any],
        *,
        resend: bool = True,
    ) -> Any:
        """EVALSHA, or EVAL with the text after a Redis restart emptied the script cache.

        `resend` False: sent at most once; a connection error (after which the script may or
        may not have run) is raised, not retried.
        """
        return self._on_a_connection(
            lambda conn: _evalsha(conn, sha, text, keys, args), resend=resend
        )

    def execute(self, *command: Any) -> Any:
        """One command, as `client.execute_command` would send it, answered unparsed (the
        RESP2 reply as the connection reads it); sent again after a connection error as
        redis-py would (the client's retry policy), so only for commands safe to repeat."""
        return self._on_a_connection(lambda conn: _call(conn, command))

    def execute_many(self, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
        """Commands sent in one write, their replies read in order, unparsed; an error reply
        is returned in its command's place (as redis-py's `execute(raise_on_error=False)`
        does), so one broken key does not hide the other replies. Sent again after a
        connection error, as `execute`: only for commands safe to repeat."""
        replies: list[Any] = self._on_a_connection(lambda conn: _call_many(conn, commands))
        return replies

    def _on_a_connection(self, send: Callable[[Any], Any], *, resend: bool = True) -> Any:
        """`send(conn)` on an idle connection (sent again after a connection error, under the
        client's retry policy, unless `resend` is False). An error reply leaves nothing unread
        and the connection is kept; any other failure may leave a reply unread, so the
        connection is closed (it reconnects on its next command)."""
        conn = self._take()
        try:
            if resend:
                reply = conn.retry.call_with_retry(
                    lambda: send(conn), lambda _error: conn.disconnect()
                )
            else:
                reply = send(conn)
        except redis.ResponseError:
            self._give_back(conn)  # the error was the reply: nothing is left unread
            raise
        except BaseException:
            conn.disconnect()
            self._give_back(conn)
            raise
        self._give_back(conn)
        return reply

    def _take(self) -> Any:
        if self._pid != os.getpid():  # forked: the parent's sockets are not ours
            self._idle, self._pid = [], os.getpid()
        try:
            conn = self._idle.pop()  # the most recently used: its socket is the warmest
        except IndexError:
            return self._pool.make_connection()
        if self._readable(conn):
            conn.disconnect()  # the next command connects afresh
        return conn

    def _readable(self, conn: Any) -> bool:
        """True when an idle connection has something to read: data, or the server's close."""
        sock = getattr(conn, "_sock", None)
        if sock is None:
            return False  # not connected: sending connects it
        if hasattr(sock, "pending") and sock.pending():  # TLS: decrypted bytes buffered
            return True
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN)
        return bool(poller.poll(0))

    def _give_back(self, conn: Any) -> None:
        self._idle.append(conn)

    def close_idle(self) -> None:
        """Disconnect the idle connections (one in use is left to its caller)."""
        while True:
            try:
                conn = self._idle.pop()
            except IndexError:
                return
            conn.disconnect()


def _evalsha(conn: Any, sha: str, text: str, keys: Sequence[Any], args: Sequence[Any]) -> Any:
    _send(conn, ("EVALSHA", sha, len(keys), *keys, *args))
    try:
        return conn.read_response()
    except NoScriptError:
        _send(conn, ("EVAL", text, len(keys), *keys, *args))
        return conn.read_response()


def _call(conn: Any, command: tuple[Any, ...]) -> Any:
    _send(conn, command)
    return conn.read_response()


def _call_many(conn: Any, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
    if not commands:
        return []
    _send(conn, *commands)
    replies: list[Any] = []
    for _ in commands:
        try:
            replies.append(conn.read_response())
        except redis.ResponseError as ex:
            replies.append(ex)
    return replies


def _send(conn: Any, *commands: tuple[Any, ...]) -> None:
    """`commands` in one write, packed by hiredis directly where redis-py would use it.

    redis-py's hiredis packer hands the arguments to `hiredis.pack_command` after copying them
    through a generator (for the bytearrays and memoryviews the lane never sends): about 5 of its
    8 µs for the publish script's arguments. The bytes sent are the same. And redis-py sends
    each item of the list it is handed with a sendall of its own (and a poll before each):
    several commands are joined into one buffer first, one system call for the pump's look
    instead of nine.

    An unconnected connection is first connected by its own `connect`, as the pool does when
    it hands one out: Sentinel's asks the sentinels for the primary there, where sending alone
    would connect to the connection's default address (localhost:6379).
    """
    if getattr(conn, "_sock", None) is None:
        conn.connect()
    if _hiredis_pack is not None and type(getattr(conn, "_command_packer", None)) is _HIREDIS:
        packed = [_hiredis_pack(command) for command in commands]
        conn.send_packed_command([packed[0] if len(packed) == 1 else b"".join(packed)])
    else:
        conn.send_packed_command(conn.pack_commands(commands))
