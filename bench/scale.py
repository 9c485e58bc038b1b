"""`python -m bench --scale`: what a second worker process and more Redis Cluster primaries add.

Drains a backlog (4 shards, filled with ingest's own publish script) with the Procfile's worker
(threads pool, two threads, no -n) on this machine:

- one Redis (event store and broker), with 1 and then 2 worker processes;
- a Redis Cluster of 1 and then 3 primaries as the event store, 2 worker processes, the bench's
  Redis as Celery's broker;

and saturates one ingest process (`WEB_CONCURRENCY=1`) on the one Redis. For each it measures
events/s, the CPU each part used per event (from /proc and Redis' INFO, counted between the
first and the last delivery, so start-up is not counted) and Redis memory per event. Scaling
efficiency = events/s with N / (N * events/s with 1). One JSON line per measurement, then a
summary line; progress on stderr.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import redis

from bench import phases
from bench.backlog import fill_direct
from bench.cluster import MISSING, LocalCluster, cluster_tools
from bench.procs import BIN, tree_cpu_s
from bench.stack import Stack
from config.settings import load_settings
from store.client import make_redis

SHARDS = 4


def redis_cpu_s(nodes: list[redis.Redis]) -> float:
    total = 0.0
    for node in nodes:
        info = node.info("cpu")
        total += float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
    return total


def redis_memory_mb(nodes: list[redis.Redis]) -> float:
    """Used memory of every node, once what UNLINK gave back was really freed."""
    deadline = time.monotonic() + 30
    while True:
        infos = [node.info("memory") for node in nodes]
        pending = sum(int(info.get("lazyfree_pending_objects", 0)) for info in infos)
        if not pending or time.monotonic() > deadline:
            return sum(int(info["used_memory"]) for info in infos) / 2**20
        time.sleep(0.1)


class Drain:
    """One drain of a backlog by `workers` processes on one event store."""

    def __init__(self, stack: Stack, env: dict[str, str], nodes: list[redis.Redis]) -> None:
        self.stack = stack
        self.env = env
        self.nodes = nodes

    def run(self, name: str, workers: int, events: int) -> dict[str, Any]:
        settings = load_settings(self.env)
        store = make_redis(settings.effective_redis_url, "mymaster", decode_responses=True)
        memory_before = redis_memory_mb(self.nodes)
        phases.progress(f"{name}: filling {events} events on {SHARDS} shards")
        fill_direct(store, settings, name, events)
        queued_mb = redis_memory_mb(self.nodes) - memory_before
        self.stack.standin_reset()
        args = [str(BIN / "celery"), "-A", "worker", "worker", "--pool=threads",
                "--concurrency=2", "--loglevel=WARNING"]  # fmt: skip
        pids = [self.stack.procs.spawn(f"{name}-w{i}", args, self.env).pid for i in range(workers)]
        phases.progress(f"{name}: draining with {workers} worker process(es)")
        first, last = self._watch(pids, events)
        for i in range(workers):
            self.stack.procs.stop(f"{name}-w{i}")  # its last history goes out at shutdown
        kept_mb = redis_memory_mb(self.nodes) - memory_before
        dump = self.stack.standin_dump()
        times = dump["seq_times"]
        rate = len(times) / (max(times) - min(times)) if len(times) > 1 else 0.0
        between = max(1, last["count"] - first["count"])
        result = {
            "measure": "drain", "name": name, "workers": workers, "events": events,
            "delivered": len(set(dump["seqs"])), "events_per_s": round(rate, 1),
            "worker_cpu_us_per_event": round((last["worker"] - first["worker"]) / between * 1e6, 1),
            "redis_cpu_us_per_event": round((last["redis"] - first["redis"]) / between * 1e6, 1),
            "redis_bytes_per_queued_event": round(queued_mb * 2**20 / events, 1),
            # once delivered: its dedupe fingerprint, history (within TRACE_MAX_BYTES), counters
            "redis_bytes_kept_per_delivered_event": round(kept_mb * 2**20 / events, 1),
        }  # fmt: skip
        phases.progress(f"{name}: {rate:.0f} events/s")
        print(json.dumps(result), flush=True)
        return result

    def _watch(self, pids: list[int], events: int) -> tuple[dict[str, Any], dict[str, Any]]:
        """Samples (delivered, worker CPU, Redis CPU) at the first and the last delivery."""
        first: dict[str, Any] | None = None
        last: dict[str, Any] = {}
        last_change = time.monotonic()
        while True:
            sample = {
                "count": int(self.stack.standin_stats()["events"]),
                "worker": sum(tree_cpu_s(pid) for pid in pids),
                "redis": redis_cpu_s(self.nodes),
            }
            if sample["count"] and first is None:
                first = sample
            if sample["count"] != last.get("count"):
                last, last_change = sample, time.monotonic()
            if sample["count"] >= events or time.monotonic() - last_change > 60:
                return first or sample, last
            time.sleep(0.2)


def ingest_per_core(stack: Stack, seconds: float) -> dict[str, Any]:
    """One gunicorn worker process saturated with /v1/batch posts of 100 (no worker running)."""
    stack.env["WEB_CONCURRENCY"] = "1"
    port = stack.start_ingest("ingest", phases.FLEET_INGEST)
    phases.saturate(stack, port, "batch", "scale-warm-up", 0.5)  # start-up is not measured
    assert stack.redis is not None
    pid = stack.main_pid("ingest")
    cpu, redis_cpu = tree_cpu_s(pid), redis_cpu_s([stack.redis])
    sat = phases.saturate(stack, port, "batch", "scale-ingest", seconds)
    cpu, redis_cpu = tree_cpu_s(pid) - cpu, redis_cpu_s([stack.redis]) - redis_cpu
    stack.procs.stop("ingest")
    events = max(1.0, sat["eps"] * seconds)
    result = {
        "measure": "ingest", "processes": 1, "events_per_s": round(sat["eps"], 1),
        "ingest_cpu_us_per_event": round(cpu / events * 1e6, 1),
        "redis_cpu_us_per_event": round(redis_cpu / events * 1e6, 1),
    }  # fmt: skip
    print(json.dumps(result), flush=True)
    stack.reset_keys()
    return result


def _cluster_drain(stack: Stack, primaries: int, events: int) -> dict[str, Any]:
    assert stack.redis_server is not None
    cluster = LocalCluster(stack.work_dir / f"cluster-{primaries}", primaries).start()
    try:
        env = {**stack.env, "REDIS_URL": cluster.url, "CELERY_BROKER_URL": stack.redis_server.url}
        nodes = [redis.Redis(port=port) for port in cluster.ports]
        return Drain(stack, env, nodes).run(f"cluster{primaries}", 2, events)
    finally:
        cluster.stop()


def efficiency(with_n: dict[str, Any], with_1: dict[str, Any], n: int) -> float:
    return round(float(with_n["events_per_s"]) / (n * float(with_1["events_per_s"])), 3)


SIZES = {"full": (150_000, 10.0), "quick": (30_000, 3.0), "smoke": (3_000, 1.0)}


def run(work_dir: Path, mode: str) -> dict[str, Any]:
    events, ingest_s = SIZES[mode]
    stack = Stack(work_dir)
    try:
        stack.start_redis()
        stack.env["PUSHWOOSH_SHARDS"] = str(SHARDS)
        stack.start_standin()
        assert stack.redis is not None
        ingest = ingest_per_core(stack, ingest_s)
        single = Drain(stack, stack.env, [stack.redis])
        one = single.run("redis-1w", 1, events)
        stack.reset_keys()
        two = single.run("redis-2w", 2, events)
        stack.reset_keys()
        summary: dict[str, Any] = {
            "measure": "summary",
            "ingest_events_per_s_per_process": ingest["events_per_s"],
            "drain_events_per_s_1_worker": one["events_per_s"],
            "drain_events_per_s_2_workers": two["events_per_s"],
            "worker_speedup_2": round(two["events_per_s"] / one["events_per_s"], 3),
            "worker_efficiency_2": efficiency(two, one, 2),
        }
        if cluster_tools() is None:
            phases.progress(f"cluster runs skipped: {MISSING}")
        else:
            c1 = _cluster_drain(stack, 1, events)
            c3 = _cluster_drain(stack, 3, events)
            summary |= {
                "drain_events_per_s_cluster_1_primary": c1["events_per_s"],
                "drain_events_per_s_cluster_3_primaries": c3["events_per_s"],
                "cluster_speedup_3": round(c3["events_per_s"] / c1["events_per_s"], 3),
                "cluster_efficiency_3": efficiency(c3, c1, 3),
            }
        print(json.dumps(summary), flush=True)
        return summary
    finally:
        stack.stop()


def main(work_dir: Path, mode: str) -> int:
    loadavg = Path("/proc/loadavg").read_text().split()[0]
    phases.progress(f"scaling {mode} run; load average {loadavg}; work directory {work_dir}")
    run(work_dir, mode)
    return 0
