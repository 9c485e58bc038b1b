"""`pushwoosh-fleet metrics`: the fleet-wide gauges, served by one process.

Queue depth and oldest event age per shard, the retry schedule, dead letters, paused delivery
and live workers are facts about the shared Redis, read at each scrape
(`telemetry/fleet_gauges.py`). Run one exporter per fleet (the Kubernetes manifests run one
replica; `pushwoosh-fleet run` serves it itself): ingest's and the workers' own listeners never
carry these gauges, so a per-pod scrape counts nothing twice.
"""

from __future__ import annotations

from collections.abc import Mapping

import redis
from prometheus_client import CollectorRegistry

from config.destinations import load_destinations
from config.redis_keys import RedisKeys
from config.settings import Settings
from telemetry import exposition
from telemetry.fleet_gauges import FleetGauges, Target


def exporter_registry(
    settings: Settings, env: Mapping[str, str], client: redis.Redis, only: str | None = None
) -> CollectorRegistry:
    """The gauges of every destination (or `only` one), with build and process metrics."""
    destinations = load_destinations(settings, env)
    targets = [
        Target(RedisKeys(settings.redis_key_prefix, name), destination.settings.shards)
        for name, destination in destinations.items()
        if only is None or name == only
    ]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FleetGauges(client, settings.redis_key_prefix, targets))
    registry.register(exposition.BuildInfo("fleet"))
    registry.register(exposition.ProcessTree())
    return registry
