"""gunicorn settings for the ingest server, read from the fleet's own settings.

    gunicorn -c python:ingest.gunicorn_conf 'ingest.app:get_app()'

(`python:` loads this module from the installed package, so the command works from any
directory.) PORT, WEB_CONCURRENCY, GUNICORN_WORKER_CONNECTIONS, INGEST_BODY_TIMEOUT_S,
GUNICORN_ACCESS_LOG and LOG_LEVEL are settings like any other (config/settings.py); an invalid
one stops gunicorn here with every problem named.

Serving model: gevent workers, so a connection waiting on a slow client costs a parked greenlet,
not a thread: 64 connections trickling a byte a second leave /healthz and /v1/batch answering
in milliseconds (tests/integration/ingest/test_slow_clients.py; with gthread, eight such
connections blocked every thread). Every wait on a client has a deadline: the request line and
headers within `keepalive` seconds (gunicorn's gevent worker applies it to every request, the
first included), the body within INGEST_BODY_TIMEOUT_S of the headers (`pre_request` below).

Metrics: each worker process counts in prometheus-client's multiprocess mode, in a directory the
master makes fresh at start; the master serves their sum on METRICS_ADDRESS:METRICS_PORT (one
listener per ingest server, never the public port).
"""

import gc
import logging
import os
import shutil
import sys
import time
from typing import Any

import gevent
from gunicorn.glogging import Logger

from config.destinations import all_secrets, load_destinations
from config.errors import ConfigError
from config.settings import load_settings
from ingest.errors import RequestTimeout
from telemetry import exposition
from telemetry.logs import gunicorn_logconfig

try:
    _settings = load_settings(os.environ)
    _secrets = all_secrets(_settings, load_destinations(_settings, os.environ))
except ConfigError as _problems:
    print(f"pushwoosh-fleet ingest: {_problems}", file=sys.stderr)
    raise SystemExit(2) from _problems

bind = f"0.0.0.0:{_settings.port}"
workers = _settings.web_concurrency
# gevent: each connection is a greenlet, and Redis calls yield too (gevent patches sockets in
# each worker before the app is loaded). Up to worker_connections at once per process.
# gunicorn's gevent worker, but each answer's head and body leave in one write
# (ingest/gunicorn_worker.py).
worker_class = "ingest.gunicorn_worker.IngestWorker"
worker_connections = _settings.gunicorn_worker_connections
# The worker's heartbeat: a worker silent this long is replaced.
timeout = 30
graceful_timeout = 20
# Idle keep-alive connections close after 5 s, and a request's line and headers must arrive
# within 5 s (of the connection, or of the previous answer).
keepalive = 5
# Access logs off unless asked for: they hold client addresses, and a line per batch adds up.
# gunicorn logs access whenever a logging config is given, so the config itself switches the
# access logger off (telemetry/logs.py) unless GUNICORN_ACCESS_LOG names a destination.
accesslog = _settings.gunicorn_access_log
errorlog = "-"
# gunicorn's lines and the app's in LOG_FORMAT (JSON objects or text), one per line, every
# secret masked, those of the destinations file too.
logconfig_dict = gunicorn_logconfig(_settings, _secrets)
loglevel = _settings.log_level.lower()


class AccessWhenWritten(Logger):  # type: ignore[misc]
    """gunicorn's logger, but an access line is built only when the access logger writes it.

    gunicorn builds every request's access line (a dict of some twenty atoms, the date
    formatted) whenever a logging config is given, though the config above switches its access
    logger off unless GUNICORN_ACCESS_LOG is set: about a tenth of the CPU of a single-event
    request went into lines nobody wrote.
    """

    @property
    def access_log_enabled(self) -> bool:
        return bool(super().access_log_enabled) and self.access_log.isEnabledFor(logging.INFO)


logger_class = AccessWhenWritten
# Request line and headers stay small; the body limit is enforced by the app.
limit_request_line = 8190
limit_request_fields = 100


def post_worker_init(worker: object) -> None:
    """Park everything loaded so far (imports, the app, its schemas) outside the collector.

    Each event batch allocates thousands of objects, so full collections come often, and each
    one walked every module's objects too: pauses of tens of ms that every request in flight
    waited out. Frozen objects are never scanned (nor freed: they live as long as the process).
    Measured at half of saturation, /v1/batch p99 fell from about 29 ms to 15 ms (mean of four
    runs each).
    """
    gc.freeze()


_metrics: dict[str, Any] = {}


def on_starting(server: object) -> None:
    """The master, before any worker: a fresh directory for the workers' metrics."""
    _metrics["dir"] = exposition.fresh_multiprocess_dir("ingest")
    os.environ[exposition.MULTIPROC_ENV] = _metrics["dir"]


def when_ready(server: object) -> None:
    registry = exposition.serving_registry("ingest", _metrics["dir"])
    _metrics["listener"] = exposition.serve(
        registry, _settings.metrics_address, _settings.metrics_port, "ingest"
    )


def post_fork(server: object, worker: object) -> None:
    exposition.use_multiprocess(_metrics["dir"])


def child_exit(server: object, worker: Any) -> None:
    exposition.mark_process_dead(worker.pid, _metrics["dir"])


def on_exit(server: object) -> None:
    listener = _metrics.get("listener")
    if listener is not None:
        listener.stop()
    shutil.rmtree(_metrics["dir"], ignore_errors=True)


def pre_request(worker: object, req: Any) -> None:
    """Give the request's body a deadline, INGEST_BODY_TIMEOUT_S from now (headers are in)."""
    req.body = _DeadlineBody(req, req.body, _settings.ingest_body_timeout_s)


class _DeadlineBody:
    """gunicorn's request body (`wsgi.input`), whose reads end at a deadline.

    A read still waiting at the deadline is interrupted (gevent.Timeout; the worker is gevent)
    with RequestTimeout, which the app answers 408; the request is marked to close its
    connection, so gunicorn neither keeps it alive nor reads the rest of the body.
    """

    def __init__(self, req: Any, body: Any, seconds: float) -> None:
        self._req = req
        self._body = body
        self._seconds = seconds
        self._deadline = time.monotonic() + seconds

    def _timed_out(self) -> RequestTimeout:
        self._req.must_close = True
        return RequestTimeout(f"the request body did not arrive within {self._seconds:g} s")

    def _call(self, method: Any, size: int | None) -> Any:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise self._timed_out()
        with gevent.Timeout(remaining, False):
            return method(size)
        raise self._timed_out()

    def read(self, size: int | None = None) -> bytes:
        return bytes(self._call(self._body.read, size))

    def readline(self, size: int | None = None) -> bytes:
        return bytes(self._call(self._body.readline, size))

    def readlines(self, size: int | None = None) -> list[bytes]:
        return list(self._call(self._body.readlines, size))

    def __iter__(self) -> "_DeadlineBody":
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line
