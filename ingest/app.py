"""The ingest HTTP edge (falcon, ASGI): read, authenticate, parse, publish, answer.

`create_app(settings, router)` builds the app from what it is handed (tests pass their own
clock and ids); `get_app()` reads the environment, for gunicorn:

    gunicorn -c python:ingest.gunicorn_conf 'ingest.app:get_app()'

Errors become `{"code": ..., "message": ...}` in one place (`_on_ingest_error`); no request ever
gets a 500 with a traceback.
"""

from __future__ import annotations

import asyncio
import dataclasses
import http
import logging
import os
import time
import uuid
import zlib
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import falcon
import falcon.asgi
import redis

from config.destinations import Destination, load_destinations
from config.settings import Settings, load_settings
from ingest import events
from ingest.auth import AuthConfig
from ingest.deadlines import BodyDeadlines
from ingest.errors import (
    DEFAULT_RETRY_AFTER_S,
    BadRequest,
    IngestError,
    OriginNotAllowed,
    PayloadTooLarge,
    QueueFull,
    RequestTimeout,
    Unauthorized,
    UnsupportedMediaType,
)
from ingest.publish import Publisher
from ingest.routing import Route, Router
from ingest.telemetry import IngestTelemetry
from store.async_lane import running_loop
from store.client import redis_for, warn_if_evicting

logger = logging.getLogger(__name__)

Request = falcon.asgi.Request
Response = falcon.asgi.Response
App = falcon.asgi.App[Request, Response]

# application/json and any +json type; text/plain because browser senders use it
# (sendBeacon, no CORS preflight) while still sending JSON.
_TEXT_TYPES = ("application/json", "text/plain")
_GZIP = ("gzip", "x-gzip")
_GZIP_WBITS = 16 + zlib.MAX_WBITS  # gzip header and trailer, not raw deflate
# After the publish script finds a destination's backlog full, its requests are refused for this
# long before they are validated (the backlog drains in seconds at best; Retry-After says 5).
_FULL_MEMORY_S = 1.0
# The answer to every stored request, encoded once (what falcon's JSON handler writes for it).
_SUCCESS = b'{"success": true}'


def create_app(
    settings: Settings,
    router: Router,
    *,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    new_message_id: Callable[[], str] = lambda: str(uuid.uuid4()),
    telemetry: IngestTelemetry | None = None,
) -> App:
    """Build the app from what it is handed (tests pass their own clock and ids).

    `telemetry` counts every request (and, given a Redis client, records event history; see
    ingest/telemetry.py). Metrics are served by the metrics listener (METRICS_PORT), never on
    this app's public port.
    """
    for each in router.publishers:
        each.try_ensure_streams()
    telemetry = telemetry or IngestTelemetry(None, settings, router.destinations)
    ingest = _Ingest(settings, router, clock, new_message_id, telemetry)
    app = falcon.asgi.App(media_type=falcon.MEDIA_JSON, middleware=(_Cors(settings), telemetry))
    app.req_options.auto_parse_form_urlencoded = False
    app.add_route("/webhook", _Route(ingest, "webhook", None))
    for name, kind in events.V1_ROUTES.items():
        app.add_route(f"/v1/{name}", _Route(ingest, f"v1/{name}", kind))
    app.add_route("/v1/projects/{write_key}/settings", _SdkSettings(settings, router))
    app.add_route("/healthz", _Health())
    app.add_route("/readyz", _Ready(router.publishers))
    app.add_error_handler(Exception, _on_unexpected_error)
    app.add_error_handler(falcon.HTTPError, _on_http_error)
    app.add_error_handler(IngestError, _on_ingest_error)
    return app


def routes_for(client: redis.Redis, destinations: Mapping[str, Destination]) -> list[Route]:
    """One route per destination: its credentials, and a publisher onto its streams."""
    return [
        Route(
            name,
            AuthConfig.from_settings(
                dataclasses.replace(
                    destination.settings,
                    ingest_write_keys=destination.write_keys,
                    ingest_admin_keys=destination.admin_keys,
                    ingest_shared_secret=destination.shared_secret,
                )
            ),
            Publisher(client, destination.settings, name),
        )
        for name, destination in destinations.items()
    ]


def get_app() -> App:
    """The app as configured by the environment; what gunicorn loads."""
    settings = load_settings(os.environ)
    # Ingest does not map events, but a bad mappings or destinations file must stop the fleet
    # at start-up, on every process, rather than fail per event in the workers.
    destinations = load_destinations(settings, os.environ)
    client = redis_for(
        settings, socket_connect_timeout=2, socket_timeout=5, health_check_interval=30
    )
    warn_if_evicting(client)
    router = Router(routes_for(client, destinations))
    return create_app(
        settings, router, telemetry=IngestTelemetry(client, settings, router.destinations)
    )


class _Ingest:
    """One request, from bytes to stored events."""

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

    async def handle(self, req: Request, route: str, kind: str | None) -> int:
        received_at = self.clock()
        _check_content_type(req.content_type)
        raw = await _read_body(req, self.settings.ingest_max_request_bytes, self.body_deadlines)
        body = events.decode_json(raw)
        routed = self.router.route(
            authorization=req.get_header("Authorization"),
            signature=req.get_header("X-Signature"),
            raw_body=raw,
            body=body,
        )
        method = routed.credential.method
        req.context.destination = routed.destination
        retry_count = req.get_header("X-Retry-Count")
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
        req.context.event_count = len(parsed)
        try:
            result = await routed.publisher.publish_async(parsed, route, routed.credential.sender)
        except QueueFull:
            self._full_until[routed.destination] = time.monotonic() + _FULL_MEMORY_S
            raise
        req.context.stored = True
        self.telemetry.published(
            routed.destination, route, parsed, result.accepted, result.duplicates
        )
        if result.duplicates:
            logger.info("%s: %d duplicate events skipped", route, result.duplicates)
        return result.accepted


class _Route:
    def __init__(self, ingest: _Ingest, route: str, kind: str | None) -> None:
        self._ingest = ingest
        self._route = route
        self._kind = kind

    async def on_post(self, req: Request, resp: Response) -> None:
        await self._ingest.handle(req, self._route, self._kind)
        # Exactly 200 with this body: Segment's clients treat anything else as a failure.
        resp.status = falcon.HTTP_200
        resp.content_type = falcon.MEDIA_JSON
        resp.data = _SUCCESS


class _SdkSettings:
    """GET /v1/projects/<write key>/settings: the part of Segment's CDN settings the SDKs need.

    Pointing an SDK's settings host (analytics.js `cdnURL`, the mobile SDKs' `cdnHost`) here
    tells it to send to the fleet: the mobile SDKs take `Segment.io.apiHost` from the settings
    over the one they were configured with, and analytics-kotlin applies Segment's own host from
    its built-in defaults until settings arrive. Served only with INGEST_PUBLIC_URL, because
    the public address cannot be trusted from a request's Host header behind a proxy.
    """

    def __init__(self, settings: Settings, router: Router) -> None:
        self._public_url = settings.ingest_public_url
        self._router = router

    async def on_get(self, req: Request, resp: Response, write_key: str) -> None:
        if self._public_url is None:
            raise falcon.HTTPNotFound(
                description="SDK settings are served only when INGEST_PUBLIC_URL is set"
            )
        try:
            self._router.route(
                authorization=None, signature=None, raw_body=b"", body={"writeKey": write_key}
            )
        except Unauthorized as ex:
            raise falcon.HTTPNotFound(description="no source has this write key") from ex
        scheme, _, host = self._public_url.partition("://")
        segment = {"apiKey": write_key, "apiHost": f"{host}/v1", "protocol": scheme}
        # sampleRate 0: analytics.js and the mobile SDKs then send no library telemetry to
        # Segment's /v1/m, which the fleet does not take.
        resp.media = {
            "integrations": {"Segment.io": segment},
            "plan": {},
            "edgeFunction": {},
            "middlewareSettings": {},
            "metrics": {"sampleRate": 0},
        }
        resp.cache_control = ["max-age=300"]


class _Health:
    """Liveness: the process answers HTTP. Says nothing else."""

    async def on_get(self, req: Request, resp: Response) -> None:
        resp.media = {"status": "ok"}


class _Ready:
    """Readiness, for load balancers: ready while this process reaches Redis.

    On the public port, so it says ready or not and a reason code, nothing more (no backlog,
    no destination names). The shared backlog does not make a process unready: it is the same
    for every ingest process, so every one would leave the load balancer at once and senders
    would get the balancer's own error instead of ingest's 429 with Retry-After (which every
    Segment SDK retries). A process that cannot reach Redis is unready (`store_unavailable`):
    it could store nothing, and its peers may still reach Redis.
    """

    def __init__(self, publishers: list[Publisher]) -> None:
        self._publishers = publishers

    async def on_get(self, req: Request, resp: Response) -> None:
        try:
            await asyncio.to_thread(self._publishers[0].ping)
        except redis.RedisError as ex:
            logger.warning("not ready: Redis unavailable: %s", ex)
            _not_ready(resp, "store_unavailable")
            return
        resp.media = {"status": "ok"}


def _not_ready(resp: Response, reason: str) -> None:
    resp.status = falcon.HTTP_503
    resp.set_header("Retry-After", str(DEFAULT_RETRY_AFTER_S))
    resp.media = {"status": "unavailable", "reason": reason}


class _Cors:
    """CORS for browser senders (analytics.js), on every reply, errors included.

    falcon's policy, plus two things it leaves out when INGEST_CORS_ORIGINS lists origins:
    `Vary: Origin`, and a 403 for any request but a preflight from another origin (a text/plain
    POST needs no preflight: it would be stored, and the browser would only hide the reply).
    Write keys are public (they ship in every page), so any origin may post by default;
    credentials are never allowed, so a page can send events but never read anything with a
    visitor's cookies. Retry-After is exposed because analytics.js waits that long after a 429.
    The preflight allows the headers asked for (analytics.js asks for `authorization`, and
    `x-retry-count` on retries) and is cached for a day. About 1 µs per request.
    """

    def __init__(self, settings: Settings) -> None:
        origins = settings.ingest_cors_origins
        self._only: frozenset[str] | None = None if origins == ("*",) else frozenset(origins)
        self._policy: falcon.CORSMiddleware[Any, Any] = falcon.CORSMiddleware(
            allow_origins=self._only or "*", expose_headers=["Retry-After"]
        )

    async def process_request(self, req: Request, resp: Response) -> None:
        if self._only is None or req.method == "OPTIONS":
            return
        origin = req.get_header("Origin")
        if origin is not None and origin not in self._only:
            raise OriginNotAllowed(f"origin {origin[:100]!r} is not in INGEST_CORS_ORIGINS")

    async def process_response(
        self, req: Request, resp: Response, resource: object, req_succeeded: bool
    ) -> None:
        self._policy.process_response(req, resp, resource, req_succeeded)
        if self._only is not None:
            resp.append_header("Vary", "Origin")


def _check_content_type(content_type: str | None) -> None:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media in _TEXT_TYPES or (media.startswith("application/") and media.endswith("+json")):
        return
    raise UnsupportedMediaType(
        f"Content-Type must be application/json, not {media[:60]!r}"
        if media
        else "Content-Type must be application/json"
    )


async def _read_body(req: Request, max_bytes: int, deadlines: BodyDeadlines) -> bytes:
    """The body, decompressed; refused as soon as it passes max_bytes, before reading it all.

    The whole body must arrive within `deadlines.timeout_s` of the headers (the app is called
    when they are in): a client trickling its body gets 408 and its connection is closed.
    """
    encoding = (req.get_header("Content-Encoding") or "identity").strip().lower()
    if encoding not in ("identity", *_GZIP):
        raise UnsupportedMediaType(
            f"Content-Encoding {encoding[:40]!r} is not supported; use gzip or none",
            code="unsupported_encoding",
        )
    length = req.content_length
    if length is not None and length > max_bytes:
        raise PayloadTooLarge(_too_large(max_bytes))
    loop = running_loop()
    task = asyncio.current_task(loop)
    assert task is not None
    deadlines.start(task, loop)
    try:
        chunks = [chunk async for chunk in _read_chunks(req, max_bytes)]
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


async def _read_chunks(req: Request, max_bytes: int) -> AsyncIterator[bytes]:
    """The body as the server hands it over (chunked framing already decoded), refused as soon
    as it passes max_bytes. A single event is one piece."""
    total = 0
    async for chunk in req.stream:
        total += len(chunk)
        if total > max_bytes:
            raise PayloadTooLarge(_too_large(max_bytes))
        yield chunk


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


async def _on_ingest_error(
    req: Request, resp: Response, ex: IngestError, params: dict[str, Any]
) -> None:
    """The one place where ingest errors become HTTP answers."""
    if ex.status >= 500 or ex.status == 429:
        logger.warning("%s %s: %s %s", req.method, req.path, ex.status, ex.code)
    else:
        logger.info("%s %s: %s %s: %s", req.method, req.path, ex.status, ex.code, ex.message)
    resp.status = ex.status
    resp.media = {"code": ex.code, "message": ex.message}
    if isinstance(ex, RequestTimeout | PayloadTooLarge):
        # The rest of the body may still be on its way: reading it would only feed a client
        # that is too slow or too big, so the connection closes after this answer.
        resp.set_header("Connection", "close")
    if ex.retry_after_s is not None:
        resp.set_header("Retry-After", str(ex.retry_after_s))


async def _on_http_error(
    req: Request, resp: Response, ex: falcon.HTTPError, params: dict[str, Any]
) -> None:
    """falcon's own errors (404, 405, bad headers) in the same shape as ours."""
    resp.status = ex.status
    if ex.headers:
        resp.set_headers(ex.headers)
    try:
        phrase = http.HTTPStatus(ex.status_code).phrase
    except ValueError:
        phrase = "HTTP error"
    resp.media = {
        "code": "_".join(phrase.lower().split()),
        "message": ex.description or ex.title or phrase,
    }


async def _on_unexpected_error(
    req: Request, resp: Response, ex: Exception, params: dict[str, Any]
) -> None:
    """Never a 500 with a traceback: log it, answer 503 so the sender retries."""
    stored = bool(getattr(req.context, "stored", False))
    logger.exception("unexpected error on %s %s (events stored: %s)", req.method, req.path, stored)
    resp.status = falcon.HTTP_503
    resp.media = {"code": "internal_error", "message": "internal error; retry later"}
    if not stored:
        resp.set_header("Retry-After", str(DEFAULT_RETRY_AFTER_S))
