"""A Pushwoosh HTTP request described as data: method, URL, headers, JSON body.

Pure: the request can be built, shown (`pushwoosh-fleet preview`) and tested without a socket.
The API key is masked unless the caller asks to reveal it, so a request can be printed safely.
"""

from __future__ import annotations

import dataclasses
from importlib import metadata
from typing import Any, Final

from config.settings import MASK, Secret

API_PREFIX: Final = "/integration-segment/v1/"
CREDENTIALS_CHECK_EVENT: Final = "test_segment_auth"


def _version() -> str:
    try:
        return metadata.version("pushwoosh-fleet")
    except metadata.PackageNotFoundError:  # running from a source tree that is not installed
        return "0.0.0"


USER_AGENT: Final = f"pushwoosh-fleet/{_version()}"


@dataclasses.dataclass(frozen=True)
class HttpRequest:
    """One request as data; `headers` hold the masked key unless it was revealed."""

    method: str
    url: str
    headers: dict[str, str]
    json: dict[str, Any]


def build_http_request(
    path: str,
    body: dict[str, Any],
    *,
    base_url: str,
    api_key: Secret | None,
    app_code: str | None,
    user_agent: str,
    reveal_secrets: bool = False,
) -> HttpRequest:
    """POST to base_url/integration-segment/v1/<path>; no key or app code: no such header."""
    headers: dict[str, str] = {}
    if api_key is not None:
        # The word is "Token", not "Bearer": the wire contract.
        headers["Authorization"] = f"Token {api_key.reveal() if reveal_secrets else MASK}"
    if app_code is not None:
        headers["X-PW-Appcode"] = app_code
    headers["Content-Type"] = "application/json"
    headers["User-Agent"] = user_agent
    url = base_url.rstrip("/") + API_PREFIX + path.lstrip("/")
    return HttpRequest(method="POST", url=url, headers=headers, json=body)


def ping_body() -> dict[str, Any]:
    """The credentials check; Pushwoosh wants it wrapped in "body", and any 2xx means valid."""
    return {"body": {"name": CREDENTIALS_CHECK_EVENT}}
