"""The fleet on a Redis Cluster with RabbitMQ as Celery's broker, all real: three cluster
primaries on loopback ports, the gunicorn ingest server, two workers started with the Procfile's
worker line, and the recording Pushwoosh stand-in.

- A worker is killed (SIGKILL) mid-stream: every accepted event reaches the stand-in, and a
  repeat can only be the killed worker's requests in flight (README, Delivery guarantees).
- A request whose events fall on several shards, one of which refuses the write, answers 503;
  the sender's retry then stores every event exactly once.
"""

from __future__ import annotations

import collections
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis
import requests
from kombu import Connection

from config.redis_keys import RedisKeys, celery_queue, shard_of, worker_heartbeats
from store.client import make_redis
from tests.support.harness import BIN, ROOT, WRITE_KEY, FleetProcesses, cli, fleet_env
from tests.support.pushwoosh_stub import PushwooshStub
from tests.support.redis_cluster import LocalCluster, require_cluster_tools
from tests.support.traffic import delivered_ids, post_batches, tracks, wait_all_accounted

pytestmark = [pytest.mark.integration, pytest.mark.slow]

AMQP_URL = os.environ.get("TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
SHARDS = 4


def _amqp_answers() -> str | None:
    try:
        with Connection(AMQP_URL, connect_timeout=2) as connection:
            connection.ensure_connection(max_retries=1)
    except Exception as ex:  # any failure to connect says the same: no broker here
        return str(ex)
    return None


def require_rabbitmq() -> None:
    """RabbitMQ answers, or the repo's script starts (or installs) it, or the test skips."""
    problem = _amqp_answers()
    if problem is not None:
        subprocess.run(["bash", str(ROOT / "scripts/ensure-rabbitmq.sh")], timeout=600)
        problem = _amqp_answers()
    if problem is None:
        return
    installable = os.geteuid() == 0 and shutil.which("apt-get") is not None
    why = f"no RabbitMQ at {AMQP_URL} (scripts/ensure-rabbitmq.sh could not start one): {problem}"
    if os.environ.get("CI") and installable:
        pytest.fail(why)
    pytest.skip(why)


def procfile_worker() -> list[str]:
    """The Procfile's worker line as users run it (no -n: node names must be unique anyway)."""
    line = next(
        command.strip()
        for name, _, command in (
            raw.partition(":") for raw in (ROOT / "Procfile").read_text().splitlines()
        )
        if name == "worker"
    )
    return ["sh", "-c", f"exec {line}"]


@dataclass
class ClusterFleet:
    cluster: LocalCluster
    fleet: FleetProcesses
    stub: PushwooshStub
    client: redis.Redis
    prefix: str
    workers: list[subprocess.Popen[bytes]]


@pytest.fixture(scope="module")
def cluster_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterFleet]:
    require_cluster_tools()
    require_rabbitmq()
    base = tmp_path_factory.mktemp("cluster")
    cluster = LocalCluster(base).start()
    stub = PushwooshStub().start()
    prefix = f"c{os.getpid()}"
    env = fleet_env(
        cluster.url, prefix, stub.url,
        CELERY_BROKER_URL=AMQP_URL, PUSHWOOSH_SHARDS=str(SHARDS),
        PUSHWOOSH_ENABLE_BATCHING="true", PUSHWOOSH_BATCH_FLUSH_DELAY_S="0.2",
        PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    )  # fmt: skip
    fleet = FleetProcesses(env, base)
    try:
        fleet.start_ingest()
        workers = [fleet._spawn("worker", procfile_worker(), env) for _ in range(2)]
        client = make_redis(cluster.url, "mymaster", decode_responses=True)
        yield ClusterFleet(cluster, fleet, stub, client, prefix, workers)
    finally:
        fleet.stop_all()
        stub.stop()
        cluster.stop()
        with Connection(AMQP_URL) as connection:
            connection.default_channel.queue_delete(celery_queue(prefix))


def live_nodes(fleet: ClusterFleet, count: int) -> list[str]:
    deadline = time.monotonic() + 60
    while len(nodes := fleet.client.zrange(worker_heartbeats(fleet.prefix), 0, -1)) < count:
        assert time.monotonic() < deadline, f"workers did not come up: {fleet.fleet.logs('worker')}"
        time.sleep(0.1)
    return list(nodes)


def test_a_worker_killed_mid_stream_loses_nothing(cluster_fleet: ClusterFleet) -> None:
    fleet = cluster_fleet
    nodes = live_nodes(fleet, 2)
    # Started alike, the two workers still have names of their own (pid in the name).
    assert all(re.fullmatch(r"worker-\d+@.+", node) for node in nodes), nodes
    events = tracks(3000)
    accepted: list[str] = []
    sender = threading.Thread(target=lambda: accepted.extend(post_batches(
        str(fleet.fleet.ingest_url), events)))  # fmt: skip
    sender.start()
    fleet.stub.wait_for(lambda _: len(delivered_ids(fleet.stub)) >= 600, timeout_s=60)
    os.killpg(fleet.workers[0].pid, signal.SIGKILL)
    sender.join(timeout=120)
    assert len(accepted) == len(events)
    counts, dead = wait_all_accounted(fleet.stub, fleet.client, fleet.prefix, accepted, 90)
    assert not dead
    repeats = sum(n - 1 for n in counts.values())
    # At least once: only what the killed worker had in flight (two threads, one request of at
    # most 100 events each) may have reached the stand-in without being settled.
    assert repeats <= 2 * 100, f"{repeats} events delivered twice"
    print(f"killed a worker mid-stream: {len(accepted)} events, {repeats} delivered twice")
    # The CLI reads the cluster and asks the workers through RabbitMQ.
    env = {"REDIS_URL": fleet.cluster.url, "CELERY_BROKER_URL": AMQP_URL,
           "REDIS_KEY_PREFIX": fleet.prefix, "PUSHWOOSH_SHARDS": str(SHARDS)}  # fmt: skip
    status = json.loads(cli("status", "--json", **env).stdout)
    live = status["destinations"][0]["workers"]
    assert len(live) == 1 and live[0] in nodes, (live, nodes)  # the killed one is gone
    assert cli("trace", accepted[-1], **env).returncode == 0


def test_a_partly_stored_request_is_completed_by_the_retry(cluster_fleet: ClusterFleet) -> None:
    fleet = cluster_fleet
    live_nodes(fleet, 1)
    events = tracks(200, start=100_000)
    shards = collections.Counter(shard_of(event, SHARDS) for event in events)
    assert len(shards) == SHARDS
    # Shard 2's dedupe sizes become a key of the wrong type: its write fails before writing.
    broken = RedisKeys(fleet.prefix, "default").shard(2).seen_sizes
    aside = broken + "-aside"
    if fleet.client.exists(broken):
        fleet.client.rename(broken, aside)  # same slot; put back afterwards
    fleet.client.set(broken, "not a hash")
    url = f"{fleet.fleet.ingest_url}/v1/batch"
    body = {"batch": events}
    try:
        first = requests.post(url, json=body, auth=(WRITE_KEY, ""), timeout=10)
        assert first.status_code == 503, first.text
        # The other shards took their part: it is delivered before the retry.
        fleet.stub.wait_for(
            lambda _: (
                len(set(delivered_ids(fleet.stub)) & {str(e["messageId"]) for e in events})
                >= len(events) - shards[2]
            ),
            timeout_s=60,
        )
    finally:
        fleet.client.delete(broken)
        if fleet.client.exists(aside):
            fleet.client.rename(aside, broken)
    retry = requests.post(url, json=body, auth=(WRITE_KEY, ""), timeout=10)
    assert retry.status_code == 200, retry.text
    ids = [str(e["messageId"]) for e in events]
    counts, dead = wait_all_accounted(fleet.stub, fleet.client, fleet.prefix, ids, 60)
    assert not dead
    assert {i: counts[i] for i in ids if counts[i] != 1} == {}
