"""What Celery is told, by broker: where drain tasks travel and how a worker holds them."""

from __future__ import annotations

from config.settings import load_settings
from worker.celery_app import celery_config, unique_node_name


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
