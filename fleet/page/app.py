"""The delivery page as a WSGI app (falcon), built from what it is handed.

Served on the fleet's metrics listener next to `/metrics` (fleet/exporter.py): `/delivery` and
everything under it need an admin key (fleet/page/access.py); POSTs from a browser also need
the page's CSRF token. Every answer carries a Content-Security-Policy that runs only the page's
own scripts (and the charts' inline script, by nonce), and may not be framed.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Mapping
from importlib import resources
from pathlib import Path
from typing import Final

import falcon
import pygaljs
import redis
from jinja2 import Environment, PackageLoader, select_autoescape

from config.destinations import Destination, all_secrets
from config.settings import Settings
from fleet.page import access, views
from fleet.page.context import Page
from fleet.page.reads import MinuteCounters
from telemetry.logs import maskable

STATIC_PREFIX: Final = "/delivery/_static/"
STATIC_TYPES: Final = {".css": "text/css", ".js": "text/javascript", ".png": "image/png"}


class _Guard:
    """Refuses the page without an admin key, and a browser's POST without the CSRF token;
    adds the security headers to every answer."""

    def __init__(self, page: Page) -> None:
        self._page = page

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.nonce = secrets.token_urlsafe(16)
        if req.path.startswith(STATIC_PREFIX):
            return  # the page's own CSS and script: public code, no data
        if not self._page.access.configured:
            raise falcon.HTTPForbidden(
                title="the delivery page is closed",
                description="no admin key is configured: set INGEST_ADMIN_KEYS (or a "
                "destination's admin_keys) and open the page with it",
            )
        visitor = self._page.access.visitor(req.get_header("Authorization"))
        if visitor is None:
            raise falcon.HTTPUnauthorized(
                title="an admin key is needed",
                description="sign in with an admin key (INGEST_ADMIN_KEYS) as the password",
                challenges=[access.challenge()],
            )
        req.context.visitor = visitor
        token = req.get_header(access.CSRF_HEADER)
        if (
            token is None
            and req.method == "POST"
            and req.content_type
            and (req.content_type.startswith(falcon.MEDIA_URLENCODED))
        ):
            form = req.get_media()
            token = form.get(access.CSRF_FIELD) if isinstance(form, dict) else None
        if not access.csrf_allows(self._page.csrf_secret, visitor, req.method, token):
            raise falcon.HTTPForbidden(
                title="missing or wrong CSRF token",
                description="actions are taken from the page itself: reload it and try again",
            )

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: object, succeeded: bool
    ) -> None:
        nonce = getattr(req.context, "nonce", "")
        resp.set_header(
            "Content-Security-Policy",
            f"default-src 'self'; script-src 'self' 'nonce-{nonce}'; style-src 'self' "
            "'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; "
            "form-action 'self'",
        )
        if isinstance(resp.text, str):
            # The last guard: whatever a reply, a dead letter or an event carried, no answer
            # shows a secret of the fleet (the views mask what they show already).
            resp.text = self._page.mask(resp.text)
        resp.set_header("X-Frame-Options", "DENY")
        resp.set_header("X-Content-Type-Options", "nosniff")
        resp.set_header("Referrer-Policy", "no-referrer")
        if not req.path.startswith(STATIC_PREFIX):
            resp.set_header("Cache-Control", "no-store")


class _Static:
    """The page's own CSS and script, and pygal's tooltip script, from the installed packages."""

    def __init__(self) -> None:
        own = resources.files("fleet.page").joinpath("static")
        self._files: dict[str, Callable[[], bytes]] = {
            name: own.joinpath(name).read_bytes for name in ("page.css", "page.js")
        }
        tooltips = Path(pygaljs.path("2.0.x", "pygal-tooltips.min.js"))
        self._files["pygal-tooltips.min.js"] = tooltips.read_bytes
        self._cache: dict[str, bytes] = {}

    def on_get(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        reader = self._files.get(name)
        if reader is None:
            raise falcon.HTTPNotFound()
        if name not in self._cache:
            self._cache[name] = reader()
        resp.data = self._cache[name]
        resp.content_type = STATIC_TYPES.get(Path(name).suffix, "application/octet-stream")
        resp.set_header("Cache-Control", "private, max-age=3600")


def _error_serializer(
    templates: Environment,
) -> Callable[[falcon.Request, falcon.Response, falcon.HTTPError], None]:
    def serialize(req: falcon.Request, resp: falcon.Response, ex: falcon.HTTPError) -> None:
        if req.client_prefers((falcon.MEDIA_JSON, falcon.MEDIA_HTML)) == falcon.MEDIA_JSON:
            resp.content_type = falcon.MEDIA_JSON
            resp.text = json.dumps({"title": ex.title, "description": ex.description})
            return
        resp.content_type = falcon.MEDIA_HTML
        resp.text = templates.get_template("message.html").render(
            title=ex.title, description=ex.description, status=ex.status
        )

    return serialize


def templates() -> Environment:
    env = Environment(
        loader=PackageLoader("fleet.page", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(views.FILTERS)
    return env


def create_page(
    settings: Settings,
    destinations: Mapping[str, Destination],
    client: redis.Redis,
    *,
    clock: Callable[[], float] = time.time,
    csrf_secret: bytes | None = None,
) -> falcon.App[falcon.Request, falcon.Response]:
    """The page's WSGI app. `client` must decode responses (str, not bytes)."""
    env = templates()
    page = Page(
        settings=settings,
        destinations=destinations,
        client=client,
        clock=clock,
        access=access.PageAccess.of(settings, destinations),
        csrf_secret=csrf_secret or secrets.token_bytes(32),
        templates=env,
        counters=MinuteCounters(),
        secrets=maskable(all_secrets(settings, destinations)),
    )
    app = falcon.App(middleware=[_Guard(page)])
    app.set_error_serializer(_error_serializer(env))
    app.add_route("/", views.Home(page))
    app.add_route("/delivery", views.Home(page))
    app.add_route(STATIC_PREFIX + "{name}", _Static())
    app.add_route("/delivery/{name}", views.Overview(page))
    app.add_route("/delivery/{name}/dead-letters", views.DeadLetters(page))
    app.add_route("/delivery/{name}/dead-letters/{shard:int}/{entry}", views.DeadLetterOne(page))
    app.add_route("/delivery/{name}/dead-letters/replay", views.DeadLetterAction(page, "replay"))
    app.add_route("/delivery/{name}/dead-letters/purge", views.DeadLetterAction(page, "purge"))
    app.add_route("/delivery/{name}/trace", views.Trace(page))
    app.add_route("/delivery/{name}/test-mapping", views.TestMapping(page))
    return app
