"""Who may open the delivery page (an admin key, as Basic or Bearer) and the CSRF token its
actions carry."""

from __future__ import annotations

import base64
import dataclasses

import pytest

from config.destinations import Destination
from config.settings import Secret, load_settings
from fleet.page import access

FLEET_KEY = "fleet-admin-key"
IOS_KEY = "ios-admin-key"
SECRET = b"s" * 32


def _basic(text: str) -> str:
    return "Basic " + base64.b64encode(text.encode()).decode()


def _access(fleet_keys: str = FLEET_KEY) -> access.PageAccess:
    settings = load_settings({"INGEST_WRITE_KEYS": "w", "INGEST_ADMIN_KEYS": fleet_keys})
    ios = Destination("ios", settings, (), (Secret("w-ios"),), None, (Secret(IOS_KEY),))
    web = Destination("web", settings, (), (Secret("w-web"),), None, ())
    return access.PageAccess.of(settings, {"ios": ios, "web": web})


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("Bearer k1", ("bearer", ["k1"])),
        ("bearer   k1  ", ("bearer", ["k1"])),
        ("Bearer", None),
        (_basic("admin:k1"), ("basic", ["k1", "admin"])),
        (_basic("k1:"), ("basic", ["k1"])),  # the key as user name, as curl -u KEY: sends it
        (_basic("k1"), ("basic", ["k1"])),
        (_basic(":"), None),
        ("Basic not-base64!", None),
        ("Basic " + base64.b64encode(b"\xff\xfe").decode(), None),  # not UTF-8
        ("Token k1", None),
        ("Digest k1", None),
    ],
)
def test_the_strings_that_may_be_the_key(header, expected) -> None:
    assert access.credentials(header) == expected


@pytest.mark.parametrize(
    ("header", "opens"),
    [
        (_basic(f"admin:{FLEET_KEY}"), {"ios", "web"}),
        (f"Bearer {FLEET_KEY}", {"ios", "web"}),
        (_basic(f"{FLEET_KEY}:"), {"ios", "web"}),
        (_basic(f"admin:{IOS_KEY}"), {"ios"}),  # a destination's key opens its own only
        (_basic("admin:wrong"), None),
        (_basic("admin:w"), None),  # a write key never opens the page
        (_basic(f"admin:{FLEET_KEY}x"), None),
        (f"Bearer {FLEET_KEY[:-1]}", None),
        (None, None),
    ],
)
def test_which_destinations_a_key_opens(header, opens) -> None:
    visitor = _access().visitor(header)
    if opens is None:
        assert visitor is None
    else:
        assert visitor is not None and visitor.destinations == frozenset(opens)


def test_the_visitor_is_named_by_a_digest_never_the_key() -> None:
    page = _access()
    basic = page.visitor(_basic(f"admin:{FLEET_KEY}"))
    bearer = page.visitor(f"Bearer {FLEET_KEY}")
    other = page.visitor(_basic(f"admin:{IOS_KEY}"))
    assert basic is not None and bearer is not None and other is not None
    assert basic.sender == bearer.sender != other.sender
    assert FLEET_KEY not in basic.sender
    assert (basic.scheme, bearer.scheme) == ("basic", "bearer")


def test_without_any_admin_key_the_page_is_closed() -> None:
    page = _access(fleet_keys="")
    assert page.configured  # ios has a key of its own
    closed = dataclasses.replace(page, destination_keys={"ios": (), "web": ()})
    assert not closed.configured
    assert closed.visitor(_basic("admin:anything")) is None


def _visitor(scheme: str = "basic", sender: str = "a" * 32) -> access.Visitor:
    return access.Visitor(scheme, sender, frozenset({"ios"}))


def test_the_token_is_bound_to_the_key_and_the_process_secret() -> None:
    token = access.csrf_token(SECRET, _visitor())
    assert token == access.csrf_token(SECRET, _visitor())
    assert token != access.csrf_token(SECRET, _visitor(sender="b" * 32))
    assert token != access.csrf_token(b"t" * 32, _visitor())


@pytest.mark.parametrize(
    ("method", "scheme", "token", "allowed"),
    [
        ("GET", "basic", None, True),
        ("HEAD", "basic", None, True),
        ("POST", "basic", None, False),
        ("POST", "basic", "", False),
        ("POST", "basic", "0" * 64, False),
        ("POST", "basic", "right", True),
        ("post", "basic", "right", True),
        ("DELETE", "basic", None, False),
        ("POST", "bearer", None, True),  # a browser never adds a Bearer header by itself
        ("POST", "basic", "right-but-longer", False),
        ("POST", "basic", "ünïcode", False),
    ],
)
def test_which_requests_may_act(method, scheme, token, allowed) -> None:
    visitor = _visitor(scheme)
    right = access.csrf_token(SECRET, visitor)
    given = {"right": right, "right-but-longer": right + "0"}.get(token, token) if token else token
    assert access.csrf_allows(SECRET, visitor, method, given) is allowed


def test_the_challenge_makes_a_browser_ask() -> None:
    assert access.challenge().startswith('Basic realm="')
