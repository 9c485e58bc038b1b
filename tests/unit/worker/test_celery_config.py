"""What Celery is told, by broker: where drain tasks travel and how a worker holds them."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest
from celery.signals import worker_process_init, worker_ready

from config.settings import load_settings
from worker.celery_app import (
    GC_YOUNG_THRESHOLD,
    celery_config,
    settle_the_heap,
    unique_node_name,
)


def test_a_redis_broker_reads_a_task_only_with_a_free_thread() -> None:
    config = celery_config(load_settings({"REDIS_URL": "redis://r:6379/1"}))
    assert config["broker_url"] == "redis://r:6379/1"
    assert config["worker_disable_prefetch"] and not config["task_acks_late"]
    assert config["broker_transport_options"]["global_keyprefix"] == "pwf:celery:"
    assert config["worker_prefetch_multiplier"] == 1


def test_rabbitmq_holds_no_more_tasks_than_threads_through_late_acks() -> None:
    config = celery_config(
        load_settings({"REDIS_URL": "redis+cluster://h:7000/", "CELERY_BROKER_URL": "amqp://mq//"})
    )
    assert config["broker_url"] == "amqp://mq//"
    assert config["task_acks_late"] and not config["worker_disable_prefetch"]
    assert config["worker_prefetch_multiplier"] == 1
    assert config["broker_transport_options"] == {}


def test_a_sentinel_broker_names_its_primary() -> None:
    config = celery_config(load_settings({"CELERY_BROKER_URL": "sentinel://s1:26379/0"}))
    assert config["broker_transport_options"]["master_name"] == "mymaster"


def test_each_worker_process_gets_a_node_name_of_its_own() -> None:
    assert unique_node_name("celery@host-1", 4242) == "worker-4242@host-1"
    assert unique_node_name("celery@host-1", 1) != unique_node_name("celery@host-1", 2)


class _Node:
    me: object


def _cycle() -> weakref.ref[_Node]:
    node = _Node()
    node.me = node
    return weakref.ref(node)


@pytest.fixture
def collector_restored() -> Iterator[None]:
    threshold = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


@pytest.mark.usefixtures("collector_restored")
def test_a_started_worker_keeps_the_collector_off_start_up_objects_and_still_frees_cycles() -> None:
    # Given cyclic garbage made during start-up
    before = _cycle()
    # When the worker settles its heap
    settle_the_heap()
    # Then that garbage was freed, what was alive is out of the collector's reach, and young
    # collections wait for many more new objects
    assert before() is None
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold()[0] == GC_YOUNG_THRESHOLD == 10_000
    # And cyclic garbage made later is still freed
    after = _cycle()
    assert after() is not None
    gc.collect()
    assert after() is None


def test_the_worker_settles_its_heap_when_ready_and_in_each_pool_process() -> None:
    receivers = {
        signal: [getattr(ref(), "__name__", "") for _, ref in signal.receivers]
        for signal in (worker_ready, worker_process_init)
    }
    assert "_announce" in receivers[worker_ready]
    assert "_settle_pool_process" in receivers[worker_process_init]
