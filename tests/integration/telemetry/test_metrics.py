"""Prometheus by the book, on real processes: each process serves its own counts on a listener of
its own, the fleet's totals are the sum over processes, and the fleet-wide gauges come from one
exporter only, so a per-pod scrape counts nothing twice."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from fleet.embedded_redis import EmbeddedRedis, free_port
from tests.support.harness import BIN, ROOT, WRITE_KEY, FleetProcesses, fleet_env
from tests.support.prometheus import samples, value
from tests.support.pushwoosh_stub import PushwooshStub

pytestmark = pytest.mark.integration

PROCESS_COUNTERS = ("pushwoosh_fleet_events_delivered_total", "pushwoosh_fleet_ingest_requests")
FLEET_GAUGES = ("pushwoosh_fleet_queue_depth", "pushwoosh_fleet_workers_live")


def scrape(port: int) -> str:
    return requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text


def wait_for(check: Callable[[], bool], what: str, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise AssertionError(f"never happened: {what}")


def start_exporter(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [str(BIN / "pushwoosh-fleet"), "metrics", "--port", str(port)],
        env=env, cwd=ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    wait_for(lambda: "redis_up" in scrape(port), f"the exporter on {port}\n{log.read_text()}")
    return process


def _events(count: int, offset: int = 0) -> list[dict[str, object]]:
    return [
        {"type": "track", "messageId": f"metrics-{offset + i}", "event": "Item Viewed",
         "userId": f"user-{i % 11}", "properties": {"i": i}}
        for i in range(count)
    ]  # fmt: skip


@pytest.fixture
def ports() -> dict[str, int]:
    return {name: free_port() for name in ("ingest", "worker1", "worker2", "fleet")}


@pytest.fixture
def fleet(
    redis_url: str, key_prefix: str, stub: PushwooshStub, tmp_path: Path, ports: dict[str, int]
) -> Iterator[FleetProcesses]:
    env = fleet_env(
        redis_url, key_prefix, stub.url, PUSHWOOSH_SHARDS="2", PUSHWOOSH_ENABLE_BATCHING="true",
        METRICS_PORT=str(ports["ingest"]),
    )  # fmt: skip
    processes = FleetProcesses(env, tmp_path)
    exporter = None
    try:
        processes.start_ingest(web_workers=2)
        for name in ("worker1", "worker2"):
            processes.env["WORKER_METRICS_PORT"] = str(ports[name])
            processes.start_worker(concurrency=1)
        processes.env["WORKER_METRICS_PORT"] = "0"
        exporter = start_exporter(env, ports["fleet"], tmp_path / "exporter.log")
        yield processes
    finally:
        if exporter is not None:
            exporter.terminate()
            exporter.wait(timeout=10)
        processes.stop_all()


def test_each_process_serves_its_own_counts_and_the_fleet_gauges_come_once(
    fleet: FleetProcesses, stub: PushwooshStub, ports: dict[str, int]
) -> None:
    # Given one ingest server of two gunicorn processes, two workers and the exporter
    url = fleet.ingest_url
    assert url
    # When 300 events arrive (with one repeated and one refused request) and are delivered
    events = _events(300)
    for start in range(0, 300, 60):
        response = requests.post(
            f"{url}/v1/batch", json={"batch": events[start : start + 60]}, auth=(WRITE_KEY, "")
        )
        assert response.status_code == 200, response.text
    repeat = requests.post(f"{url}/v1/batch", json={"batch": events[:10]}, auth=(WRITE_KEY, ""))
    assert repeat.status_code == 200
    refused = requests.post(f"{url}/v1/batch", json={"batch": [{"type": "track"}]}, auth=("x", ""))
    assert refused.status_code == 401
    try:
        stub.wait_for(lambda got: sum(len(r.json["events"]) for r in got) >= 300, timeout_s=30)
    except AssertionError:
        raise AssertionError(fleet.logs("worker")) from None
    received = stub.snapshot()

    def worker_total(name: str, **labels: str) -> float:
        return sum(value(scrape(ports[w]), name, **labels) for w in ("worker1", "worker2"))

    delivered = "pushwoosh_fleet_events_delivered_total"
    wait_for(lambda: worker_total(delivered, action="trackEvent") == 300, "300 delivered")
    # Then ingest's listener has the sum of its two gunicorn processes
    ingest = scrape(ports["ingest"])
    assert value(ingest, "pushwoosh_fleet_ingest_events_accepted_total", route="v1/batch") == 300
    assert value(ingest, "pushwoosh_fleet_ingest_events_deduplicated_total", route="v1/batch") == 10
    assert value(ingest, "pushwoosh_fleet_ingest_requests_total", route="v1/batch",
                 status="200") == 6  # fmt: skip
    unrouted = {"destination": "(none)", "route": "v1/batch"}
    assert value(ingest, "pushwoosh_fleet_ingest_events_rejected_total", reason="unauthorized",
                 **unrouted) == 1  # fmt: skip
    assert value(ingest, "pushwoosh_fleet_ingest_request_duration_seconds_count",
                 route="v1/batch") == 6  # fmt: skip
    # And the two workers' counts add up to what Pushwoosh received, each event once
    assert worker_total("pushwoosh_fleet_events_read_total", src="v1/batch") == 300
    assert worker_total("pushwoosh_fleet_pushwoosh_requests_total", path="post-events",
                        status="200") == len(received)  # fmt: skip
    assert worker_total("pushwoosh_fleet_batch_size_sum", path="post-events") == 300
    lag = "pushwoosh_fleet_delivery_lag_seconds"
    assert worker_total(f"{lag}_count", action="trackEvent") == 300
    assert worker_total(f"{lag}_bucket", action="trackEvent", le="+Inf") == 300
    # And the fleet-wide gauges are on the exporter only, never on a process's listener
    fleet_text = scrape(ports["fleet"])
    wait_for(
        lambda: samples(scrape(ports["fleet"]))[("pushwoosh_fleet_workers_live", ())] == 2,
        "both workers' heartbeats",
    )
    assert value(fleet_text, "pushwoosh_fleet_queue_depth", shard="0") == 0
    assert value(fleet_text, "pushwoosh_fleet_queue_depth", shard="1") == 0
    for port in (ports["ingest"], ports["worker1"], ports["worker2"]):
        text = scrape(port)
        assert not any(gauge in text for gauge in FLEET_GAUGES), port
    assert not any(counter in fleet_text for counter in PROCESS_COUNTERS)
    # And every listener says what runs there; none is on ingest's public port
    for port, role in ((ports["ingest"], "ingest"), (ports["worker1"], "worker"),
                       (ports["fleet"], "fleet")):  # fmt: skip
        info = [dict(k[1]) for k in samples(scrape(port)) if k[0].endswith("build_info")]
        assert [i["role"] for i in info] == [role]
        assert samples(scrape(port))[("process_resident_memory_bytes", ())] > 0
    assert requests.get(f"{url}/metrics", timeout=5).status_code == 404


def test_ingest_counts_survive_a_gunicorn_worker_restart(
    redis_url: str, key_prefix: str, stub: PushwooshStub, tmp_path: Path
) -> None:
    # Given an ingest server of two processes that accepted 40 events
    port = free_port()
    env = fleet_env(redis_url, key_prefix, stub.url, METRICS_PORT=str(port))
    processes = FleetProcesses(env, tmp_path)
    try:
        url = processes.start_ingest(web_workers=2)
        session = requests.Session()  # new connections spread requests over both processes
        for i in range(40):
            event = {"type": "track", "event": "E", "userId": "u", "messageId": f"r-{i}"}
            assert requests.post(f"{url}/v1/track", json=event, auth=(WRITE_KEY, "")).ok
        accepted = "pushwoosh_fleet_ingest_events_accepted_total"
        # (each process writes its counts a moment after it makes them: ingest/telemetry.py)
        wait_for(lambda: value(scrape(port), accepted, route="v1/track") == 40, "40 counted")
        # When one of its processes is killed and the master starts another
        children = subprocess.run(
            ["pgrep", "-P", str(processes.processes[0].pid)], capture_output=True, text=True
        ).stdout.split()
        os.kill(int(children[0]), signal.SIGKILL)
        wait_for(
            lambda: len(subprocess.run(["pgrep", "-P", str(processes.processes[0].pid)],
                                       capture_output=True, text=True).stdout.split()) == 2
            and session.get(f"{url}/healthz", timeout=2).ok,
            "a new gunicorn worker",
        )  # fmt: skip
        # Then the counter does not go back: the dead process's counts stay in the sum
        assert value(scrape(port), accepted, route="v1/track") == 40
    finally:
        processes.stop_all()


def test_metrics_are_served_while_redis_is_down(
    key_prefix: str, stub: PushwooshStub, tmp_path: Path
) -> None:
    # Given an ingest server, a worker and the exporter on a Redis of their own
    server = EmbeddedRedis(tmp_path / "redis", appendonly=False).start()
    ports = {name: free_port() for name in ("ingest", "worker", "fleet")}
    env = fleet_env(server.url, key_prefix, stub.url, METRICS_PORT=str(ports["ingest"]),
                    WORKER_METRICS_PORT=str(ports["worker"]))  # fmt: skip
    processes = FleetProcesses(env, tmp_path)
    exporter = None
    try:
        processes.start_ingest()
        processes.start_worker(concurrency=1)
        exporter = start_exporter(env, ports["fleet"], tmp_path / "exporter.log")
        wait_for(lambda: "build_info" in scrape(ports["worker"]), "the worker's listener")
        # When Redis stops
        server.stop()
        # Then every listener still answers 200: each process's own counts need no Redis,
        # and the exporter says Redis is down instead of failing the scrape
        assert "pushwoosh_fleet_build_info" in scrape(ports["ingest"])
        assert "pushwoosh_fleet_build_info" in scrape(ports["worker"])
        assert samples(scrape(ports["fleet"]))[("pushwoosh_fleet_redis_up", ())] == 0
    finally:
        if exporter is not None:
            exporter.terminate()
            exporter.wait(timeout=10)
        processes.stop_all()
        server.stop()


@pytest.mark.slow
def test_a_prefork_worker_serves_the_sum_of_its_pool_processes(
    redis_url: str, key_prefix: str, stub: PushwooshStub, tmp_path: Path
) -> None:
    # Given a worker with the prefork pool: two child processes drain, the worker serves
    port = free_port()
    env = fleet_env(redis_url, key_prefix, stub.url, PUSHWOOSH_SHARDS="2",
                    WORKER_METRICS_PORT=str(port))  # fmt: skip
    processes = FleetProcesses(env, tmp_path)
    try:
        url = processes.start_ingest()
        processes.start_worker(concurrency=2, pool="prefork")
        # When 60 events are delivered
        for i in range(60):
            event = {"type": "track", "event": "E", "userId": f"u{i}", "messageId": f"p-{i}"}
            assert requests.post(f"{url}/v1/track", json=event, auth=(WRITE_KEY, "")).ok
        stub.wait_for(lambda got: len(got) >= 60, timeout_s=30)
        # Then the worker's one listener counts all 60, whichever child sent them
        delivered = "pushwoosh_fleet_events_delivered_total"
        wait_for(
            lambda: value(scrape(port), delivered, action="trackEvent") == 60,
            f"60 delivered on the worker's listener\n{processes.logs('worker')}",
        )
    finally:
        processes.stop_all()
