"""CORS for browser senders (analytics.js), on every answer, errors included.

falcon's policy, plus two things it leaves out when INGEST_CORS_ORIGINS lists origins:
`Vary: Origin`, and a 403 for any request but a preflight from another origin (a text/plain
POST needs no preflight: it would be stored, and the browser would only hide the reply).
Write keys are public (they ship in every page), so any origin may post by default;
credentials are never allowed, so a page can send events but never read anything with a
visitor's cookies. Retry-After is exposed because analytics.js waits that long after a 429.
The preflight allows the headers asked for (analytics.js asks for `authorization`, and
`x-retry-count` on retries) and is cached for a day.

One policy, two users: the front (ingest/front.py) asks `refuse` and `answer_headers` for the
POSTs it serves; falcon (every other request) runs it as middleware, preflights included.
"""

from __future__ import annotations

from typing import Any

import falcon
import falcon.asgi

from config.settings import Settings
from ingest.errors import OriginNotAllowed

_EXPOSED = "Retry-After"


class Cors:
    def __init__(self, settings: Settings) -> None:
        origins = settings.ingest_cors_origins
        self._only: frozenset[str] | None = None if origins == ("*",) else frozenset(origins)
        # The preflight (OPTIONS with Access-Control-Request-Method) is falcon's.
        self._preflight: falcon.CORSMiddleware[Any, Any] = falcon.CORSMiddleware(
            allow_origins=self._only or "*", expose_headers=[_EXPOSED]
        )

    def refuse(self, method: str, origin: str | None) -> None:
        """Raise OriginNotAllowed for a request (not a preflight) from an origin not listed."""
        if self._only is None or method == "OPTIONS" or origin is None:
            return
        if origin not in self._only:
            raise OriginNotAllowed(f"origin {origin[:100]!r} is not in INGEST_CORS_ORIGINS")

    def answer_headers(self, origin: str | None) -> list[tuple[str, str]]:
        """The CORS headers of an answer to anything but a preflight (falcon's simple case)."""
        headers = []
        if origin is not None and (self._only is None or origin in self._only):
            headers.append(("Access-Control-Allow-Origin", origin if self._only else "*"))
            headers.append(("Access-Control-Expose-Headers", _EXPOSED))
        if self._only is not None:
            headers.append(("Vary", "Origin"))
        return headers

    # -- falcon middleware -----------------------------------------------------------------------
    async def process_request(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        self.refuse(req.method, req.get_header("Origin"))

    async def process_response(
        self,
        req: falcon.asgi.Request,
        resp: falcon.asgi.Response,
        resource: object,
        req_succeeded: bool,
    ) -> None:
        if req.method == "OPTIONS":
            self._preflight.process_response(req, resp, resource, req_succeeded)
            if self._only is not None:
                resp.append_header("Vary", "Origin")
            return
        for name, value in self.answer_headers(req.get_header("Origin")):
            resp.append_header(name, value)
