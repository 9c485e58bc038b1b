"""What every view of the delivery page is handed: settings, destinations, Redis, a clock."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import falcon
import redis
from jinja2 import Environment

from config.destinations import Destination
from config.settings import Settings
from fleet.page import access
from fleet.page.reads import MinuteCounters
from telemetry.logs import redact


@dataclasses.dataclass
class Page:
    """What every view needs: the fleet's settings and destinations, Redis, a clock."""

    settings: Settings
    destinations: Mapping[str, Destination]
    client: redis.Redis
    clock: Callable[[], float]
    access: access.PageAccess
    csrf_secret: bytes
    templates: Environment
    counters: MinuteCounters
    secrets: list[str]

    def destination(self, req: falcon.Request, name: str) -> Destination:
        """The destination `name`, if the visitor may see it; 404 otherwise (not 403: a key
        learns nothing about other destinations)."""
        visitor: access.Visitor = req.context.visitor
        found = self.destinations.get(name)
        if found is None or name not in visitor.destinations:
            raise falcon.HTTPNotFound(title="no such destination", description=name)
        return found

    def render(
        self, req: falcon.Request, resp: falcon.Response, template: str, **values: Any
    ) -> None:
        visitor: access.Visitor = req.context.visitor
        resp.content_type = falcon.MEDIA_HTML
        resp.text = self.templates.get_template(template).render(
            nonce=req.context.nonce,
            csrf_token=access.csrf_token(self.csrf_secret, visitor),
            visible=sorted(visitor.destinations),
            mask=self.mask,
            **values,
        )

    def mask(self, text: object) -> str:
        """`text` with every secret of the fleet replaced by ****."""
        return redact(str(text), self.secrets)
