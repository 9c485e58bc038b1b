"""Shared fixtures: a real Redis (isolated per test by key prefix) and the Pushwoosh stand-in.

A missing Redis skips integration tests locally but fails them in CI (CI=true), so a green CI
always means they ran.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import redis

from fleet.embedded_redis import free_port
from tests.support.pushwoosh_stub import PushwooshStub

__all__ = ["free_port"]

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(scope="session")
def redis_url() -> str:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError as ex:
        if os.environ.get("CI"):
            pytest.fail(f"Redis at {REDIS_URL} is required in CI: {ex}")
        pytest.skip(f"no Redis at {REDIS_URL}: {ex}")
    return REDIS_URL


@pytest.fixture
def key_prefix(redis_url: str) -> Iterator[str]:
    """A fresh key prefix per test, so tests (and parallel runs) never see each other's keys."""
    prefix = f"t{uuid.uuid4().hex[:10]}"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    # Celery's queue for this prefix lives under its own names; remove those too.
    keys += list(client.scan_iter(match=f"*{prefix}*", count=1000))
    if keys:
        client.delete(*set(keys))


@pytest.fixture
def redis_client(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url, decode_responses=True)


@pytest.fixture
def stub() -> Iterator[PushwooshStub]:
    server = PushwooshStub().start()
    yield server
    server.stop()
