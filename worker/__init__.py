"""Celery workers that drain the event streams and deliver Pushwoosh calls.

`celery -A worker worker` and `celery -A worker flower` find the Celery app as `worker.app`.
"""

from worker.celery_app import app

__all__ = ["app"]
