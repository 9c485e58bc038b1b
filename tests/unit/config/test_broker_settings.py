"""CELERY_BROKER_URL and a Redis Cluster event store, as the settings read them."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.errors import ConfigError
from config.settings import load_settings

CLUSTER = "redis+cluster://10.0.0.1:7000,10.0.0.2:7001/"


def test_the_broker_defaults_to_the_event_stores_redis() -> None:
    settings = load_settings({"REDIS_URL": "redis://r:6379/2"})
    assert settings.effective_broker_url == "redis://r:6379/2"
    assert not settings.redis_cluster


def test_a_broker_of_its_own_and_its_password_is_masked() -> None:
    settings = load_settings(
        {"CELERY_BROKER_URL": "amqp://fleet:s3cret@mq:5672//", "REDIS_URL": "redis://:pw@r/0"}
    )
    assert settings.effective_broker_url == "amqp://fleet:s3cret@mq:5672//"
    assert {"s3cret", "pw"} <= set(settings.secrets())


def test_a_cluster_event_store_needs_a_broker_and_says_which_field() -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings({"REDIS_URL": CLUSTER})
    (problem,) = raised.value.problems
    assert problem.startswith("CELERY_BROKER_URL: required when REDIS_URL is a Redis Cluster")
    settings = load_settings({"REDIS_URL": CLUSTER, "CELERY_BROKER_URL": "amqp://mq//"})
    assert settings.redis_cluster


def test_a_cluster_is_no_broker_and_waits_for_no_replicas() -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings({"CELERY_BROKER_URL": CLUSTER})
    assert raised.value.problems[0].startswith("CELERY_BROKER_URL=")
    with pytest.raises(ConfigError) as raised:
        load_settings(
            {
                "REDIS_URL": CLUSTER,
                "CELERY_BROKER_URL": "amqp://mq//",
                "REDIS_MIN_REPLICAS_ACK": "1",
            }
        )
    assert raised.value.problems[0].startswith("REDIS_MIN_REPLICAS_ACK: not supported")


def test_the_broker_can_come_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "broker"
    path.write_text("amqp://u:p@mq//\n")
    settings = load_settings({"CELERY_BROKER_URL_FILE": str(path)})
    assert settings.celery_broker_url == "amqp://u:p@mq//"
