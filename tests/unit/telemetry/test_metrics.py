"""Fleet-wide metrics: processes count locally, flush to Redis, and any process serves the sum."""

from __future__ import annotations

import fakeredis

from config.redis_keys import RedisKeys
from telemetry.metrics import FleetCollector, Recorder, Target


def test_counts_survive_a_failed_flush() -> None:
    # Given a recorder whose Redis refuses the first flush
    server = fakeredis.FakeServer()
    client = fakeredis.FakeRedis(server=server, decode_responses=True)
    keys = RedisKeys("m", "default")
    recorder = Recorder(client, keys)
    recorder.inc("events_retried", "trackEvent", amount=5)
    server.connected = False
    recorder.flush()
    # When Redis is back and the next flush goes through
    server.connected = True
    recorder.inc("events_retried", "trackEvent", amount=2)
    recorder.flush()
    # Then nothing was lost or counted twice
    families = {f.name: f for f in FleetCollector(client, [Target(keys, 1)]).collect()}
    assert families["pushwoosh_fleet_events_retried"].samples[0].value == 7
