"""The ingest HTTP app (ASGI): the front for the ingest routes, falcon for the rest.

`create_app(settings, router)` builds the app from what it is handed (tests pass their own
clock and ids); `get_app()` reads the environment, for gunicorn:

    gunicorn -c python:ingest.gunicorn_conf 'ingest.app:get_app()'

POSTs to `/webhook` and `/v1/<kind>` are served by the front (ingest/front.py) and handled by
ingest/handler.py; their preflights, the SDK settings and the health routes by falcon. Errors
become `{"code": ..., "message": ...}` from one place (ingest/answers.py) on either; no request
ever gets a 500 with a traceback.
"""

from __future__ import annotations

import asyncio
import dataclasses
import http
import logging
import os
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import falcon
import falcon.asgi
import redis

from config.destinations import Destination, load_destinations
from config.settings import Settings, load_settings
from ingest import answers, events
from ingest.auth import AuthConfig
from ingest.cors import Cors
from ingest.errors import DEFAULT_RETRY_AFTER_S, IngestError, Unauthorized
from ingest.front import IngestFront, IngestRoute
from ingest.handler import IngestHandler
from ingest.publish import Publisher
from ingest.routing import Route, Router
from ingest.telemetry import IngestTelemetry
from store.client import redis_for, warn_if_evicting

logger = logging.getLogger(__name__)

Request = falcon.asgi.Request
Response = falcon.asgi.Response


def create_app(
    settings: Settings,
    router: Router,
    *,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    new_message_id: Callable[[], str] = lambda: str(uuid.uuid4()),
    telemetry: IngestTelemetry | None = None,
) -> IngestFront:
    """Build the app from what it is handed (tests pass their own clock and ids).

    `telemetry` counts every request (and, given a Redis client, records event history; see
    ingest/telemetry.py). Metrics are served by the metrics listener (METRICS_PORT), never on
    this app's public port.
    """
    for each in router.publishers:
        each.try_ensure_streams()
    telemetry = telemetry or IngestTelemetry(None, settings, router.destinations)
    cors = Cors(settings)
    rest = falcon.asgi.App(media_type=falcon.MEDIA_JSON, middleware=(cors, telemetry))
    rest.req_options.auto_parse_form_urlencoded = False
    routes = {"/webhook": IngestRoute("webhook", None)}
    routes |= {
        f"/v1/{name}": IngestRoute(f"v1/{name}", kind) for name, kind in events.V1_ROUTES.items()
    }
    for path in routes:
        rest.add_route(path, _Preflight())
    rest.add_route("/v1/projects/{write_key}/settings", _SdkSettings(settings, router))
    rest.add_route("/healthz", _Health())
    rest.add_route("/readyz", _Ready(router.publishers))
    rest.add_error_handler(Exception, _on_unexpected_error)
    rest.add_error_handler(falcon.HTTPError, _on_http_error)
    rest.add_error_handler(IngestError, _on_ingest_error)
    handler = IngestHandler(settings, router, clock, new_message_id, telemetry)
    return IngestFront(handler, routes, cors, telemetry, rest)


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


def get_app() -> IngestFront:
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


class _Preflight:
    """An ingest route as falcon sees it: only its CORS preflight (OPTIONS) reaches falcon, which
    answers it with `Access-Control-Allow-Methods: POST`; the front serves every other method."""

    async def on_options(self, req: Request, resp: Response) -> None:
        resp.set_header("Allow", "POST")
        resp.set_header("Content-Length", "0")


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


async def _on_ingest_error(
    req: Request, resp: Response, ex: IngestError, params: dict[str, Any]
) -> None:
    """Ingest's errors on falcon's routes, answered as the front answers them."""
    _answer(resp, answers.refusal(ex, req.method, req.path))


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
    """503, logged with its traceback; nothing was stored (falcon's routes store nothing)."""
    _answer(resp, answers.unexpected(req.method, req.path, stored=False))


def _answer(resp: Response, answer: answers.Answer) -> None:
    """Write `answer` as falcon's response (the front writes the same answers itself)."""
    resp.status = answer.status
    resp.media = answer.media
    for name, value in answer.headers:
        resp.set_header(name, value)
