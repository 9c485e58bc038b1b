"""The baseline the fleet is measured against: the obvious design, one Celery task per event.

- ingest: a small falcon WSGI app under the fleet's gunicorn settings, but gunicorn's threads
  worker (`gunicorn -c python:ingest.gunicorn_conf -k gthread --threads 8
  'bench.baseline:get_app()'`). It checks the write key,
  decodes the JSON, checks each message is an object with a type, and calls
  `deliver.apply_async(args=[event])` once per event.
- worker: `celery -A bench.baseline worker --concurrency=2`; `deliver(event)` maps the event with
  the fleet's own pure mapping (`plan_calls` with the preset mappings) and POSTs one request per
  event with a pooled `requests.Session`, to the same stand-in.

Celery defaults otherwise (JSON, early ack, prefetch 4, no task events): the usual setup.
Configured from the same environment variables as the fleet (REDIS_URL, REDIS_KEY_PREFIX,
PUSHWOOSH_*, INGEST_WRITE_KEYS).
"""

from __future__ import annotations

import base64
import hmac
import json
import os
import uuid
from typing import Any

import falcon
import requests
from celery import Celery

app = Celery("bench_baseline")


@app.on_configure.connect  # type: ignore[untyped-decorator]
def _configure(sender: Celery, **_: Any) -> None:
    sender.conf.update(
        broker_url=os.environ["REDIS_URL"],
        broker_connection_retry_on_startup=True,
        task_default_queue=f"{os.environ['REDIS_KEY_PREFIX']}.baseline",
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        worker_hijack_root_logger=False,
    )


class _Delivery:
    """Per worker process: the compiled mappings, a pooled session, the headers."""

    def __init__(self) -> None:
        from config.mapping_file import preset_mappings

        self.mappings = preset_mappings(enable_batching=False)
        self.app_code = os.environ["PUSHWOOSH_APPLICATION_CODE"]
        self.base = os.environ["PUSHWOOSH_BASE_URL"] + "/integration-segment/v1/"
        self.session = requests.Session()
        self.headers = {
            "Authorization": f"Token {os.environ['PUSHWOOSH_API_KEY']}",
            "X-PW-Appcode": self.app_code,
            "Content-Type": "application/json",
        }


_local: dict[int, _Delivery] = {}


def _delivery() -> _Delivery:
    pid = os.getpid()
    if pid not in _local:
        _local[pid] = _Delivery()
    return _local[pid]


@app.task(name="bench.baseline.deliver")  # type: ignore[untyped-decorator]
def deliver(event: dict[str, Any]) -> int:
    from worker.mapping import plan_calls

    delivery = _delivery()
    calls, _ = plan_calls(event, delivery.mappings, delivery.app_code)
    for call in calls:
        body = {"events": [call.body]} if call.path == "post-events" else call.body
        reply = delivery.session.post(
            delivery.base + call.path, data=json.dumps(body), headers=delivery.headers, timeout=10
        )
        reply.raise_for_status()
    return len(calls)


class _Ingest:
    def __init__(self, route: str) -> None:
        self._route = route
        key = os.environ["INGEST_WRITE_KEYS"].split(",")[0].strip()
        self._accepted = (
            b"Bearer " + key.encode(),
            b"Basic " + base64.b64encode(f"{key}:".encode()),
        )

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        given = (req.get_header("Authorization") or "").encode()
        if not any(hmac.compare_digest(given, ok) for ok in self._accepted):
            raise falcon.HTTPUnauthorized(title="missing or invalid write key")
        try:
            body = json.loads(req.bounded_stream.read())
        except ValueError as ex:
            raise falcon.HTTPBadRequest(title="invalid JSON") from ex
        if self._route == "batch":
            events = body.get("batch") if isinstance(body, dict) else None
        else:
            events = body if isinstance(body, list) else [body]
        if not isinstance(events, list) or not all(
            isinstance(e, dict) and isinstance(e.get("type"), str) for e in events
        ):
            raise falcon.HTTPBadRequest(title="messages must be objects with a type")
        for event in events:
            event.setdefault("messageId", str(uuid.uuid4()))
            deliver.apply_async(args=[event])
        resp.media = {"success": True}


class _Health:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"status": "ok"}


def get_app() -> falcon.App[falcon.Request, falcon.Response]:
    web: falcon.App[falcon.Request, falcon.Response] = falcon.App()
    web.add_route("/v1/batch", _Ingest("batch"))
    web.add_route("/webhook", _Ingest("webhook"))
    web.add_route("/healthz", _Health())
    return web
