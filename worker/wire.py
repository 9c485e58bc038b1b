"""A Pushwoosh HTTP request described as data: method, URL, headers, JSON body.

Pure, and the only place requests are built: real sends (`worker/pushwoosh.py`), `preview` and
`ping` all go through `Endpoint`, so they cannot disagree. The API key is masked unless the
caller asks to reveal it, so a request can be printed safely.
"""

from __future__ import annotations

import dataclasses
from importlib import metadata
from typing import Any, Final

from config.settings import MASK, Secret, Settings

API_PREFIX: Final = "/integration-segment/v1/"
CREDENTIALS_CHECK_EVENT: Final = "test_segment_auth"
PING_PATH: Final = "ping"
# What a dry run puts in batch elements where the application code would go.
DRY_RUN_APP_CODE: Final = "DRYRN-00000"


def _version() -> str:
    try:
        return metadata.version("pushwoosh-fleet")
    except metadata.PackageNotFoundError:  # running from a source tree that is not installed
        return "0.0.0"


VERSION: Final = _version()
USER_AGENT: Final = f"pushwoosh-fleet/{VERSION}"


@dataclasses.dataclass(frozen=True)
class HttpRequest:
    """One request as data; `headers` hold the masked key unless it was revealed."""

    method: str
    url: str
    headers: dict[str, str]
    json: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """What every request to one Pushwoosh application has in common."""

    base_url: str
    api_key: Secret | None
    app_code: str | None
    user_agent: str = USER_AGENT

    @classmethod
    def of(cls, settings: Settings) -> Endpoint:
        return cls(
            settings.pushwoosh_base_url,
            settings.pushwoosh_api_key,
            settings.pushwoosh_application_code,
        )

    def url(self, path: str) -> str:
        """POST to base_url/integration-segment/v1/<path>."""
        return self.base_url.rstrip("/") + API_PREFIX + path.lstrip("/")

    def headers(self, *, reveal_secrets: bool = False) -> dict[str, str]:
        """No key or app code: no such header."""
        headers: dict[str, str] = {}
        if self.api_key is not None:
            # The word is "Token", not "Bearer": the wire contract.
            key = self.api_key.reveal() if reveal_secrets else MASK
            headers["Authorization"] = f"Token {key}"
        if self.app_code is not None:
            headers["X-PW-Appcode"] = self.app_code
        headers["Content-Type"] = "application/json"
        headers["User-Agent"] = self.user_agent
        return headers

    def request(
        self, path: str, body: dict[str, Any], *, reveal_secrets: bool = False
    ) -> HttpRequest:
        return HttpRequest(
            "POST", self.url(path), self.headers(reveal_secrets=reveal_secrets), body
        )


def ping_body() -> dict[str, Any]:
    """The credentials check; Pushwoosh wants it wrapped in "body", and any 2xx means valid."""
    return {"body": {"name": CREDENTIALS_CHECK_EVENT}}
