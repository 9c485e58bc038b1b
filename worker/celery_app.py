"""The Celery app. Its configuration is read from the environment when Celery first needs it,
not at import time, so importing `worker` never fails on a bad setting and tests can set the
environment first.

The broker is CELERY_BROKER_URL (RabbitMQ or a Redis), else the event store's Redis. Drain
tasks are few (one per shard per slice); the event store is the hot path.

Reliability settings, and why:
- Events never travel in Celery messages: they stay pending in their Redis Stream until settled,
  and a drain task message only says "drain shard N". Losing one loses nothing: the shard's lease
  expires and the pump queues another.
- A worker holds only the drain tasks it can start now, so with N processes and at least N x
  threads shards every process drains. Celery's prefetch limit counts unacknowledged messages,
  and an early-acked task is acknowledged when it starts: with prefetch 1 a busy worker still
  reserves one more task per thread, which then waits a whole slice in that worker while
  another worker idles. So:
  - on a Redis broker, worker_disable_prefetch: the worker reads a message only while it has a
    free thread. Tasks stay acknowledged on receipt: with late acks the Redis transport restores
    unacked messages when the connection drops, and in kombu 5.x that path can crash the worker
    ("Unrecoverable error: 'NoneType' object has no attribute 'hostname'") when Redis restarts,
    which would stop delivery instead of pausing it.
  - on RabbitMQ (which ignores worker_disable_prefetch), late acks with prefetch 1: the broker
    then hands a worker no more messages than it has threads. A worker killed mid-task gets its
    message redelivered at once, which finds the shard still leased and ends; the pump queues
    the shard again when the lease expires.
- visibility_timeout (Redis): an hour, far above a drain slice, so no task is redelivered while
  running.
- worker_send_task_events / task_send_sent_event: Flower shows workers and tasks out of the box.
- Each worker gets its own node name, `worker-<pid>@<host>`, unless `-n` names it: two workers
  on one machine would otherwise both be `celery@<host>`, which Celery warns about and Flower
  and `status` cannot tell apart.

Beside Celery, each worker process runs (FleetStep): the pump, the heartbeat its liveness probe
reads (worker/heartbeat.py), and its metrics listener on METRICS_ADDRESS:WORKER_METRICS_PORT.
With the prefork pool the children count in prometheus-client's multiprocess mode and the
worker process serves their sum.

Once started, a worker tunes the cyclic garbage collector for delivery (`settle_the_heap`):
what start-up built (Celery, the modules, some 80,000 objects) is moved out of its reach,
and it looks for cycles after 10,000 new objects rather than 700. Delivery makes almost no
cyclic garbage (reference counting frees its events), but a read holds a batch of events
alive, which crossed the default threshold several times per read.
"""

from __future__ import annotations

import gc
import logging
import os
import shutil
from typing import Any, Final

import redis
from celery import Celery, bootsteps
from celery.app.trace import setup_worker_optimizations
from celery.concurrency import get_implementation
from celery.signals import (
    celeryd_init,
    setup_logging,
    task_postrun,
    task_prerun,
    worker_init,
    worker_process_init,
    worker_process_shutdown,
    worker_ready,
)
from celery.utils.nodenames import default_nodename, host_format

from config.destinations import all_secrets, load_destinations
from config.errors import ConfigError
from config.redis_keys import RedisKeys, celery_key_prefix, celery_queue, worker_heartbeats
from config.settings import Settings, load_settings
from store.client import redis_for, warn_if_evicting
from telemetry import exposition
from telemetry.logs import configure_logging
from worker.heartbeat import Heartbeat
from worker.pump import Pump
from worker.pushwoosh import DRY_RUN_BANNER
from worker.runtime import get_runtimes

logger = logging.getLogger(__name__)

app = Celery("pushwoosh_fleet", include=["worker.tasks"])


def broker_is_redis(settings: Settings) -> bool:
    return settings.effective_broker_url.startswith(("redis://", "rediss://", "sentinel://"))


def celery_config(settings: Settings) -> dict[str, Any]:
    redis_broker = broker_is_redis(settings)
    transport_options: dict[str, Any] = {}
    if redis_broker:
        transport_options = {
            "visibility_timeout": 3600,
            # Celery's keys and pub/sub channels under the fleet's prefix: two fleets (or two
            # test runs) on one Redis never see each other's tasks, workers or events.
            "global_keyprefix": celery_key_prefix(settings.redis_key_prefix),
        }
    if settings.effective_broker_url.startswith("sentinel://"):
        # kombu reads the sentinels from the URL and the primary's name from here
        transport_options["master_name"] = settings.redis_sentinel_master
    return {
        "broker_url": settings.effective_broker_url,
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": transport_options,
        "task_default_queue": celery_queue(settings.redis_key_prefix),
        "task_queues": None,
        # A worker holds only what it can start now (see above): one way per broker.
        "task_acks_late": not redis_broker,
        "worker_disable_prefetch": redis_broker,
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
    try:
        settings = load_settings(os.environ)
    except ConfigError:
        settings = Settings()  # worker_init reports every problem and stops the worker
    sender.conf.update(celery_config(settings))


@setup_logging.connect
def _configure_logging(**_: Any) -> None:
    """One line per record, JSON with LOG_FORMAT=json, every secret masked (telemetry/logs.py).

    Connecting this signal also keeps Celery from installing its own handlers.
    """
    try:
        settings = load_settings(os.environ)
        configure_logging(settings, all_secrets(settings, load_destinations(settings, os.environ)))
    except ConfigError:
        logging.basicConfig(level=logging.INFO)  # worker_init reports the bad settings


def unique_node_name(hostname: str, pid: int) -> str:
    """`celery@host` -> `worker-<pid>@host`: one name per process, even on one machine."""
    return f"worker-{pid}@{hostname.partition('@')[2] or hostname}"


@celeryd_init.connect
def _name_the_node(instance: Any = None, **_: Any) -> None:
    """Replace Celery's default node name (`celery@<host>`, the same for every worker of a
    machine) by a unique one; a name given with -n/--hostname stays as it is."""
    if instance is None or instance.hostname != host_format(default_nodename(None)):
        return
    instance.hostname = unique_node_name(instance.hostname, os.getpid())
    setup_worker_optimizations(instance.app, instance.hostname)  # tasks see the new name too


# New container objects between two young collections of the cyclic garbage collector (the
# interpreter's default is 700); see settle_the_heap.
GC_YOUNG_THRESHOLD: Final = 10_000

# What this worker process runs beside Celery; set up by worker_init and FleetStep.
_process: dict[str, Any] = {}


@worker_init.connect
def _check_config_at_start(sender: Any = None, **_: Any) -> None:
    """Fail a worker at start-up, not per event at 3 a.m.: settings and mappings load now."""
    try:
        settings = load_settings(os.environ)
        destinations = load_destinations(settings, os.environ)
    except ConfigError as ex:
        # Celery logs and swallows exceptions from signal handlers; SystemExit gets through.
        logger.critical("cannot start: %s", ex)
        raise SystemExit(2) from ex
    for name, destination in destinations.items():
        if destination.settings.dry_run:
            logger.warning("destination %s: %s", name, DRY_RUN_BANNER)
    warn_if_evicting(redis_for(settings, socket_connect_timeout=2, socket_timeout=5))
    _prepare_metrics(sender)


def _prepare_metrics(worker: Any) -> None:
    """A pool that forks (prefork) counts in multiprocess mode: switch before it forks."""
    pool = get_implementation(getattr(worker, "pool_cls", None) or "prefork")
    if pool.__module__.rsplit(".", 1)[-1] != "prefork":
        return
    directory = exposition.fresh_multiprocess_dir("worker")
    exposition.use_multiprocess(directory)
    _process["metrics_dir"] = directory


@worker_process_shutdown.connect
def _forget_pool_process(pid: int | None = None, **_: Any) -> None:
    directory = _process.get("metrics_dir")
    if directory and pid:
        exposition.mark_process_dead(pid, directory)


@task_prerun.connect
def _task_started(task_id: str | None = None, **_: Any) -> None:
    heartbeat = _process.get("heartbeat")
    if heartbeat is not None and task_id:
        heartbeat.task_started(task_id)


@task_postrun.connect
def _task_finished(task_id: str | None = None, **_: Any) -> None:
    heartbeat = _process.get("heartbeat")
    if heartbeat is not None and task_id:
        heartbeat.task_finished(task_id)


@worker_ready.connect
def _announce(**_: Any) -> None:
    logger.info("worker ready: draining shards, queue %s", app.conf.task_default_queue)
    settle_the_heap()


@worker_process_init.connect
def _settle_pool_process(**_: Any) -> None:
    settle_the_heap()  # a prefork child, which runs the tasks there


def settle_the_heap() -> None:
    """Keep the cyclic garbage collector off what start-up built, and from running per read.

    Collect once, then move every object still alive to the permanent generation, which
    collections skip: modules, Celery's app and its machinery live as long as the process
    anyway (each full collection walked all of them, 50-60 ms, a few times per 10,000 events).
    Then look for cycles only after GC_YOUNG_THRESHOLD new objects: a read of 100 events
    holds a few thousand alive until they are sent, so the default 700 set off collections
    that found nothing to free. Cyclic garbage still goes, a little later; memory holds at
    most that many more objects."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD)


def _pump_targets() -> list[tuple[redis.Redis, RedisKeys, Settings]]:
    return [(rt.redis, rt.keys, rt.settings) for rt in get_runtimes().values()]


def stuck_after_s(settings: Settings) -> float:
    """Longer than any drain task can run: its slice, one request, then its lease as margin."""
    return settings.drain_slice_s + settings.pushwoosh_timeout_s + settings.drain_lease_s


class FleetStep(bootsteps.StartStopStep):
    """Runs the pump, the heartbeat and the metrics listener in the worker's main process."""

    requires = {"celery.worker.components:Pool"}

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.pump: Pump | None = None
        self.heartbeat: Heartbeat | None = None
        self.listener: exposition.Listener | None = None

    def start(self, parent: Any) -> None:
        settings = load_settings(os.environ)

        def send_task(name: str, args: tuple[str, int]) -> Any:
            return app.send_task(name, args=args)

        heartbeat = Heartbeat(
            settings.heartbeat_path,
            str(getattr(parent, "hostname", None) or f"worker-{os.getpid()}"),
            stuck_after_s(settings),
            worker_heartbeats(settings.redis_key_prefix),
        )
        self.heartbeat = _process["heartbeat"] = heartbeat

        def beat(redis_ok: bool) -> None:
            targets = _pump_targets() if redis_ok else []
            heartbeat.beat(redis_ok, targets[0][0] if targets else None)

        self.pump = Pump(settings.pump_interval_s, _pump_targets, send_task, on_pass=beat)
        self.pump.start()
        registry = exposition.serving_registry("worker", _process.get("metrics_dir"))
        self.listener = exposition.serve(
            registry, settings.metrics_address, settings.worker_metrics_port, "worker"
        )

    def stop(self, parent: Any) -> None:
        if self.pump is not None:
            self.pump.stop()
            self.pump = None
        if self.heartbeat is not None:
            targets = _pump_targets_or_none()
            self.heartbeat.stop(targets[0][0] if targets else None)
            self.heartbeat = None
        if self.listener is not None:
            self.listener.stop()
            self.listener = None
        directory = _process.pop("metrics_dir", None)
        if directory:
            shutil.rmtree(directory, ignore_errors=True)

    shutdown = stop


def _pump_targets_or_none() -> list[tuple[redis.Redis, RedisKeys, Settings]] | None:
    try:
        return _pump_targets()
    except Exception:  # shutting down with a broken configuration or Redis: nothing to tidy
        return None


# `celery -A worker worker` gets the pump without extra flags.
app.steps["worker"].add(FleetStep)
