"""Sending requests to Pushwoosh: a pooled `requests.Session`, or the dry-run sink.

`send` never raises for HTTP or network trouble: it returns a `Reply`, and
`worker.retry.classify` decides what the reply means. The API key is added to the headers here,
at the last moment, and never appears in anything this module logs or returns.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from typing import Any, Protocol

import requests
from requests.adapters import HTTPAdapter

from config import fastjson
from config.settings import Settings
from worker.wire import DRY_RUN_APP_CODE, Endpoint

logger = logging.getLogger(__name__)

MAX_REPLY_BODY_CHARS = 2000
__all__ = ["DRY_RUN_APP_CODE", "DRY_RUN_BANNER", "Reply", "Sender", "make_sender"]


@dataclasses.dataclass(frozen=True)
class Reply:
    status: int | None
    body: str = ""
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    transport_error: str | None = None
    elapsed_s: float = 0.0


class Sender(Protocol):
    def send(self, path: str, body: dict[str, Any]) -> Reply: ...


class PushwooshClient:
    """Real delivery over one connection pool per process, 10 s timeout by default.

    Drain tasks run on several threads of one worker (Celery's threads pool). urllib3's pool
    is thread-safe but a `requests.Session` is not documented to be, so each thread gets its own
    session, all mounted on the one shared adapter: one pool of keep-alive connections.
    """

    def __init__(self, settings: Settings, session: requests.Session | None = None) -> None:
        self._settings = settings
        self._endpoint = Endpoint.of(settings)
        self._adapter = HTTPAdapter(pool_connections=4, pool_maxsize=32, max_retries=0)
        self._given_session = session
        if session is not None:
            self._mount(session)
        self._per_thread = threading.local()
        self._headers = self._endpoint.headers(reveal_secrets=True)

    def _mount(self, session: requests.Session) -> requests.Session:
        session.mount("http://", self._adapter)
        session.mount("https://", self._adapter)
        return session

    @property
    def _session(self) -> requests.Session:
        if self._given_session is not None:
            return self._given_session
        session: requests.Session | None = getattr(self._per_thread, "session", None)
        if session is None:
            session = self._per_thread.session = self._mount(requests.Session())
        return session

    def send(self, path: str, body: dict[str, Any]) -> Reply:
        started = time.monotonic()
        data = fastjson.dumps(body)
        try:
            response = self._session.post(
                self._endpoint.url(path),
                data=data,
                headers=self._headers,
                timeout=self._settings.pushwoosh_timeout_s,
            )
        except requests.Timeout:
            return Reply(None, transport_error="timed out", elapsed_s=time.monotonic() - started)
        except requests.RequestException as ex:
            # The exception text can carry the URL but never the headers; keep only its class.
            return Reply(
                None,
                transport_error=f"connection error ({type(ex).__name__})",
                elapsed_s=time.monotonic() - started,
            )
        return Reply(
            status=response.status_code,
            body=response.text[:MAX_REPLY_BODY_CHARS],
            headers=dict(response.headers),
            elapsed_s=time.monotonic() - started,
        )


class DryRunSink:
    """No credentials (or PUSHWOOSH_DRY_RUN=true): log each request instead of sending it."""

    def __init__(self, settings: Settings) -> None:
        self._endpoint = Endpoint.of(settings)

    def send(self, path: str, body: dict[str, Any]) -> Reply:
        events = body.get("events")
        logger.info(
            "DRY RUN: would POST %s (%s) %s",
            self._endpoint.url(path),
            f"{len(events)} events" if isinstance(events, list) else "1 call",
            json.dumps(body, separators=(",", ":"), ensure_ascii=False)[:1000],
        )
        return Reply(status=200)


def make_sender(settings: Settings) -> Sender:
    if settings.dry_run:
        return DryRunSink(settings)
    return PushwooshClient(settings)


DRY_RUN_BANNER = (
    "\n"
    "************************************************************************\n"
    "*  DRY RUN: no Pushwoosh credentials (PUSHWOOSH_API_KEY and            *\n"
    "*  PUSHWOOSH_APPLICATION_CODE), or PUSHWOOSH_DRY_RUN=true.             *\n"
    "*  Nothing is sent to Pushwoosh; every request is logged instead.      *\n"
    "************************************************************************"
)
