"""Ingest's metrics and event history: what every answer counts, and a publish hook.

`answered()` counts every request by route and status and times it (the front calls it for the
ingest routes, falcon's middleware for the rest); refused requests count their events (when
they could be read) as rejected by error code, or as shed when the backlog is over its limit.
`published()` counts accepted and deduplicated events and records each event's "received" step
for `pushwoosh-fleet trace`. Counts stay in this process (served by the gunicorn master's
metrics listener, see ingest/gunicorn_conf.py); history goes to Redis through a background
flusher, never on the request's path.
"""

from __future__ import annotations

import time
from typing import Any

import falcon
import redis

from config.settings import Settings
from telemetry.flusher import Flusher
from telemetry.metrics import Counts, FleetMetrics, Tally, process_metrics
from telemetry.trace import TraceBuffer, attach_trace

SHED_CODES = frozenset({"queue_full"})
# Requests refused before they reached a destination (no valid key, an unreadable body) are
# counted under this name; no destination can have it (names are lower-case letters and digits).
UNROUTED = "(none)"


class IngestTelemetry:
    """Counts per destination (and UNROUTED), plus the event history's "received" records."""

    def __init__(
        self,
        client: redis.Redis | None,
        settings: Settings,
        destinations: list[str],
        metrics: FleetMetrics | None = None,
    ) -> None:
        self.settings = settings
        metrics = metrics or process_metrics()
        self.counts = {name: Counts(metrics, name) for name in [*destinations, UNROUTED]}
        # Written a moment later, together (see Tally): four metric updates per request were
        # about a tenth of a single-event request's CPU.
        self.tally = Tally()
        self.trace: TraceBuffer | None = None
        if client is not None:
            dropped = self.counts[UNROUTED]
            self.trace = attach_trace(
                Flusher(client),
                client,
                settings,
                on_dropped=lambda n: dropped.inc("trace_dropped", amount=n),
            )

    def _counts(self, destination: str | None) -> Counts:
        return self.counts.get(destination or UNROUTED) or self.counts[UNROUTED]

    # -- falcon middleware ---------------------------------------------------------------------
    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.started = time.monotonic()

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, req_succeeded: bool
    ) -> None:
        template = req.uri_template
        status = resp.status_code
        refused_code = None
        if status >= 400 and req.method == "POST" and resource is not None:
            media = resp.media if isinstance(resp.media, dict) else {}
            refused_code = str(media.get("code", f"http_{status}"))
        self.answered(
            getattr(req.context, "destination", None),
            template.lstrip("/") if template else "unmatched",
            status,
            getattr(req.context, "started", None),
            refused_code=refused_code,
        )

    # -- what the front (ingest/front.py) and the middleware call --------------------------------
    def answered(
        self,
        destination: str | None,
        route: str,
        status: int,
        started: float | None,
        *,
        refused_code: str | None = None,
        refused_events: int = 1,
    ) -> None:
        """A request was answered `status`, `started` (monotonic) when its head was in; refused
        with `refused_code`, its `refused_events` count as shed or rejected by that code."""
        counts = self._counts(destination)
        tally = self.tally
        tally.inc(counts.child("ingest_requests", route, str(status)))
        if started is not None:
            duration = counts.child("ingest_request_duration_seconds", route)
            tally.observe(duration, time.monotonic() - started)
        if refused_code in SHED_CODES:
            tally.inc(counts.child("ingest_events_shed", route), refused_events)
        elif refused_code is not None:
            tally.inc(counts.child("ingest_events_rejected", route, refused_code), refused_events)

    # ASGI: falcon calls these (the methods above serve a WSGI app and the tests).
    async def process_request_async(self, req: Any, resp: Any) -> None:
        self.process_request(req, resp)

    async def process_response_async(
        self, req: Any, resp: Any, resource: Any, req_succeeded: bool
    ) -> None:
        self.process_response(req, resp, resource, req_succeeded)

    # -- what the ingest handler calls ---------------------------------------------------------
    def published(
        self,
        destination: str,
        route: str,
        events: list[dict[str, Any]],
        accepted: int,
        duplicates: int,
    ) -> None:
        counts = self._counts(destination)
        self.tally.inc(counts.child("ingest_events_accepted", route), accepted)
        if duplicates:
            self.tally.inc(counts.child("ingest_events_deduplicated", route), duplicates)
        if self.trace is not None:
            # One record per message: a request repeating one messageId 2,500 times is one
            # line of history, not 2,500.
            self.trace.add_many(
                dict.fromkeys(str(event["messageId"]) for event in events),
                "received",
                route=route,
                duplicates=duplicates or None,
            )
