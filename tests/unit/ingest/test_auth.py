"""Who may post: write key in the body, HTTP Basic, Bearer, admin keys, Segment's X-Signature."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import pytest

from config.errors import ConfigError
from config.settings import load_settings
from ingest import auth
from ingest.errors import Unauthorized

SECRET = b"shared-secret"
CONFIG = auth.AuthConfig(
    write_keys=(b"wk-one", b"wk-two"),
    shared_secret=SECRET,
    allow_unauthenticated=False,
    admin_keys=(b"admin-one",),
)
FIRST_ELEMENT = auth.AuthConfig(
    write_keys=(b"wk-one",),
    shared_secret=SECRET,
    allow_unauthenticated=False,
    signature_scope="first-element",
)
EVENT = {"type": "track", "userId": "u", "event": "Café ordered"}


def basic(text: str) -> str:
    return "Basic " + base64.b64encode(text.encode()).decode()


def check(
    *,
    authorization: str | None = None,
    signature: str | None = None,
    body: object = EVENT,
    raw: bytes | None = None,
    config: auth.AuthConfig = CONFIG,
) -> str:
    """The method that authenticated the request."""
    return credential(
        authorization=authorization, signature=signature, body=body, raw=raw, config=config
    ).method


def credential(
    *,
    authorization: str | None = None,
    signature: str | None = None,
    body: object = EVENT,
    raw: bytes | None = None,
    config: auth.AuthConfig = CONFIG,
) -> auth.Credential:
    raw_body = json.dumps(body).encode() if raw is None else raw
    return auth.authenticate(
        config, authorization=authorization, signature=signature, raw_body=raw_body, body=body
    )


@pytest.mark.parametrize(
    ("kwargs", "method"),
    [
        ({"body": {**EVENT, "writeKey": "wk-one"}}, "write_key_body"),
        ({"body": {"batch": [EVENT], "writeKey": "wk-two"}}, "write_key_body"),
        ({"authorization": basic("wk-one:")}, "write_key_header"),
        ({"authorization": basic("wk-two")}, "write_key_header"),
        ({"authorization": basic("wk-one:ignored-password")}, "write_key_header"),
        ({"authorization": "basic " + base64.b64encode(b"wk-one:").decode()}, "write_key_header"),
        ({"authorization": "Bearer wk-two"}, "write_key_header"),
        ({"authorization": "bearer   wk-one "}, "write_key_header"),
        (
            {"authorization": "Bearer nope", "body": {**EVENT, "writeKey": "wk-one"}},
            "write_key_body",
        ),
    ],
)
def test_write_keys_are_accepted_in_all_three_places(kwargs: dict[str, Any], method: str) -> None:
    assert check(**kwargs) == method


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"body": {**EVENT, "writeKey": "wk-three"}},
        {"body": {**EVENT, "writeKey": ""}},
        {"body": {**EVENT, "writeKey": ["wk-one"]}},
        {"body": [{**EVENT, "writeKey": "wk-one"}]},
        {"authorization": basic("wk-three:")},
        {"authorization": basic(":wk-one")},
        {"authorization": basic("")},
        {"authorization": "Basic !!!not-base64"},
        {"authorization": "Basic " + base64.b64encode(b"\xff\xfe:").decode()},
        {"authorization": "Bearer"},
        {"authorization": "Bearer wk-on"},
        {"authorization": "Bearer wk-one-and-more"},
        {"authorization": "Token wk-one"},
        {"authorization": "wk-one"},
        {"signature": "0" * 40},
        {"signature": "not hex"},
        {"signature": hmac.new(b"other", json.dumps(EVENT).encode(), hashlib.sha1).hexdigest()},
    ],
)
def test_wrong_or_missing_credentials_are_unauthorized(kwargs: dict[str, Any]) -> None:
    with pytest.raises(Unauthorized) as caught:
        check(**kwargs)
    assert caught.value.status == 401
    assert "wk-" not in caught.value.message


def test_signature_of_the_whole_body() -> None:
    raw = json.dumps(EVENT).encode()
    assert check(raw=raw, signature=auth.sign(SECRET, raw)) == "signature"
    assert check(raw=raw, signature=auth.sign(SECRET, raw).upper()) == "signature"
    with pytest.raises(Unauthorized):
        check(raw=raw + b" ", signature=auth.sign(SECRET, raw))


def test_signature_is_hex_hmac_sha1() -> None:
    assert auth.sign(b"key", b"The quick brown fox jumps over the lazy dog") == (
        "de7c9b85b8b78aa6bc8a7a36f70a90701c9db4d9"
    )


SECOND = {"type": "identify", "userId": "v", "traits": {"name": "Zoë"}}


@pytest.mark.parametrize(
    ("raw", "signed"),
    [
        # the first element's own bytes, whatever spacing the sender used
        (
            b'[ {"type":"track","userId":"u","event":"Caf\\u00e9 ordered"} ,{"x":1}]',
            b'{"type":"track","userId":"u","event":"Caf\\u00e9 ordered"}',
        ),
        # JSON.stringify of the first element: compact, non-ASCII as is
        (
            json.dumps([EVENT, SECOND], indent=2).encode(),
            json.dumps(EVENT, separators=(",", ":"), ensure_ascii=False).encode(),
        ),
        # Python's default serialisation of the first element
        (json.dumps([EVENT, SECOND]).encode(), json.dumps(EVENT).encode()),
    ],
)
def test_signature_of_a_batch_covers_the_first_element_when_the_operator_allows_it(
    raw: bytes, signed: bytes
) -> None:
    body = json.loads(raw)
    signature = auth.sign(SECRET, signed)
    assert check(raw=raw, body=body, signature=signature, config=FIRST_ELEMENT) == (
        "signature_first_element"
    )
    second = json.dumps(body[1]).encode()
    with pytest.raises(Unauthorized):
        check(raw=raw, body=body, signature=auth.sign(SECRET, second), config=FIRST_ELEMENT)
    # By default a signature must cover the whole body: a captured signed event A, re-sent as
    # [A, anything], authenticates nothing.
    with pytest.raises(Unauthorized):
        check(raw=raw, body=body, signature=signature)


def test_a_whole_body_signature_is_the_privileged_kind_in_either_scope() -> None:
    raw = json.dumps([EVENT, SECOND]).encode()
    body = json.loads(raw)
    assert check(raw=raw, body=body, signature=auth.sign(SECRET, raw)) == "signature"
    assert (
        check(raw=raw, body=body, signature=auth.sign(SECRET, raw), config=FIRST_ELEMENT)
        == "signature"
    )
    assert "signature" in auth.PRIVILEGED_METHODS
    assert "signature_first_element" not in auth.PRIVILEGED_METHODS


@pytest.mark.parametrize(
    ("kwargs", "method"),
    [
        ({"authorization": "Bearer admin-one"}, "admin_key"),
        ({"authorization": basic("admin-one:")}, "admin_key"),
        # an admin key in the body is not one: admin keys go in the Authorization header
        (
            {"body": {**EVENT, "writeKey": "wk-one"}, "authorization": "Bearer nope"},
            "write_key_body",
        ),
    ],
)
def test_admin_keys_go_in_the_authorization_header(kwargs: dict[str, Any], method: str) -> None:
    assert check(**kwargs) == method
    assert (method in auth.PRIVILEGED_METHODS) == (method == "admin_key")


def test_an_admin_key_in_the_body_is_not_accepted() -> None:
    with pytest.raises(Unauthorized):
        check(body={**EVENT, "writeKey": "admin-one"})


def test_an_admin_key_may_not_also_be_a_write_key() -> None:
    with pytest.raises(ConfigError, match="INGEST_ADMIN_KEYS"):
        load_settings({"INGEST_WRITE_KEYS": "a,b", "INGEST_ADMIN_KEYS": "b"})


def test_signature_is_not_checked_without_a_shared_secret() -> None:
    config = auth.AuthConfig(write_keys=(b"wk",), shared_secret=None, allow_unauthenticated=False)
    raw = json.dumps(EVENT).encode()
    with pytest.raises(Unauthorized):
        check(raw=raw, signature=auth.sign(b"", raw), config=config)


def test_unauthenticated_only_when_asked_for() -> None:
    config = auth.AuthConfig(write_keys=(), shared_secret=None, allow_unauthenticated=True)
    assert check(config=config) == "unauthenticated"


@pytest.mark.parametrize(
    ("env", "keys", "secret"),
    [
        ({"INGEST_WRITE_KEYS": "a, b"}, (b"a", b"b"), None),
        ({"INGEST_SHARED_SECRET": "s"}, (), b"s"),
        ({"INGEST_ALLOW_UNAUTHENTICATED": "true"}, (), None),
    ],
)
def test_config_from_settings(env: dict[str, str], keys: tuple[bytes, ...], secret: Any) -> None:
    config = auth.AuthConfig.from_settings(load_settings(env))
    assert (config.write_keys, config.shared_secret) == (keys, secret)


def test_no_credentials_configured_refuses_to_start() -> None:
    with pytest.raises(ConfigError) as caught:
        auth.AuthConfig.from_settings(load_settings({}))
    assert "INGEST_WRITE_KEYS" in str(caught.value)


def test_every_comparison_is_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    check(authorization="Bearer wk-two")
    # every configured key is compared, not just until the first match
    assert [a for a, _ in calls] == [b"admin-one", b"wk-one", b"wk-two"]
    calls.clear()
    raw = json.dumps([EVENT]).encode()
    check(raw=raw, body=[EVENT], signature=auth.sign(SECRET, raw))
    assert len(calls) == 1
    calls.clear()
    with pytest.raises(Unauthorized):
        check(body={**EVENT, "writeKey": "nope"})
    assert calls == [(b"wk-one", b"nope"), (b"wk-two", b"nope")]


def test_each_credential_is_its_own_sender_named_without_its_key() -> None:
    # Repeats of a messageId are recognised per sender: one write key's ids never suppress
    # another's events. The sender's name is a digest, never the key.
    one_in_body = credential(body={**EVENT, "writeKey": "wk-one"}).sender
    one_in_header = credential(authorization="Bearer wk-one").sender
    two = credential(authorization=basic("wk-two:")).sender
    admin = credential(authorization="Bearer admin-one").sender
    raw = json.dumps(EVENT).encode()
    signed = credential(raw=raw, signature=auth.sign(SECRET, raw)).sender
    assert one_in_body == one_in_header
    assert len({one_in_body, two, admin, signed}) == 4
    for name in (one_in_body, two, admin, signed):
        assert "wk-" not in name and "admin-one" not in name and "shared-secret" not in name
