"""The HTTP request as data: URL, headers (key masked unless revealed), body."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest

from config.settings import Secret, load_settings
from worker.pushwoosh import DryRunSink, PushwooshClient
from worker.wire import USER_AGENT, Endpoint, HttpRequest, ping_body

KEY = Secret("PW_API_TOKEN_abc123")


@pytest.mark.parametrize(
    ("base_url", "path", "url"),
    [
        (
            "https://integration-segment.svc-nue.pushwoosh.com",
            "post-events",
            "https://integration-segment.svc-nue.pushwoosh.com/integration-segment/v1/post-events",
        ),
        (
            "http://127.0.0.1:8080/",
            "track-user",
            "http://127.0.0.1:8080/integration-segment/v1/track-user",
        ),
        ("http://stub", "delete-user", "http://stub/integration-segment/v1/delete-user"),
        ("http://stub", "ping", "http://stub/integration-segment/v1/ping"),
    ],
)
def test_url(base_url: str, path: str, url: str) -> None:
    request = Endpoint(base_url, KEY, "ABCDE-12345", "ua").request(path, {})
    assert (request.method, request.url) == ("POST", url)


@pytest.mark.parametrize(
    ("reveal", "authorization"),
    [(False, "Token ****"), (True, "Token PW_API_TOKEN_abc123")],
)
def test_headers(reveal: bool, authorization: str) -> None:
    body = {"events": [{"name": "x"}]}
    endpoint = Endpoint("http://stub", KEY, "ABCDE-12345", USER_AGENT)
    request = endpoint.request("post-events", body, reveal_secrets=reveal)
    assert request == HttpRequest(
        method="POST",
        url="http://stub/integration-segment/v1/post-events",
        headers={
            "Authorization": authorization,
            "X-PW-Appcode": "ABCDE-12345",
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
        },
        json=body,
    )


def test_masked_request_never_shows_the_key() -> None:
    request = Endpoint("http://stub", KEY, "A", "ua").request("ping", ping_body())
    assert "PW_API_TOKEN_abc123" not in repr(request)


def test_without_credentials_the_headers_are_left_out() -> None:
    request = Endpoint("http://stub", None, None, "ua").request("ping", ping_body())
    assert request.headers == {"Content-Type": "application/json", "User-Agent": "ua"}


def test_ping_body_is_wrapped_in_body() -> None:
    assert ping_body() == {"body": {"name": "test_segment_auth"}}
    assert ping_body() is not ping_body()  # callers may change their copy


def test_user_agent_names_project_and_version() -> None:
    assert re.fullmatch(r"pushwoosh-fleet/\d+\.\d+\.\d+\S*", USER_AGENT)


def test_real_sends_use_the_same_url_and_headers_as_preview_and_ping() -> None:
    # One builder for all three: the client's headers are the endpoint's, revealed.
    settings = load_settings(
        {"PUSHWOOSH_API_KEY": KEY.reveal(), "PUSHWOOSH_APPLICATION_CODE": "ABCDE-12345",
         "PUSHWOOSH_BASE_URL": "http://stub"}
    )  # fmt: skip
    client = PushwooshClient(settings)
    preview = Endpoint.of(settings).request("post-events", {}, reveal_secrets=True)
    lines = client._head("post-events", 2).decode().split("\r\n")
    assert lines[0] == f"POST {urlsplit(preview.url).path} HTTP/1.1"
    sent = dict(line.split(": ", 1) for line in lines[1:] if line)
    assert {name: sent[name] for name in preview.headers} == preview.headers
    assert (sent["Host"], sent["Content-Length"]) == ("stub", "2")
    assert isinstance(DryRunSink(settings).send("ping", ping_body()).status, int)
