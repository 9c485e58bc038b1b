"""Ingest's metrics and event history: a falcon middleware, a publish hook and `/metrics`.

The middleware counts every request by route and status and times it; refused requests count
their events (when they could be read) as rejected by error code, or as shed when the backlog
is over its limit. `published()` counts accepted and deduplicated events and records each
event's "received" step for `pushwoosh-fleet trace`. All of it goes to Redis through the
metrics recorder's background flush, never on the request's path.
"""

from __future__ import annotations

import time
from typing import Any

import falcon
import redis

from config.redis_keys import RedisKeys
from config.settings import Settings
from telemetry.metrics import Recorder, Target, render
from telemetry.trace import TraceBuffer, attach_trace

SHED_CODES = frozenset({"queue_full"})
# Requests refused before they reached a destination (no valid key, an unreadable body) are
# counted under this name; no destination can have it (names are lower-case letters and digits).
UNROUTED = "(none)"


class IngestTelemetry:
    """Counts per destination (and UNROUTED), plus the event history's "received" records."""

    def __init__(
        self, client: redis.Redis | None, settings: Settings, destinations: list[str]
    ) -> None:
        self.client = client
        self.settings = settings
        self.recorders = {
            name: Recorder(client, RedisKeys(settings.redis_key_prefix, name))
            for name in [*destinations, UNROUTED]
        }
        self.trace: TraceBuffer | None = (
            attach_trace(self.recorders[UNROUTED], client, settings) if client is not None else None
        )

    def _recorder(self, destination: str | None) -> Recorder:
        return self.recorders.get(destination or UNROUTED) or self.recorders[UNROUTED]

    # -- falcon middleware ---------------------------------------------------------------------
    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.started = time.monotonic()

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, req_succeeded: bool
    ) -> None:
        template = req.uri_template
        route = template.lstrip("/") if template else "unmatched"
        status = resp.status_code
        recorder = self._recorder(getattr(req.context, "destination", None))
        recorder.inc("ingest_requests", route, str(status))
        started = getattr(req.context, "started", None)
        if started is not None:
            recorder.observe("ingest_request_duration_seconds", time.monotonic() - started, route)
        if status >= 400 and req.method == "POST" and resource is not None:
            media = resp.media if isinstance(resp.media, dict) else {}
            code = str(media.get("code", f"http_{status}"))
            events = int(getattr(req.context, "event_count", 0) or 1)
            if code in SHED_CODES:
                recorder.inc("ingest_events_shed", route, amount=events)
            else:
                recorder.inc("ingest_events_rejected", route, code, amount=events)

    # -- what the ingest handler calls ---------------------------------------------------------
    def published(
        self,
        destination: str,
        route: str,
        events: list[dict[str, Any]],
        accepted: int,
        duplicates: int,
    ) -> None:
        recorder = self._recorder(destination)
        recorder.inc("ingest_events_accepted", route, amount=accepted)
        if duplicates:
            recorder.inc("ingest_events_deduplicated", route, amount=duplicates)
        if self.trace is not None:
            # One record per message: a request repeating one messageId 2,500 times is one
            # line of history, not 2,500.
            self.trace.add_many(
                dict.fromkeys(str(event["messageId"]) for event in events),
                "received",
                route=route,
                duplicates=duplicates or None,
            )


class MetricsResource:
    """GET /metrics: the fleet-wide numbers, read from Redis at each scrape."""

    def __init__(self, client: redis.Redis, prefix: str, shards_by_destination: dict[str, int]):
        self._client = client
        self._prefix = prefix
        self._shards_by_destination = shards_by_destination

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        # Every destination, each series labelled with it; ?destination=NAME narrows to one.
        wanted = req.get_param("destination")
        if wanted is not None and wanted not in self._shards_by_destination:
            raise falcon.HTTPNotFound(description=f"no destination {wanted!r}")
        targets = [
            Target(RedisKeys(self._prefix, name), shards)
            for name, shards in self._shards_by_destination.items()
            if wanted is None or name == wanted
        ]
        if wanted is None:
            targets.append(Target(RedisKeys(self._prefix, UNROUTED), 0, gauges=False))
        try:
            body, content_type = render(self._client, targets)
        except redis.RedisError as ex:
            raise falcon.HTTPServiceUnavailable(
                description=f"metrics are read from Redis, unavailable ({type(ex).__name__})"
            ) from ex
        resp.data = body
        resp.content_type = content_type
