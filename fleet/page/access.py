"""Who may open the delivery page, and the token its actions carry. Pure.

The page is for whoever holds an admin key (`INGEST_ADMIN_KEYS`, or a destination's
`admin_keys`): the same credential that may delete users, never a write key (those ship inside
apps). A browser sends it as HTTP Basic (any user name and the key as password, or the key as
user name, as ingest reads it); a script may send `Authorization: Bearer <key>`. A fleet-wide
key sees every destination, a destination's key only its own.

Actions (replay, purge, test mapping) are POSTs and carry a CSRF token when the browser
authenticated with Basic: a browser repeats Basic credentials on any request to the page's
origin, a form on another site's page included, so the token (an HMAC of the credential under
a secret the serving process draws at start) proves the request came from the page itself. A
Bearer header is never added by a browser on its own, so it needs no token.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from typing import Final

from config.destinations import Destination
from config.settings import Secret, Settings

REALM: Final = "pushwoosh-fleet delivery"
BASIC: Final = "basic"
BEARER: Final = "bearer"
SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER: Final = "X-CSRF-Token"
CSRF_FIELD: Final = "csrf_token"


@dataclasses.dataclass(frozen=True)
class Visitor:
    """Someone who showed an admin key: how, a digest naming the key (never the key), and the
    destinations it opens."""

    scheme: str
    sender: str
    destinations: frozenset[str]


def _encoded(keys: Iterable[Secret]) -> tuple[bytes, ...]:
    return tuple(key.reveal().encode("utf-8") for key in keys if key)


@dataclasses.dataclass(frozen=True)
class PageAccess:
    fleet_keys: tuple[bytes, ...]
    destination_keys: Mapping[str, tuple[bytes, ...]]

    @classmethod
    def of(cls, settings: Settings, destinations: Mapping[str, Destination]) -> PageAccess:
        return cls(
            fleet_keys=_encoded(settings.ingest_admin_keys),
            destination_keys={name: _encoded(d.admin_keys) for name, d in destinations.items()},
        )

    @property
    def configured(self) -> bool:
        """False when no admin key exists at all: then nobody may open the page."""
        return bool(self.fleet_keys) or any(self.destination_keys.values())

    def visitor(self, authorization: str | None) -> Visitor | None:
        """Who the Authorization header proves the caller is, or None."""
        given = credentials(authorization)
        if given is None:
            return None
        scheme, candidates = given
        for candidate in candidates:
            key = candidate.encode("utf-8", "surrogatepass")
            if _matches(self.fleet_keys, key):
                return Visitor(scheme, _sender(key), frozenset(self.destination_keys))
            opened = frozenset(
                name for name, keys in self.destination_keys.items() if _matches(keys, key)
            )
            if opened:
                return Visitor(scheme, _sender(key), opened)
        return None


def _matches(keys: tuple[bytes, ...], given: bytes) -> bool:
    # Every key is compared, whichever matches: timing tells nothing about which one did.
    found = False
    for key in keys:
        found |= hmac.compare_digest(key, given)
    return found


def _sender(key: bytes) -> str:
    return hashlib.sha256(b"page\0" + key).hexdigest()[:32]


def credentials(authorization: str | None) -> tuple[str, list[str]] | None:
    """(scheme, the strings that may be the key) from an Authorization header, or None.

    Bearer: the token. Basic: the password, then the user name (`curl -u admin:KEY` and
    `curl -u KEY:` both work, as with ingest)."""
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == BEARER:
        return (BEARER, [value]) if value else None
    if scheme.lower() != BASIC:
        return None
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    user, _, password = decoded.partition(":")
    found = [text for text in (password, user) if text]
    return (BASIC, found) if found else None


def csrf_token(secret: bytes, visitor: Visitor) -> str:
    """The token the page puts in its forms and requests, bound to the visitor's key."""
    return hmac.new(secret, b"csrf\0" + visitor.sender.encode(), hashlib.sha256).hexdigest()


def csrf_allows(secret: bytes, visitor: Visitor, method: str, token: str | None) -> bool:
    """Whether a request may act: safe methods and Bearer callers always; a browser's POST only
    with the page's token."""
    if method.upper() in SAFE_METHODS or visitor.scheme == BEARER:
        return True
    if not token:
        return False
    return hmac.compare_digest(csrf_token(secret, visitor).encode(), token.encode())


def challenge() -> str:
    """The WWW-Authenticate header that makes a browser ask for the key."""
    return f'Basic realm="{REALM}", charset="UTF-8"'
