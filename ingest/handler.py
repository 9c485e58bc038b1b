"""One POST to an ingest route, from its headers and body to stored events.

The front (ingest/front.py) hands each POST over as a `Posted`: the few headers ingest reads,
and the ASGI `receive` its body comes from. Everything a request may be refused for is
decided here, as an IngestError (ingest/errors.py); the front turns it into the answer.
"""

from __future__ import annotations

import asyncio
import logging
import time
import zlib
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from datetime import datetime
from typing import Any, Final

from config.settings import Settings
from ingest import events
from ingest.deadlines import BodyDeadlines
from ingest.errors import (
    BadRequest,
    ClientGone,
    PayloadTooLarge,
    QueueFull,
    RequestTimeout,
    UnsupportedMediaType,
)
from ingest.routing import Router
from ingest.telemetry import IngestTelemetry
from store.async_lane import running_loop

logger = logging.getLogger(__name__)

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]

# The request headers ingest reads; no other is decoded.
READ_HEADERS: Final = frozenset(
    {
        b"authorization",
        b"content-encoding",
        b"content-length",
        b"content-type",
        b"origin",
        b"x-retry-count",
        b"x-signature",
    }
)
# Repeated, these keep their last value (as falcon reads them: a list makes no sense for
# them); any other repeated header is read as its values joined by commas, as HTTP says.
_SINGLE_VALUED: Final = frozenset({b"content-length", b"content-type"})

# application/json and any +json type; text/plain because browser senders use it
# (sendBeacon, no CORS preflight) while still sending JSON.
_TEXT_TYPES = ("application/json", "text/plain")
_GZIP = ("gzip", "x-gzip")
_GZIP_WBITS = 16 + zlib.MAX_WBITS  # gzip header and trailer, not raw deflate
# After the publish script finds a destination's backlog full, its requests are refused for this
# long before they are validated (the backlog drains in seconds at best; Retry-After says 5).
_FULL_MEMORY_S = 1.0


class Posted:
    """A POST as the handler reads it; the handler notes what the front's metrics need."""

    __slots__ = ("_headers", "_receive", "destination", "event_count", "stored")

    def __init__(self, headers: Iterable[tuple[bytes, bytes]], receive: Receive) -> None:
        read: dict[bytes, bytes] = {}
        for name, value in headers:  # ASGI: names already lower-case
            if name in READ_HEADERS:
                if name in read and name not in _SINGLE_VALUED:
                    read[name] += b"," + value
                else:
                    read[name] = value
        self._headers = read
        self._receive = receive
        self.destination: str | None = None
        self.event_count = 0
        self.stored = False

    def header(self, name: bytes) -> str | None:
        """A header's value (`name` lower-case, one of READ_HEADERS), or None without it."""
        value = self._headers.get(name)
        return None if value is None else value.decode("latin-1")

    async def read(self, max_bytes: int) -> list[bytes]:
        """The body as the server hands it over (chunked framing already decoded), refused as
        soon as it passes max_bytes. A single event is one piece."""
        chunks = []
        total = 0
        receive = self._receive
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientGone("the client disconnected before its body arrived")
            chunk = message.get("body", b"")
            if chunk:
                total += len(chunk)
                if total > max_bytes:
                    raise PayloadTooLarge(_too_large(max_bytes))
                chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks


class IngestHandler:
    """Reads, authenticates, parses and publishes one POST; raises IngestError to refuse it."""

    def __init__(
        self,
        settings: Settings,
        router: Router,
        clock: Callable[[], datetime],
        new_message_id: Callable[[], str],
        telemetry: IngestTelemetry,
    ) -> None:
        self.telemetry = telemetry
        self.settings = settings
        self.router = router
        self.clock = clock
        self.new_message_id = new_message_id
        self.body_deadlines = BodyDeadlines(settings.ingest_body_timeout_s)
        self.limits = events.Limits(
            max_event_bytes=settings.ingest_max_event_bytes,
            max_batch_events=settings.ingest_max_batch_events,
        )
        # Destination -> until when (monotonic) its backlog is taken as still full.
        self._full_until: dict[str, float] = {}

    def _shed_if_full(self, destination: str) -> None:
        """429 before validating anything while the destination's backlog was just found full.

        The publish script decides what is stored (it measures the backlog atomically); this
        only spares a full fleet the work of validating requests it is about to refuse.
        """
        until = self._full_until.get(destination)
        if until is not None:
            if time.monotonic() < until:
                raise QueueFull("refused unvalidated: the backlog was full a moment ago")
            del self._full_until[destination]

    async def handle(self, req: Posted, route: str, kind: str | None) -> int:
        """Store the request's events; the number accepted (repeats are not)."""
        received_at = self.clock()
        _check_content_type(req.header(b"content-type"))
        raw = await _read_body(req, self.settings.ingest_max_request_bytes, self.body_deadlines)
        body = events.decode_json(raw)
        routed = self.router.route(
            authorization=req.header(b"authorization"),
            signature=req.header(b"x-signature"),
            raw_body=raw,
            body=body,
        )
        method = routed.credential.method
        req.destination = routed.destination
        retry_count = req.header(b"x-retry-count")
        if retry_count:
            logger.info("%s: sender retry %.20s (auth: %s)", route, retry_count, method)
        self._shed_if_full(routed.destination)
        # Deletes need privilege: a profile deletion cannot be undone, and write keys ship
        # inside apps. The parser refuses a request holding one whole, before validating it.
        may_delete = routed.credential.privileged
        if route == "webhook":
            parsed = events.parse_webhook(
                body, received_at, self.new_message_id, limits=self.limits, may_delete=may_delete
            )
        else:
            parsed = events.parse_v1(
                kind, body, received_at, self.new_message_id, limits=self.limits,
                may_delete=may_delete,
            )  # fmt: skip
        req.event_count = len(parsed)
        try:
            result = await routed.publisher.publish_async(parsed, route, routed.credential.sender)
        except QueueFull:
            self._full_until[routed.destination] = time.monotonic() + _FULL_MEMORY_S
            raise
        req.stored = True
        self.telemetry.published(
            routed.destination, route, parsed, result.accepted, result.duplicates
        )
        if result.duplicates:
            logger.info("%s: %d duplicate events skipped", route, result.duplicates)
        return result.accepted


def _check_content_type(content_type: str | None) -> None:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media in _TEXT_TYPES or (media.startswith("application/") and media.endswith("+json")):
        return
    raise UnsupportedMediaType(
        f"Content-Type must be application/json, not {media[:60]!r}"
        if media
        else "Content-Type must be application/json"
    )


def _content_length(value: str | None) -> int | None:
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise BadRequest("Content-Length must be a number", code="invalid_header") from None


async def _read_body(req: Posted, max_bytes: int, deadlines: BodyDeadlines) -> bytes:
    """The body, decompressed; refused as soon as it passes max_bytes, before reading it all.

    The whole body must arrive within `deadlines.timeout_s` of the headers (the app is called
    when they are in): a client trickling its body gets 408 and its connection is closed.
    """
    encoding = (req.header(b"content-encoding") or "identity").strip().lower()
    if encoding not in ("identity", *_GZIP):
        raise UnsupportedMediaType(
            f"Content-Encoding {encoding[:40]!r} is not supported; use gzip or none",
            code="unsupported_encoding",
        )
    length = _content_length(req.header(b"content-length"))
    if length is not None and length > max_bytes:
        raise PayloadTooLarge(_too_large(max_bytes))
    loop = running_loop()
    task = asyncio.current_task(loop)
    assert task is not None
    deadlines.start(task, loop)
    try:
        chunks = await req.read(max_bytes)
    except asyncio.CancelledError:
        if not deadlines.stop(task):
            raise  # cancelled by someone else: not ours to swallow
        task.uncancel()
        raise RequestTimeout(
            f"the request body did not arrive within {deadlines.timeout_s:g} s"
        ) from None
    finally:
        deadlines.stop(task)
    if encoding in _GZIP:
        return _gunzip(chunks, max_bytes)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _gunzip(chunks: list[bytes], max_bytes: int) -> bytes:
    """Inflate incrementally, never holding more than max_bytes + 1: a gzip bomb stops early."""
    inflater = zlib.decompressobj(_GZIP_WBITS)
    out = bytearray()
    try:
        for chunk in chunks:
            data = chunk
            while True:
                if inflater.eof:
                    if not data:
                        break
                    # Bytes after the end of a member start another: concatenated gzip members
                    # are one valid gzip stream.
                    inflater = zlib.decompressobj(_GZIP_WBITS)
                piece = inflater.decompress(data, max_bytes + 1 - len(out))
                out += piece
                if len(out) > max_bytes:
                    raise PayloadTooLarge(_too_large(max_bytes, decompressed=True))
                data = inflater.unused_data if inflater.eof else inflater.unconsumed_tail
                if not data and not piece:
                    break
    except zlib.error as ex:
        raise BadRequest(f"body is not valid gzip: {ex}", code="invalid_gzip") from ex
    if not inflater.eof:
        raise BadRequest("gzip body is truncated", code="invalid_gzip")
    return bytes(out)


def _too_large(max_bytes: int, *, decompressed: bool = False) -> str:
    what = "decompressed request body" if decompressed else "request body"
    return f"the {what} is over the limit of {max_bytes} bytes per request"
