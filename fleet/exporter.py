"""`pushwoosh-fleet metrics`: the fleet-wide gauges and the delivery page, served by one process.

Queue depth and oldest event age per shard, the retry schedule, dead letters, paused delivery
and live workers are facts about the shared Redis, read at each scrape
(`telemetry/fleet_gauges.py`). Run one exporter per fleet (the Kubernetes manifests run one
replica; `pushwoosh-fleet run` serves it itself): ingest's and the workers' own listeners never
carry these gauges, so a per-pod scrape counts nothing twice.

The same listener serves the delivery page (`/delivery`, fleet/page/): it reads the same Redis,
needs an admin key, and is on loopback unless METRICS_ADDRESS says otherwise. `/metrics` stays
open to Prometheus, as on every other listener.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import redis
from prometheus_client import CollectorRegistry, make_wsgi_app

from config.destinations import load_destinations
from config.redis_keys import RedisKeys
from config.settings import Settings
from fleet.page.app import create_page
from telemetry import exposition
from telemetry.fleet_gauges import FleetGauges, Target

PAGE_PATH = "/delivery"


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


def listener_app(registry: CollectorRegistry, page: exposition.WsgiApp) -> exposition.WsgiApp:
    """/metrics for Prometheus, everything else for the page."""
    metrics = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "") == "/metrics":
            served: Iterable[bytes] = metrics(environ, start_response)
            return served
        return page(environ, start_response)

    return app


def serve_fleet(
    settings: Settings, env: Mapping[str, str], client: redis.Redis, address: str, port: int,
    only: str | None = None,
) -> exposition.Listener | None:  # fmt: skip
    """The fleet's listener: the gauges and the delivery page (`client` decodes responses)."""
    destinations = load_destinations(settings, env)
    page = create_page(settings, destinations, client)
    registry = exporter_registry(settings, env, client, only)
    return exposition.serve_app(listener_app(registry, page), address, port, "fleet")


def page_url(listener: exposition.Listener) -> str:
    host = "127.0.0.1" if listener.address in ("0.0.0.0", "::", "") else listener.address
    return f"http://{host}:{listener.port}{PAGE_PATH}"
