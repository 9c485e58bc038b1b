"""Sending requests to Pushwoosh: keep-alive connections held to a deadline, or the dry-run sink.

`send` never raises for HTTP or network trouble: it returns a `Reply`, and
`worker.policy.classify` decides what the reply means. The API key is added to the headers here,
at the last moment, and never appears in anything this module logs or returns.
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import logging
import select
import socket
import ssl
import threading
import time
from typing import Any, Protocol
from urllib.parse import urlsplit

import httptools

from config import fastjson
from config.settings import Settings
from worker.deadline import WATCHDOG, Watchdog
from worker.wire import DRY_RUN_APP_CODE, Endpoint

logger = logging.getLogger(__name__)

MAX_REPLY_BODY_CHARS = 2000
# Pushwoosh's replies are small; a reply larger than this is cut (and its connection closed).
MAX_REPLY_BODY_BYTES = 64 * 1024
__all__ = ["DRY_RUN_APP_CODE", "DRY_RUN_BANNER", "Reply", "Sender", "make_sender"]


@dataclasses.dataclass(frozen=True)
class Reply:
    status: int | None
    body: str = ""
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    transport_error: str | None = None
    elapsed_s: float = 0.0


class Sender(Protocol):
    def send(
        self,
        path: str,
        body: dict[str, Any],
        deadline_s: float | None = None,
        *,
        data: bytes | None = None,
    ) -> Reply:
        """Send one request; give up after deadline_s seconds (or the configured timeout).
        `data`, when given, is `body` already encoded (sent as it is)."""


class PushwooshClient:
    """Real delivery over keep-alive connections, each send held to a hard deadline.

    `send(path, body, deadline_s)` gives up at `deadline_s` seconds from now whatever the
    server does (a reply trickled a byte at a time included): the watchdog shuts the socket
    down, the send returns a "timed out" reply, and the connection is not reused. The drain
    passes a deadline shorter than its lease has left, so a send never outlives the lease.

    Requests are written whole, head and body in one send, the head prepared once per path;
    replies are parsed by httptools (llhttp, the parser uvicorn and Node use): content length,
    chunked and close-delimited bodies, keep-alive as the server says. http.client cost about
    three times the CPU per request, most of it in parsing the reply's headers with the email
    package. Drain tasks run on several threads of one worker (Celery's threads pool): each
    thread keeps its own connection.
    """

    def __init__(self, settings: Settings, watchdog: Watchdog = WATCHDOG) -> None:
        self._settings = settings
        self._endpoint = Endpoint.of(settings)
        self._watchdog = watchdog
        self._per_thread = threading.local()
        target = urlsplit(self._endpoint.url(""))
        self._https = target.scheme == "https"
        self._host = target.hostname or ""
        self._port = target.port or (443 if self._https else 80)
        self._base_path = target.path
        host = f"[{self._host}]" if ":" in self._host else self._host
        if target.port is not None:
            host += f":{target.port}"
        headers = {"Host": host, "Accept-Encoding": "identity"}
        headers |= self._endpoint.headers(reveal_secrets=True)
        self._header_lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        self._heads: dict[str, bytes] = {}

    def _head(self, path: str, length: int) -> bytes:
        """The request line and headers for `path`, with its Content-Length."""
        start = self._heads.get(path)
        if start is None:
            target = self._base_path + path.lstrip("/")
            start = f"POST {target} HTTP/1.1\r\n{self._header_lines}".encode()
            self._heads[path] = start
        return b"%sContent-Length: %d\r\n\r\n" % (start, length)

    def _connection(self, timeout_s: float) -> socket.socket:
        sock: socket.socket | None = getattr(self._per_thread, "sock", None)
        if sock is not None and _dropped(sock):
            self._drop_connection()  # the server closed it while idle: open a fresh one
            sock = None
        if sock is None:
            sock = socket.create_connection((self._host, self._port), timeout=timeout_s)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._https:
                context = ssl.create_default_context()
                sock = context.wrap_socket(sock, server_hostname=self._host)
            self._per_thread.sock = sock
        return sock

    def _drop_connection(self) -> None:
        sock = getattr(self._per_thread, "sock", None)
        self._per_thread.sock = None
        if sock is not None:
            sock.close()

    def send(
        self,
        path: str,
        body: dict[str, Any],
        deadline_s: float | None = None,
        *,
        data: bytes | None = None,
    ) -> Reply:
        started = time.monotonic()
        limit_s = self._settings.pushwoosh_timeout_s
        if deadline_s is not None:
            limit_s = min(limit_s, deadline_s)
        if data is None:
            data = fastjson.dumps(body)
        in_use: list[socket.socket] = []

        def cut_off() -> None:
            for sock in in_use:
                sock.shutdown(socket.SHUT_RDWR)

        try:
            with self._watchdog.guard(started + max(0.0, limit_s), cut_off):
                status, text, headers = self._exchange(in_use, path, data, started, limit_s)
        except TimeoutError:
            self._drop_connection()
            return Reply(None, transport_error="timed out", elapsed_s=time.monotonic() - started)
        except (OSError, httptools.HttpParserError) as ex:
            self._drop_connection()
            elapsed_s = time.monotonic() - started
            if elapsed_s >= limit_s:  # the watchdog cut it off
                return Reply(None, transport_error="timed out", elapsed_s=elapsed_s)
            # The exception text can carry the URL but never the headers; keep only its class.
            return Reply(
                None, transport_error=f"connection error ({type(ex).__name__})", elapsed_s=elapsed_s
            )
        return Reply(status, text, headers, elapsed_s=time.monotonic() - started)

    def _exchange(
        self,
        in_use: list[socket.socket],
        path: str,
        data: bytes,
        started: float,
        limit_s: float,
    ) -> tuple[int, str, dict[str, str]]:
        sock = self._connection(max(0.001, limit_s))
        in_use.append(sock)
        sock.settimeout(max(0.001, limit_s - (time.monotonic() - started)))
        sock.sendall(self._head(path, len(data)) + data)
        reply = _ReplyReader()
        parser = reply.parser = httptools.HttpResponseParser(reply)
        while not reply.complete and not reply.too_large:
            chunk = sock.recv(_READ_BYTES)
            if not chunk:
                if not reply.ends_at_close():
                    raise http.client.RemoteDisconnected("the reply ended early")
                reply.complete = True
                self._drop_connection()  # a reply read to the close: nothing more comes
                break
            parser.feed_data(chunk)
        # Only so much of a reply is kept; a larger one is not read to its end, so the
        # connection cannot be reused.
        if reply.too_large or not reply.keep_alive:
            self._drop_connection()
        raw = b"".join(reply.body)
        text = raw[:MAX_REPLY_BODY_BYTES].decode("utf-8", "replace")[:MAX_REPLY_BODY_CHARS]
        return parser.get_status_code(), text, reply.headers


_READ_BYTES = 64 * 1024


class _ReplyReader:
    """httptools' callbacks: a reply's headers and body, its body kept to MAX_REPLY_BODY_BYTES."""

    __slots__ = (
        "body", "complete", "headers", "headers_done", "keep_alive", "parser", "size", "too_large"
    )  # fmt: skip

    def __init__(self) -> None:
        self.headers: dict[str, str] = {}
        self.body: list[bytes] = []
        self.size = 0
        self.headers_done = self.complete = self.too_large = self.keep_alive = False
        self.parser: httptools.HttpResponseParser | None = None

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1")] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self.headers_done = True

    def on_body(self, body: bytes) -> None:
        self.size += len(body)
        self.body.append(body)
        if self.size > MAX_REPLY_BODY_BYTES:
            self.too_large = True

    def on_message_complete(self) -> None:
        if self.parser is not None and self.parser.get_status_code() < 200:
            # An interim answer (100 Continue, 103 Early Hints): the reply follows it.
            self.headers, self.body, self.size, self.headers_done = {}, [], 0, False
            return
        self.complete = True
        # What the reply says of its connection, read now: the parser forgets it afterwards.
        self.keep_alive = self.parser is not None and self.parser.should_keep_alive()

    def ends_at_close(self) -> bool:
        """Whether the server's close ends this reply: its headers are in, and it has neither a
        length nor chunks (HTTP/1.1 then reads the body to the close)."""
        if not self.headers_done:
            return False
        names = {name.lower(): value for name, value in self.headers.items()}
        return (
            "content-length" not in names
            and "chunked" not in names.get("transfer-encoding", "").lower()
        )


def _dropped(sock: socket.socket) -> bool:
    """An idle keep-alive socket that is readable was closed by the server (or sent garbage).
    poll, not select: select cannot watch a descriptor numbered 1024 or more."""
    try:
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return True


class DryRunSink:
    """No credentials (or PUSHWOOSH_DRY_RUN=true): log each request instead of sending it."""

    def __init__(self, settings: Settings) -> None:
        self._endpoint = Endpoint.of(settings)

    def send(
        self,
        path: str,
        body: dict[str, Any],
        deadline_s: float | None = None,
        *,
        data: bytes | None = None,
    ) -> Reply:
        events = body.get("events")
        logger.info(
            "DRY RUN: would POST %s (%s) %s",
            self._endpoint.url(path),
            f"{len(events)} events" if isinstance(events, list) else "1 call",
            json.dumps(body, separators=(",", ":"), ensure_ascii=False)[:1000],
        )
        return Reply(status=200)


def make_sender(settings: Settings) -> Sender:
    if settings.dry_run:
        return DryRunSink(settings)
    return PushwooshClient(settings)


DRY_RUN_BANNER = (
    "\n"
    "************************************************************************\n"
    "*  DRY RUN: no Pushwoosh credentials (PUSHWOOSH_API_KEY and            *\n"
    "*  PUSHWOOSH_APPLICATION_CODE), or PUSHWOOSH_DRY_RUN=true.             *\n"
    "*  Nothing is sent to Pushwoosh; every request is logged instead.      *\n"
    "************************************************************************"
)
