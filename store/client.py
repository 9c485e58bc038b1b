"""One way to build a Redis client from REDIS_URL, plain or through Sentinel.

`redis://`, `rediss://` and `unix://` URLs connect directly. A Sentinel URL lists the sentinels,
as Celery's broker URL does — `sentinel://10.0.0.1:26379;sentinel://10.0.0.2:26379/0` — and the
monitored primary's name comes from REDIS_SENTINEL_MASTER. Through Sentinel, redis-py asks the
sentinels for the current primary whenever a connection fails, so a failover is a short outage
(ingest answers 503 with Retry-After meanwhile), not a configuration change.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import unquote, urlsplit

import redis
from redis.sentinel import Sentinel

from config.settings import Settings

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


def redis_for(settings: Settings, **kwargs: Any) -> redis.Redis:
    """A client for the settings' REDIS_URL (or the default), direct or through Sentinel."""
    return make_redis(settings.effective_redis_url, settings.redis_sentinel_master, **kwargs)


def make_redis(url: str, sentinel_master: str, **kwargs: Any) -> redis.Redis:
    if not is_sentinel_url(url):
        return redis.Redis.from_url(url, **kwargs)
    hosts, db, password = parse_sentinel_url(url)
    sentinel_kwargs = {
        k: v for k, v in kwargs.items() if k in ("socket_timeout", "socket_connect_timeout")
    }
    sentinel = Sentinel(hosts, sentinel_kwargs=sentinel_kwargs, password=password, db=db)
    return sentinel.master_for(sentinel_master, **kwargs)


def warn_if_evicting(client: Any) -> None:
    """Log a warning when Redis may evict keys at maxmemory; a start-up check, never fatal.

    Eviction could drop accepted events, leases and dead letters: the fleet wants
    `maxmemory-policy noeviction` (ingest stops taking events before Redis is full).
    """
    try:
        policy = client.info("memory").get("maxmemory_policy")
    except redis.RedisError:  # not reachable yet: ingest and workers report that themselves
        return
    if policy is not None and policy != "noeviction":
        logger.warning(
            "Redis maxmemory-policy is %r: at maxmemory it would evict keys, which can drop "
            "accepted events, leases and dead letters; set it to noeviction",
            policy,
        )
