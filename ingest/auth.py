"""Who may post events: write keys (body, HTTP Basic, Bearer), admin keys (Basic, Bearer) and
Segment's HMAC signature.

Pure: takes the headers, the raw body and the decoded body, and names the method that
authenticated the request, or raises `Unauthorized`. Write keys are public (they ship inside
apps), so the method also decides what a request may do: only an admin key or a signature over
the whole body may delete users. Every comparison is `hmac.compare_digest`, so timing tells
nothing about a key.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import functools
import hashlib
import hmac
import json
import logging

from config.errors import ConfigError
from config.settings import Settings
from ingest.errors import Unauthorized

logger = logging.getLogger(__name__)

# Said for every failure, so a caller cannot tell a wrong key from a wrong signature.
_UNAUTHORIZED = "missing or invalid write key or signature"


# How a request proved who sent it. Only the privileged ones may carry a `delete`: write keys
# ship inside apps and web pages, and a first-element signature covers one element of a batch.
WRITE_KEY_BODY = "write_key_body"
WRITE_KEY_HEADER = "write_key_header"
ADMIN_KEY = "admin_key"
SIGNATURE = "signature"
SIGNATURE_FIRST_ELEMENT = "signature_first_element"
UNAUTHENTICATED = "unauthenticated"
PRIVILEGED_METHODS = frozenset({ADMIN_KEY, SIGNATURE})

SIGNATURE_SCOPE_BODY = "body"
SIGNATURE_SCOPE_FIRST_ELEMENT = "first-element"


@dataclasses.dataclass(frozen=True)
class AuthConfig:
    """The accepted credentials, as bytes ready for constant-time comparison."""

    write_keys: tuple[bytes, ...]
    shared_secret: bytes | None
    allow_unauthenticated: bool
    admin_keys: tuple[bytes, ...] = ()
    # "body": X-Signature must cover the whole body. "first-element": a JSON array may also be
    # signed over its first element only, as Segment's Webhooks (Actions) batch mode signs.
    signature_scope: str = SIGNATURE_SCOPE_BODY

    @classmethod
    def from_settings(cls, settings: Settings) -> AuthConfig:
        """Raise ConfigError when nothing would be accepted and that was not asked for."""
        keys = tuple(k.reveal().encode("utf-8") for k in settings.ingest_write_keys if k)
        admin = tuple(k.reveal().encode("utf-8") for k in settings.ingest_admin_keys if k)
        secret = settings.ingest_shared_secret
        config = cls(
            write_keys=keys,
            shared_secret=secret.reveal().encode("utf-8") if secret else None,
            allow_unauthenticated=settings.ingest_allow_unauthenticated,
            admin_keys=admin,
            signature_scope=settings.ingest_signature_scope,
        )
        if not (
            config.write_keys
            or config.shared_secret
            or config.admin_keys
            or config.allow_unauthenticated
        ):
            raise ConfigError(
                [
                    "INGEST_WRITE_KEYS: set at least one write key, or INGEST_SHARED_SECRET, or "
                    "INGEST_ALLOW_UNAUTHENTICATED=true to accept events from anyone"
                ]
            )
        if set(config.admin_keys) & set(config.write_keys):
            raise ConfigError(["INGEST_ADMIN_KEYS: an admin key may not also be a write key"])
        return config


@dataclasses.dataclass(frozen=True)
class Credential:
    """Who sent a request: how they proved it, and a name for the credential itself (a digest,
    never the key), under which its messageIds are deduplicated."""

    method: str
    sender: str

    @property
    def privileged(self) -> bool:
        return self.method in PRIVILEGED_METHODS


@functools.lru_cache(maxsize=256)
def _sender(kind: str, key: bytes) -> str:
    """A name for a configured credential (only configured keys get here, so the cache holds
    at most as many names as there are keys; it spares a SHA-256 per request)."""
    return f"{kind}:{hashlib.sha256(key).hexdigest()[:16]}"


def authenticate(
    config: AuthConfig,
    *,
    authorization: str | None,
    signature: str | None,
    raw_body: bytes,
    body: object,
) -> Credential:
    """The credential that authenticated the request, or raise Unauthorized."""
    if signature and config.shared_secret is not None:
        scope = _signature_scope(config, signature, raw_body, body)
        if scope is not None:
            return Credential(scope, _sender("secret", config.shared_secret))
    if authorization:
        key = _header_key_matches(config.admin_keys, authorization) if config.admin_keys else None
        if key is not None:
            return Credential(ADMIN_KEY, _sender("admin", key))
        key = _header_key_matches(config.write_keys, authorization) if config.write_keys else None
        if key is not None:
            return Credential(WRITE_KEY_HEADER, _sender("write", key))
    if config.write_keys and isinstance(body, dict):
        key = _key_matches(config.write_keys, body.get("writeKey"))
        if key is not None:
            return Credential(WRITE_KEY_BODY, _sender("write", key))
    if config.allow_unauthenticated:
        return Credential(UNAUTHENTICATED, UNAUTHENTICATED)
    raise Unauthorized(_UNAUTHORIZED)


def _signature_scope(
    config: AuthConfig, signature: str, raw_body: bytes, body: object
) -> str | None:
    """SIGNATURE when X-Signature covers the whole body; SIGNATURE_FIRST_ELEMENT when it covers
    only an array's first element and the operator allowed that; else None."""
    assert config.shared_secret is not None
    given = signature.strip().lower().encode("ascii", "replace")
    if hmac.compare_digest(sign(config.shared_secret, raw_body).encode("ascii"), given):
        return SIGNATURE
    if config.signature_scope != SIGNATURE_SCOPE_FIRST_ELEMENT:
        return None
    matched = False
    for payload in _first_element_payloads(raw_body, body):
        matched |= hmac.compare_digest(sign(config.shared_secret, payload).encode("ascii"), given)
    return SIGNATURE_FIRST_ELEMENT if matched else None


def sign(secret: bytes, payload: bytes) -> str:
    """Hex HMAC-SHA1 of a payload, as Segment puts it in X-Signature."""
    return hmac.new(secret, payload, hashlib.sha1).hexdigest()


def _key_matches(keys: tuple[bytes, ...], candidate: object) -> bytes | None:
    """The configured key the candidate equals, or None."""
    if not isinstance(candidate, str) or not candidate:
        return None
    given = candidate.encode("utf-8", "surrogatepass")
    # No early exit: every configured key is compared, whichever matches.
    matched: bytes | None = None
    for key in keys:
        if hmac.compare_digest(key, given):
            matched = key
    return matched


def _header_key_matches(keys: tuple[bytes, ...], authorization: str) -> bytes | None:
    scheme, _, value = authorization.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer":
        return _key_matches(keys, value)
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            return None
        # "key:" from most clients, "key" from some: the user name is the write key and the
        # password, if any, is not used.
        user, _, _password = decoded.partition(":")
        return _key_matches(keys, user)
    return None


def _first_element_payloads(raw_body: bytes, body: object) -> list[bytes]:
    """What a Webhooks (Actions) batch signature may cover: the array's first element.

    That JSON is re-serialised by the sender, so both its exact bytes in the body and the usual
    serialisations of the decoded element are tried.
    """
    payloads: list[bytes] = []
    if isinstance(body, list) and body:
        first = body[0]
        raw_first = _first_element_bytes(raw_body)
        if raw_first is not None:
            payloads.append(raw_first)
        for separators, ascii_only in (((",", ":"), False), ((", ", ": "), True)):
            try:
                text = json.dumps(first, separators=separators, ensure_ascii=ascii_only)
                payloads.append(text.encode("utf-8"))
            except (ValueError, TypeError, RecursionError):
                continue
    return payloads


def _first_element_bytes(raw_body: bytes) -> bytes | None:
    """The exact bytes of the first element of a JSON array body, or None."""
    try:
        text = raw_body.decode("utf-8")
        start = text.index("[") + 1
        while start < len(text) and text[start] in " \t\r\n":
            start += 1
        _, end = json.JSONDecoder().raw_decode(text, start)
    except (ValueError, RecursionError):
        return None
    return text[start:end].encode("utf-8")
