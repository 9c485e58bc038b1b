"""Which destination a request belongs to: the one whose write key or secret authenticated it.

Each destination has its own write keys (and webhook secret); a key routes to exactly one
destination (the destinations file refuses a key shared by two), so an event reaches only the
app it was sent for. With one destination this is plain authentication.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from ingest.auth import AuthConfig, Credential, authenticate
from ingest.errors import Unauthorized
from ingest.publish import Publisher


@dataclasses.dataclass(frozen=True)
class Route:
    destination: str
    auth: AuthConfig
    publisher: Publisher


@dataclasses.dataclass(frozen=True)
class Routed:
    destination: str
    credential: Credential
    publisher: Publisher


class Router:
    def __init__(self, routes: Sequence[Route]) -> None:
        if not routes:
            raise ValueError("a router needs at least one destination")
        self.routes = tuple(routes)
        # Destinations that accept unauthenticated events are tried last.
        self._ordered = sorted(self.routes, key=lambda r: r.auth.allow_unauthenticated)

    def route(
        self, *, authorization: str | None, signature: str | None, raw_body: bytes, body: object
    ) -> Routed:
        """The destination whose credentials match, or Unauthorized when none does.

        Destinations that accept unauthenticated events are tried last, so a sender with a valid
        key always reaches its own destination.
        """
        last: Unauthorized | None = None
        for candidate in self._ordered:
            try:
                credential = authenticate(
                    candidate.auth,
                    authorization=authorization,
                    signature=signature,
                    raw_body=raw_body,
                    body=body,
                )
            except Unauthorized as ex:
                last = ex
                continue
            return Routed(candidate.destination, credential, candidate.publisher)
        assert last is not None
        raise last

    @property
    def publishers(self) -> list[Publisher]:
        return [route.publisher for route in self.routes]

    @property
    def destinations(self) -> list[str]:
        return [route.destination for route in self.routes]
