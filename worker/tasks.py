"""Celery tasks: the work itself. Arguments are a destination and a shard number, never
events or credentials, so Flower and the broker show nothing secret.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from worker.celery_app import app
from worker.drain import ShardDrainer
from worker.pump import DRAIN_TASK
from worker.runtime import get_runtime

logger = logging.getLogger(__name__)

FAILED_DRAIN_COOLDOWN_MS: Final = 5_000


@app.task(name=DRAIN_TASK, bind=True)  # acks: by broker, in worker/celery_app.py
def drain(self: Any, destination: str, shard: int) -> dict[str, Any]:
    """Deliver what is waiting on one shard for one time slice, then hand over."""
    runtime = get_runtime(destination)
    if runtime is None:
        logger.warning(
            "no destination %r in this worker's configuration; task dropped", destination
        )
        return {"skipped": f"unknown destination {destination!r}"}
    keys = runtime.keys
    # Clear the "already queued" marker first: events arriving from now on need a new task.
    runtime.redis.delete(keys.queued(shard))
    try:
        report = ShardDrainer(runtime, shard).run()
    except Exception:
        # Whatever failed (a bug, Redis going away) may fail again at once: hold the pump off
        # this shard for a while instead of spinning. Its events stay pending, nothing is lost.
        runtime.redis.set(keys.queued(shard), "cooling-down", px=FAILED_DRAIN_COOLDOWN_MS)
        raise
    result = report.as_dict()
    if report.not_started is None and report.entries:
        logger.info("drained shard %d: %s", shard, result)
    return result
