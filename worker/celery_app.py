"""The Celery app. Its configuration is read from the environment when Celery first needs it,
not at import time, so importing `worker` never fails on a bad setting and tests can set the
environment first.

Reliability settings, and why:
- Events never travel in Celery messages: they stay pending in their Redis Stream until settled,
  and a drain task message only says "drain shard N". Losing one loses nothing: the shard's lease
  expires and the pump queues another. So drain tasks are acknowledged on receipt (acks_late off):
  with late acks, the Redis transport restores unacked messages when the broker connection drops,
  and in kombu 5.x that path can crash the worker ("Unrecoverable error: 'NoneType' object has no
  attribute 'hostname'") when Redis restarts, which would stop delivery instead of pausing it.
- worker_prefetch_multiplier=1: a worker takes one drain task per free process, so shards are
  spread over processes instead of queued behind each other.
- visibility_timeout: an hour, far above a drain slice, so no task is redelivered while running.
- worker_send_task_events / task_send_sent_event: Flower shows workers and tasks out of the box.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from celery import Celery
from celery.signals import worker_init, worker_ready

from config.settings import load_settings

logger = logging.getLogger(__name__)

app = Celery("pushwoosh_fleet", include=["worker.tasks"])


def queue_name(prefix: str) -> str:
    return f"{prefix}.drain"


def celery_config(env: dict[str, str] | None = None) -> dict[str, Any]:
    settings = load_settings(os.environ if env is None else env)
    queue = queue_name(settings.redis_key_prefix)
    return {
        "broker_url": settings.effective_redis_url,
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": {"visibility_timeout": 3600},
        "task_default_queue": queue,
        "task_queues": None,
        "task_acks_late": False,
        "task_ignore_result": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        "worker_prefetch_multiplier": 1,
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "worker_hijack_root_logger": False,
        "worker_redirect_stdouts": False,
        "broker_heartbeat": 0,
        "timezone": "UTC",
    }


@app.on_configure.connect
def _configure(sender: Celery, **_: Any) -> None:
    sender.conf.update(celery_config())


@worker_init.connect
def _check_config_at_start(**_: Any) -> None:
    """Fail a worker at start-up, not per event at 3 a.m.: settings and mappings load now."""
    from config.mapping_file import mappings_from_settings
    from worker.pushwoosh import DRY_RUN_BANNER

    settings = load_settings(os.environ)
    mappings_from_settings(settings)
    if settings.dry_run:
        logger.warning(DRY_RUN_BANNER)


@worker_ready.connect
def _announce(**_: Any) -> None:
    logger.info("worker ready: draining shards, queue %s", app.conf.task_default_queue)


# Registered at import so `celery -A worker worker` gets the pump without extra flags.
from worker.pump import PumpStep  # noqa: E402

app.steps["worker"].add(PumpStep)
