"""One way to build a Redis client from REDIS_URL: plain, through Sentinel, or a Redis Cluster.

`redis://`, `rediss://` and `unix://` URLs connect directly. A Sentinel URL lists the sentinels,
as Celery's broker URL does — `sentinel://10.0.0.1:26379;sentinel://10.0.0.2:26379/0` — and the
monitored primary's name comes from REDIS_SENTINEL_MASTER. Through Sentinel, redis-py asks the
sentinels for the current primary whenever a connection fails, so a failover is a short outage
(ingest answers 503 with Retry-After meanwhile), not a configuration change.

A cluster URL lists some of its nodes — `redis+cluster://:password@h1:7000,h2:7001/`
(`rediss+cluster://` for TLS) — and redis-py's `RedisCluster` finds the others and routes each
command to the node serving its key's slot, following the cluster when slots move. Every key
one shard's work touches shares a hash tag (config/redis_keys.py), so each script and
transaction stays on one node.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import unquote, urlsplit

import redis
from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import RedisClusterException
from redis.sentinel import Sentinel

from config.settings import Settings, is_cluster_url

logger = logging.getLogger(__name__)


def is_sentinel_url(url: str) -> bool:
    return url.startswith("sentinel://")


def parse_sentinel_url(url: str) -> tuple[list[tuple[str, int]], int, str | None]:
    """`sentinel://h1:26379;sentinel://:pw@h2:26380/0` → ([(h1, 26379), (h2, 26380)], 0, pw)."""
    hosts: list[tuple[str, int]] = []
    db = 0
    password: str | None = None
    for part in url.split(";"):
        split = urlsplit(part.strip())
        if split.scheme != "sentinel" or not split.hostname:
            raise ValueError(f"not a sentinel URL part: {part!r}")
        hosts.append((split.hostname, split.port or 26379))
        if split.path.strip("/"):
            db = int(split.path.strip("/"))
        if split.password:
            password = unquote(split.password)
    return hosts, db, password


def parse_cluster_url(url: str) -> tuple[list[tuple[str, int]], dict[str, Any]]:
    """`redis+cluster://u:pw@h1:7000,h2/` → ([(h1, 7000), (h2, 6379)], {username, password})."""
    split = urlsplit(url)
    if not is_cluster_url(url) or not split.netloc:
        raise ValueError(f"not a cluster URL: {url!r}")
    userinfo, _, hosts = split.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    nodes: list[tuple[str, int]] = []
    for part in hosts.split(","):
        host, _, port = part.strip().rpartition(":") if ":" in part else (part.strip(), "", "")
        if not host:
            raise ValueError(f"a cluster node needs a host: {part!r} in {url!r}")
        nodes.append((host, int(port or 6379)))
    if split.path.strip("/") not in ("", "0"):
        raise ValueError(f"a Redis Cluster has only database 0: {url!r}")
    options: dict[str, Any] = {"ssl": split.scheme.startswith("rediss")}
    if user:
        options["username"] = unquote(user)
    if password:
        options["password"] = unquote(password)
    return nodes, options


def is_cluster(client: Any) -> bool:
    """True for a RedisCluster client (and its pipelines)."""
    return isinstance(client, RedisCluster)


def redis_for(settings: Settings, **kwargs: Any) -> redis.Redis:
    """A client for the settings' REDIS_URL (or the default), direct or through Sentinel."""
    return make_redis(settings.effective_redis_url, settings.redis_sentinel_master, **kwargs)


def make_redis(url: str, sentinel_master: str, **kwargs: Any) -> redis.Redis:
    if is_cluster_url(url):
        nodes, options = parse_cluster_url(url)
        startup = [ClusterNode(host, port) for host, port in nodes]
        return RedisCluster(startup_nodes=startup, **options, **kwargs)
    if not is_sentinel_url(url):
        return redis.Redis.from_url(url, **kwargs)
    hosts, db, password = parse_sentinel_url(url)
    sentinel_kwargs = {
        k: v for k, v in kwargs.items() if k in ("socket_timeout", "socket_connect_timeout")
    }
    sentinel = Sentinel(hosts, sentinel_kwargs=sentinel_kwargs, password=password, db=db)
    return sentinel.master_for(sentinel_master, **kwargs)


def memory_info(client: Any) -> dict[str, Any]:
    """INFO memory; of a cluster, the primary nearest its maxmemory (the first to refuse)."""
    if not is_cluster(client):
        return dict(client.info("memory"))
    replies = client.info("memory", target_nodes=RedisCluster.PRIMARIES)
    if "used_memory" in replies:  # one primary: its reply, not one per node
        return dict(replies)
    return max((dict(reply) for reply in replies.values()), key=_fill)


def _fill(info: dict[str, Any]) -> float:
    limit = int(info.get("maxmemory") or 0)
    return int(info.get("used_memory") or 0) / limit if limit else 0.0


class MemoryReader:
    """What `ingest.memory.MemoryGuard` reads: `info("memory")`, through `memory_info`."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def info(self, section: str) -> dict[str, Any]:
        assert section == "memory"
        return memory_info(self._client)


def warn_if_evicting(client: Any) -> None:
    """Log a warning when Redis may evict keys at maxmemory; a start-up check, never fatal.

    Eviction could drop accepted events, leases and dead letters: the fleet wants
    `maxmemory-policy noeviction` (ingest stops taking events before Redis is full).
    """
    try:
        policy = memory_info(client).get("maxmemory_policy")
    except (redis.RedisError, RedisClusterException):
        return  # not reachable yet: ingest and workers report that themselves
    if policy is not None and policy != "noeviction":
        logger.warning(
            "Redis maxmemory-policy is %r: at maxmemory it would evict keys, which can drop "
            "accepted events, leases and dead letters; set it to noeviction",
            policy,
        )
