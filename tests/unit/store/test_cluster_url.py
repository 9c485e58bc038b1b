"""Redis Cluster URLs: the nodes and credentials they carry, and how they are shown."""

from __future__ import annotations

import pytest

from fleet.locate import masked
from store.client import parse_cluster_url


def test_a_cluster_url_lists_its_nodes_and_credentials() -> None:
    nodes, options = parse_cluster_url("rediss+cluster://app:p%40ss@h1:7000,h2,10.0.0.3:7002/")
    assert nodes == [("h1", 7000), ("h2", 6379), ("10.0.0.3", 7002)]
    assert options == {"ssl": True, "username": "app", "password": "p@ss"}
    assert parse_cluster_url("redis+cluster://h1:7000")[1] == {"ssl": False}


@pytest.mark.parametrize(
    "url", ["redis://h1:7000", "redis+cluster:///", "redis+cluster://h1:7000/3"]
)
def test_what_is_not_a_cluster_url(url: str) -> None:
    with pytest.raises(ValueError):
        parse_cluster_url(url)


def test_a_cluster_url_is_shown_without_its_password() -> None:
    assert (
        masked("redis+cluster://:pw@h1:7000,h2:7001/") == "redis+cluster://:****@h1:7000,h2:7001/"
    )
    assert masked("amqp://fleet:pw@mq:5672//") == "amqp://fleet:****@mq:5672//"
