"""gunicorn settings for the ingest server, read from the fleet's own settings.

    gunicorn -c python:ingest.gunicorn_conf 'ingest.app:get_app()'

(`python:` loads this module from the installed package, so the command works from any
directory.) PORT, WEB_CONCURRENCY, GUNICORN_WORKER_CONNECTIONS, INGEST_BODY_TIMEOUT_S,
GUNICORN_ACCESS_LOG and LOG_LEVEL are settings like any other (config/settings.py); an invalid
one stops gunicorn here with every problem named.

Serving model: each worker process serves on one event loop (uvicorn on uvloop and httptools,
ingest/server.py), so a connection waiting on a slow client costs a parked coroutine, not a
thread: 64 connections trickling a byte a second leave /healthz and /v1/batch answering in
milliseconds (tests/integration/ingest/test_slow_clients.py; with gthread workers, eight such
connections blocked every thread). Every wait on a client has a deadline: the request line and
headers within `keepalive` seconds of the connection or of the previous answer (ingest/server.py),
the body within INGEST_BODY_TIMEOUT_S of the headers (ingest/handler.py).

Metrics: each worker process counts in prometheus-client's multiprocess mode, in a directory the
master makes fresh at start; the master serves their sum on METRICS_ADDRESS:METRICS_PORT (one
listener per ingest server, never the public port).
"""

import gc
import os
import shutil
import sys
from typing import Any

from config.destinations import all_secrets, load_destinations
from config.errors import ConfigError
from config.settings import load_settings
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
# uvicorn on uvloop and httptools, with deadlines on every request's head (ingest/server.py).
# Up to worker_connections requests at once per process.
worker_class = "ingest.server.IngestWorker"
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


# The request line and headers are held to 64 KB by the worker (ingest/server.py); the body's
# limits are the app's.


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
