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

    Drain tasks run on several threads of one worker (Celery's threads pool): each thread keeps
    its own connection (http.client connections are not shared between threads).
    """

    def __init__(self, settings: Settings, watchdog: Watchdog = WATCHDOG) -> None:
        self._settings = settings
        self._endpoint = Endpoint.of(settings)
        self._headers = self._endpoint.headers(reveal_secrets=True)
        self._watchdog = watchdog
        self._per_thread = threading.local()
        target = urlsplit(self._endpoint.url(""))
        self._https = target.scheme == "https"
        self._host = target.hostname or ""
        self._port = target.port
        self._base_path = target.path

    def _connection(self) -> http.client.HTTPConnection:
        connection: http.client.HTTPConnection | None = getattr(self._per_thread, "conn", None)
        if connection is not None and _dropped(connection):
            self._drop_connection()  # the server closed it while idle: open a fresh one
            connection = None
        if connection is None:
            timeout = self._settings.pushwoosh_timeout_s
            if self._https:
                connection = http.client.HTTPSConnection(
                    self._host, self._port, timeout=timeout, context=ssl.create_default_context()
                )
            else:
                connection = http.client.HTTPConnection(self._host, self._port, timeout=timeout)
            self._per_thread.conn = connection
        return connection

    def _drop_connection(self) -> None:
        connection = getattr(self._per_thread, "conn", None)
        self._per_thread.conn = None
        if connection is not None:
            connection.close()

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
        connection = self._connection()

        def cut_off() -> None:
            sock = connection.sock
            if sock is not None:
                sock.shutdown(socket.SHUT_RDWR)

        try:
            with self._watchdog.guard(started + max(0.0, limit_s), cut_off):
                status, text, headers = self._exchange(connection, path, data, started, limit_s)
        except TimeoutError:
            self._drop_connection()
            return Reply(None, transport_error="timed out", elapsed_s=time.monotonic() - started)
        except (OSError, http.client.HTTPException) as ex:
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
        connection: http.client.HTTPConnection,
        path: str,
        data: bytes,
        started: float,
        limit_s: float,
    ) -> tuple[int, str, dict[str, str]]:
        connection.timeout = max(0.001, limit_s)
        if connection.sock is not None:
            connection.sock.settimeout(max(0.001, limit_s - (time.monotonic() - started)))
        connection.request("POST", self._base_path + path, body=data, headers=self._headers)
        response = connection.getresponse()
        # Only so much of a reply is kept; a larger one is not read to its end, so the
        # connection cannot be reused.
        raw = response.read(MAX_REPLY_BODY_BYTES + 1)
        if len(raw) > MAX_REPLY_BODY_BYTES or not response.isclosed():
            self._drop_connection()
        text = raw[:MAX_REPLY_BODY_BYTES].decode("utf-8", "replace")[:MAX_REPLY_BODY_CHARS]
        return response.status, text, dict(response.getheaders())


def _dropped(connection: http.client.HTTPConnection) -> bool:
    """An idle keep-alive socket that is readable was closed by the server (or sent garbage)."""
    sock = connection.sock
    if sock is None:
        return False
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


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
