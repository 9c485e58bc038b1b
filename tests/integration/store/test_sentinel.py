"""Redis Sentinel: a real primary, a replica and three sentinels on 127.0.0.1; the primary is
killed mid-stream and nothing ingest accepted is lost.
"""

from __future__ import annotations

import hashlib
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from fleet.embedded_redis import EmbeddedRedis, free_port, redis_server_binary
from store.client import make_redis, parse_sentinel_url
from store.scripts import Lane
from tests.support.harness import FleetProcesses, fleet_env
from tests.support.pushwoosh_stub import PushwooshStub, Reply
from tests.support.traffic import delivered_ids, post_batches, tracks, wait_all_accounted

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_sentinel_urls_are_parsed_like_celery_does() -> None:
    assert parse_sentinel_url("sentinel://a:1;sentinel://:pw@b:2/3") == (
        [("a", 1), ("b", 2)],
        3,
        "pw",
    )
    assert parse_sentinel_url("sentinel://a") == ([("a", 26379)], 0, None)
    with pytest.raises(ValueError):
        parse_sentinel_url("sentinel://a:1;redis://b:2")


class Sentinels:
    def __init__(self, base: Path, primary_port: int, count: int = 3) -> None:
        self.processes: list[subprocess.Popen[bytes]] = []
        self.ports = [free_port() for _ in range(count)]
        for port in self.ports:
            conf = base / f"sentinel-{port}.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {base}\n"
                f"sentinel monitor mymaster 127.0.0.1 {primary_port} 2\n"
                "sentinel down-after-milliseconds mymaster 1000\n"
                "sentinel failover-timeout mymaster 4000\n"
                "sentinel parallel-syncs mymaster 1\n"
            )
            self.processes.append(
                subprocess.Popen(
                    [redis_server_binary(), str(conf), "--sentinel"],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        deadline = time.monotonic() + 10
        for port in self.ports:
            while True:
                try:
                    redis.Redis(port=port).ping()
                    break
                except redis.ConnectionError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)

    @property
    def url(self) -> str:
        return ";".join(f"sentinel://127.0.0.1:{port}" for port in self.ports) + "/0"

    def wait_until_converged(self, replicas: int = 1, timeout_s: float = 30) -> None:
        """Until every sentinel knows the replica and its peers. Sentinels learn both from
        periodic INFO and hello messages (every few seconds); a primary killed before that can
        be failed over by some sentinels while others, still on the old view, hand the primary
        role back to the restarted (empty) old primary, whose replica then resyncs from it."""
        deadline = time.monotonic() + timeout_s
        for port in self.ports:
            client = redis.Redis(port=port, decode_responses=True)
            while (
                len(client.sentinel_slaves("mymaster")) < replicas
                or len(client.sentinel_sentinels("mymaster")) < len(self.ports) - 1
            ):
                assert time.monotonic() < deadline, f"sentinel {port} did not converge"
                time.sleep(0.1)

    def primary_port(self) -> int:
        _host, port = redis.Redis(port=self.ports[0]).sentinel_get_master_addr_by_name("mymaster")
        return int(port)

    def stop(self) -> None:
        for process in self.processes:
            process.kill()
            process.wait()


@pytest.fixture
def replicated(tmp_path: Path) -> Iterator[tuple[EmbeddedRedis, EmbeddedRedis, Sentinels]]:
    primary = EmbeddedRedis(tmp_path / "primary", appendonly=False).start()
    replica = EmbeddedRedis(
        tmp_path / "replica",
        appendonly=False,
        extra_args=["--replicaof", "127.0.0.1", str(primary.port)],
    ).start()
    sentinels = Sentinels(tmp_path, primary.port)
    sentinels.wait_until_converged()
    yield primary, replica, sentinels
    sentinels.stop()
    replica.stop(kill=True)
    primary.stop(kill=True)


def test_a_lane_through_sentinel_runs_its_script_on_the_primary(
    replicated: tuple[EmbeddedRedis, EmbeddedRedis, Sentinels], key_prefix: str
) -> None:
    primary, _replica, sentinels = replicated
    # Given a lane on a client that finds the primary through the sentinels
    lane = Lane(make_redis(sentinels.url, "mymaster").connection_pool)
    # When it runs a script
    text = "return redis.call('INCR', KEYS[1])"
    reply = lane.evalsha(hashlib.sha1(text.encode()).hexdigest(), text, [key_prefix], [])
    # Then the primary ran it (a connection of its own would have gone to localhost:6379)
    assert reply == 1
    assert redis.Redis(port=primary.port).get(key_prefix) == b"1"


@pytest.mark.timeout(300)
def test_primary_failover_mid_stream_loses_nothing(
    replicated: tuple[EmbeddedRedis, EmbeddedRedis, Sentinels],
    stub: PushwooshStub,
    key_prefix: str,
    tmp_path: Path,
) -> None:
    primary, _replica, sentinels = replicated
    # Given a fleet that reaches Redis only through the sentinels, waiting for one replica
    env = fleet_env(sentinels.url, key_prefix, stub.url, PUSHWOOSH_ENABLE_BATCHING="true",
                    PUSHWOOSH_BATCH_FLUSH_DELAY_S="0.2", REDIS_MIN_REPLICAS_ACK="1")  # fmt: skip
    fleet = FleetProcesses(env, tmp_path)
    try:
        stub.set_default(Reply(200, delay_s=0.01))
        url = fleet.start_ingest()
        fleet.start_worker(concurrency=2)
        accepted: list[str] = []
        sender = threading.Thread(
            target=lambda: accepted.extend(post_batches(url, tracks(3000), 50))
        )
        sender.start()
        stub.wait_for(lambda got: len(delivered_ids(stub)) >= 300, timeout_s=60)
        # When the primary dies mid-stream
        old_port = primary.port
        primary.stop(kill=True)
        deadline = time.monotonic() + 30
        while sentinels.primary_port() == old_port:
            assert time.monotonic() < deadline, "the sentinels did not fail over"
            time.sleep(0.2)
        # and comes back (as a replica of the new primary, which the sentinels arrange)
        primary.start()
        sender.join(timeout=180)
        assert len(accepted) == 3000
        # Then every event ingest accepted is delivered
        client = make_redis(sentinels.url, "mymaster", decode_responses=True)
        counts, dead = wait_all_accounted(stub, client, key_prefix, accepted, timeout_s=120)
        assert not dead
        print(f"\nfailover: {sum(n - 1 for n in counts.values())} duplicates")
    finally:
        fleet.stop_all()
