"""gunicorn settings for the ingest server; a plain Python file (`gunicorn -c`).

    gunicorn -c ingest/gunicorn_conf.py 'ingest.app:get_app()'

PORT and WEB_CONCURRENCY follow the usual platform conventions; everything else the app
reads itself (see config/settings.py).
"""

import os

from fleet.logging_setup import gunicorn_logconfig

bind = f"0.0.0.0:{os.environ.get('PORT') or '8000'}"
workers = int(os.environ.get("WEB_CONCURRENCY") or "2")
# Threads, because a request mostly waits on Redis; 4 per worker keeps memory flat.
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS") or "4")
# Segment's Webhooks (Actions) give up after 10 s; a request must never take that long.
timeout = 30
graceful_timeout = 20
keepalive = 5
# Access logs off by default (one line per event batch adds up); GUNICORN_ACCESS_LOG=- turns on.
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
errorlog = "-"
# gunicorn's lines and the app's in LOG_FORMAT (JSON objects or text), one per line, secrets
# masked.
logconfig_dict = gunicorn_logconfig(os.environ)
loglevel = (os.environ.get("LOG_LEVEL") or "info").lower()
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
    import gc

    gc.freeze()
