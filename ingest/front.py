"""The ASGI app gunicorn serves: ingest's routes answered directly, everything else by falcon.

A single-event POST is the common request (analytics.js sends one per call by default, and so do
Segment's Webhooks destinations without batching), and falcon's request and response objects,
middleware and error handling were about a sixth of its CPU. The front serves the ingest routes
(`/webhook`, `/v1/<kind>`) itself: a POST is read into a `Posted` (ingest/handler.py), handled,
and answered from ingest/answers.py with the CORS headers of ingest/cors.py, with the metrics
falcon's middleware would have counted (ingest/telemetry.py). Their preflights (OPTIONS) and
every other route (SDK settings, health) stay falcon's.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any, Final

from ingest import answers
from ingest.cors import Cors
from ingest.errors import IngestError
from ingest.handler import IngestHandler, Posted, Receive
from ingest.telemetry import IngestTelemetry

Scope = dict[str, Any]
Message = MutableMapping[str, Any]
Send = Callable[[Message], Awaitable[None]]
AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_JSON: Final = (b"content-type", b"application/json")
_STORED_HEAD: Final = [_JSON, (b"content-length", str(len(answers.STORED_BODY)).encode())]
# Any method but POST and OPTIONS on an ingest route (OPTIONS is the preflight: falcon's).
_NOT_ALLOWED: Final = answers.Answer(
    405, "method_not_allowed", "405 Method Not Allowed", (("Allow", "POST, OPTIONS"),)
)


@dataclasses.dataclass(frozen=True, slots=True)
class IngestRoute:
    """An ingest route: its name in metrics and logs (`webhook`, `v1/track`), and the kind of
    Segment message it takes (None: `/webhook`, which takes any)."""

    name: str
    kind: str | None


class IngestFront:
    def __init__(
        self,
        handler: IngestHandler,
        routes: Mapping[str, IngestRoute],
        cors: Cors,
        telemetry: IngestTelemetry,
        rest: AsgiApp,
    ) -> None:
        self._handler = handler
        self._routes = dict(routes)
        self._cors = cors
        self._telemetry = telemetry
        self._rest = rest

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            route = self._routes.get(scope["path"])
            if route is not None:
                method = scope["method"]
                if method == "POST":
                    await self._post(route, scope, receive, send)
                    return
                if method != "OPTIONS":
                    await self._refuse_method(route, scope, receive, send)
                    return
        await self._rest(scope, receive, send)

    async def _post(self, route: IngestRoute, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.monotonic()
        posted = Posted(scope["headers"], receive)
        origin = posted.header(b"origin")
        refusal: answers.Answer | None = None
        try:
            self._cors.refuse("POST", origin)
            await self._handler.handle(posted, route.name, route.kind)
        except IngestError as ex:
            refusal = answers.refusal(ex, "POST", scope["path"])
        except Exception:
            refusal = answers.unexpected("POST", scope["path"], stored=posted.stored)
        if refusal is None:
            status, body = 200, answers.STORED_BODY
            cors = self._cors.answer_headers(origin)
            head = _head(body, cors) if cors else _STORED_HEAD
        else:
            status, body = refusal.status, refusal.body()
            head = _head(body, [*refusal.headers, *self._cors.answer_headers(origin)])
        await send({"type": "http.response.start", "status": status, "headers": head})
        await send({"type": "http.response.body", "body": body})
        self._telemetry.answered(
            posted.destination, route.name, status, started,
            refused_code=None if refusal is None else refusal.code,
            refused_events=posted.event_count or 1,
        )  # fmt: skip

    async def _refuse_method(
        self, route: IngestRoute, scope: Scope, receive: Receive, send: Send
    ) -> None:
        started = time.monotonic()
        origin = Posted(scope["headers"], receive).header(b"origin")
        body = _NOT_ALLOWED.body()
        head = _head(body, [*_NOT_ALLOWED.headers, *self._cors.answer_headers(origin)])
        await send({"type": "http.response.start", "status": 405, "headers": head})
        await send({"type": "http.response.body", "body": body})
        self._telemetry.answered(None, route.name, 405, started)


def _head(body: bytes, headers: list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    """An answer's headers: its JSON content, then `headers`."""
    head = [_JSON, (b"content-length", str(len(body)).encode())]
    for name, value in headers:
        head.append((name.lower().encode("latin-1"), value.encode("latin-1")))
    return head
