"""The measurements, in the order one run makes them. Each returns a dict of numbers."""

from __future__ import annotations

import dataclasses
import math
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

from bench import cost, measure, slow_clients
from bench.backlog import fill_direct
from bench.events import WRITE_KEY, auth_header, batch_body
from bench.procs import BIN, children_of, tree_memory_mb
from bench.stack import Stack
from config.settings import load_settings

FLEET_INGEST = "ingest.app:get_app()"
BASELINE_INGEST = "bench.baseline:get_app()"
# The baseline's app is WSGI, its Celery client blocking: gunicorn's threads worker, as such an
# app is usually served (ingest's own worker serves ASGI apps only).
BASELINE_SERVER = ("--worker-class", "gthread", "--threads", "8")
CONNECTIONS = 8  # as when ingest ran 2 processes x 4 threads, so runs stay comparable
SETTLE_S = 2.0  # after a saturating run, for the processes' buffered metrics and history


@dataclasses.dataclass(frozen=True)
class Sizes:
    baseline_events: int
    saturation_s: float
    latency_s: float
    e2e_events: int
    single_events: int
    lag_s: float
    backlog: int
    http_fill_budget_s: float
    slow_clients_s: float
    cost_events: int  # events per run of the worker's CPU per event (`cost_runs`)


FULL = Sizes(10_000, 10, 12, 200_000, 20_000, 30, 1_000_000, 90, 30, 50_000)
QUICK = Sizes(600, 1.5, 2.5, 50_000, 1_000, 4, 30_000, 6, 3, 20_000)
SMOKE = Sizes(200, 0.8, 1.0, 2_000, 200, 1.5, 5_000, 3, 1.5, 2_000)
SLOW_CONNECTIONS = 64
# `--cost-only`: (events in /v1/batch posts, single-event /webhook posts, backlog drained).
# Ingest's CPU alone, no worker on the cores: (events in /v1/batch posts, single-event posts).
INGEST_CPU_RUNS = 3
COST_RUNS = 3
INGEST_CPU_EVENTS = {"full": (50_000, 20_000), "quick": (20_000, 5_000), "smoke": (2_000, 300)}
COST_SIZES = {"full": (50_000, 5_000, 50_000), "quick": (20_000, 2_000, 20_000),
              "smoke": (2_000, 200, 2_000)}  # fmt: skip

_started = time.monotonic()


def progress(message: str) -> None:
    print(f"[bench {time.monotonic() - _started:6.1f}s] {message}", file=sys.stderr, flush=True)


def warm_up(stack: Stack, port: int, tag: str) -> None:
    """One batch through the whole path, so start-up is not measured."""
    stack.standin_reset()
    body = batch_body(tag, 0, 100)
    header = auth_header("batch").decode().split(": ", 1)
    reply = requests.post(
        f"http://127.0.0.1:{port}/v1/batch",
        data=body,
        headers={"Content-Type": "application/json", header[0]: header[1]},
        timeout=30,
    )
    reply.raise_for_status()
    got = stack.wait_for_events(100, stall_s=60)
    if got < 100:
        raise RuntimeError(f"warm-up: only {got} of 100 events reached the stand-in")
    stack.standin_reset()


def _spec(port: int, route: str, tag: str, requests_: int, **extra: Any) -> dict[str, Any]:
    per = 1 if route == "webhook" else 100
    spec = {"port": port, "route": route, "batch": per, "tag": tag, "seq_start": 0,
            "requests": requests_, "connections": CONNECTIONS, "mode": "closed"}  # fmt: skip
    return spec | extra


def closed_spec(port: int, route: str, tag: str, requests_: int) -> dict[str, Any]:
    """A closed-loop load of `requests_` posts on CONNECTIONS connections."""
    return _spec(port, route, tag, requests_)


def end_to_end(stack: Stack, port: int, route: str, tag: str, events: int) -> dict[str, Any]:
    """Closed-loop load of `events`; measured from the first POST to the last receipt."""
    per = 1 if route == "webhook" else 100
    stack.standin_reset()
    load = stack.run_load(tag, _spec(port, route, tag, events // per))
    stack.wait_for_events(events // per * per)
    return measure.delivery(load["records"], stack.standin_dump(), 0, per)


def _trees(stack: Stack) -> dict[str, int]:
    """The fleet's process trees now running, by name (root pid)."""
    running = stack.procs.running
    return {name: stack.main_pid(name) for name in ("ingest", "worker") if name in running}


def measured_end_to_end(
    stack: Stack, port: int, route: str, tag: str, events: int
) -> dict[str, Any]:
    """`end_to_end`, plus the CPU each process tree and Redis spent per event meanwhile.

    The window closes SETTLE_S after the last receipt: history is written up to a second after
    the step it records, and that work is part of what an event costs."""
    trees = _trees(stack)
    before = cost.snapshot(trees, stack.redis)
    result = end_to_end(stack, port, route, tag, events)
    time.sleep(SETTLE_S)
    after = cost.snapshot(trees, stack.redis)
    counts = {"ingest": result["sent_events"], "worker": result["received_events"],
              cost.REDIS: result["received_events"]}  # fmt: skip
    result["cpu_us"] = cost.per_event_us(before, after, counts)
    return result


def cost_runs(stack: Stack, port: int, route: str, events: int) -> dict[str, Any]:
    """`measured_end_to_end` COST_RUNS times; the CPU per event of the run in which the worker
    spent least (the fastest run, as for ingest alone: `ingest_cpu`), every run's kept."""
    runs = []
    for run in range(COST_RUNS):
        result = measured_end_to_end(stack, port, route, f"cost-{route}-{run}", events)
        progress(f"cost: {route}: {result['events_per_s']:,.0f} events/s end to end; "
                 f"{_cpu_line(result['cpu_us'])}")  # fmt: skip
        runs.append(result["cpu_us"])
    fastest: dict[str, Any] = min(runs, key=lambda r: r.get("worker", math.inf))
    return fastest | {"runs_us": {"worker": [r.get("worker") for r in runs]}}


def saturate(stack: Stack, port: int, route: str, tag: str, seconds: float) -> dict[str, Any]:
    per = 1 if route == "webhook" else 100
    cap = int(seconds * (400 if per == 100 else 6000)) + 100  # requests: far above the rate
    load = stack.run_load(tag, _spec(port, route, tag, cap, duration_s=seconds))
    return measure.request_rate(load["records"], per)


def paced(
    stack: Stack, port: int, route: str, tag: str, rate_rps: float, seconds: float
) -> dict[str, Any]:
    spec = _spec(port, route, tag, int(rate_rps * seconds) + 1, mode="open",
                 rate_rps=rate_rps, duration_s=seconds, connections=2 * CONNECTIONS)  # fmt: skip
    return stack.run_load(tag, spec)


# -- the phases -------------------------------------------------------------------------------
def baseline(stack: Stack, sizes: Sizes) -> dict[str, Any]:
    progress("baseline: starting its ingest and one-task-per-event worker")
    port = stack.start_ingest("baseline-ingest", BASELINE_INGEST, *BASELINE_SERVER)
    # Celery's default pool for the obvious design (one message per event costs about the
    # same whatever the pool).
    stack.start_worker("baseline-worker", "bench.baseline", pool="prefork")
    warm_up(stack, port, "bw")
    progress(f"baseline: {sizes.baseline_events} events as /v1/batch posts of 100")
    result = end_to_end(stack, port, "batch", "base", sizes.baseline_events)
    progress(f"baseline: {result['events_per_s']:.0f} events/s end to end")
    stack.procs.stop("baseline-worker")
    stack.procs.stop("baseline-ingest")
    return result


def ingest_alone(stack: Stack, port: int, sizes: Sizes) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for route in ("batch", "webhook"):
        progress(f"ingest alone: saturating {route} for {sizes.saturation_s:.0f} s")
        sat = saturate(stack, port, route, f"sat-{route}", sizes.saturation_s)
        rate = sat["rps"] / 2
        progress(
            f"ingest alone: {route} {sat['rps']:.0f} req/s = {sat['eps']:.0f} events/s; "
            f"now {rate:.0f} req/s open loop for {sizes.latency_s:.0f} s"
        )
        # Start the latency run from an empty Redis, as the other runs do: saturation leaves
        # hundreds of thousands of queued events (near INGEST_MAX_QUEUED_EVENTS, which would
        # refuse requests) and history records still being written.
        stack.reset_keys()
        time.sleep(SETTLE_S)
        load = paced(stack, port, route, f"half-{route}", rate, sizes.latency_s)
        out[route] = {"saturation": sat, "half": measure.latency(load["records"]) | {
            "rate_rps": rate}}  # fmt: skip
    stack.reset_keys()
    return out


def ingest_cpu(stack: Stack, port: int, events: tuple[int, int]) -> dict[str, Any]:
    """Ingest's CPU per event (per request for single-event posts) with no worker running:
    closed-loop loads of `events` (batched, single), the events left queued in Redis; each load
    INGEST_CPU_RUNS times, the fastest run counting (as the unit is the fastest of its timings:
    on a shared machine, a run takes more CPU for the same work while a neighbour is busy, and
    the fastest run of each is the one nearest to a quiet machine). Every run is kept.

    Measured alone because end to end the worker shares the same cores and a process's CPU
    per unit of work grows with what it shares them with (caches, the scheduler); both are
    reported. The window closes SETTLE_S after the last answer, so the history ingest writes
    after its requests counts too."""
    trees = {"ingest": stack.main_pid("ingest")}
    out: dict[str, Any] = {}
    for route, count in zip(("batch", "webhook"), events, strict=True):
        per = 1 if route == "webhook" else 100
        stack.run_load(f"cpu-warm-{route}", closed_spec(port, route, f"cpu-warm-{route}", 200))
        stack.reset_keys()
        runs: list[dict[str, float]] = []
        for run in range(INGEST_CPU_RUNS):
            progress(f"ingest alone: {count} events as {route} posts, for its CPU per event")
            before = cost.snapshot(trees, stack.redis)
            load = stack.run_load(
                f"cpu-{route}", closed_spec(port, route, f"cpu-{route}-{run}", count // per)
            )
            time.sleep(SETTLE_S)
            after = cost.snapshot(trees, stack.redis)
            stored = sum(1 for r in load["records"] if r[measure.STATUS] == 200) * per
            runs.append(cost.per_event_us(before, after, {"ingest": stored, cost.REDIS: stored}))
            progress(f"ingest alone: {route}: {_cpu_line(runs[-1])}")
            stack.reset_keys()
        out[route] = min(runs, key=lambda r: r.get("ingest", math.inf)) | {
            "runs_us": {"ingest": [r.get("ingest") for r in runs]}
        }
    return out


def slow_clients_phase(stack: Stack, port: int, sizes: Sizes) -> dict[str, Any]:
    """64 connections trickle a byte a second; /healthz and /v1/batch are timed meanwhile."""
    progress(
        f"slow clients: {SLOW_CONNECTIONS} connections trickling a byte a second for "
        f"{sizes.slow_clients_s:.0f} s, probing /healthz and /v1/batch"
    )
    result = slow_clients.run(
        "127.0.0.1", port, WRITE_KEY, connections=SLOW_CONNECTIONS, seconds=sizes.slow_clients_s
    )
    progress(
        f"slow clients: {result['probes']} probes, {len(result['failures'])} failed, "
        f"slowest {result['max_ms']:.0f} ms"
    )
    stack.reset_keys()
    return result


def fleet_delivery(
    stack: Stack, port: int, sizes: Sizes, profile_dir: Path | None
) -> dict[str, Any]:
    progress("fleet: starting the worker")
    stack.start_worker("worker", "worker")
    warm_up(stack, port, "fw")
    out: dict[str, Any] = {}
    progress(f"fleet: {sizes.e2e_events} events as /v1/batch posts of 100")
    profilers = []
    if profile_dir:
        profilers = _start_profilers(stack, profile_dir, ("ingest", "worker"), "e2e")
    out["batch"] = measured_end_to_end(stack, port, "batch", "e2e-batch", sizes.e2e_events)
    _wait_profilers(stack, profilers)
    progress(f"fleet: {out['batch']['events_per_s']:.0f} events/s end to end (batch)")
    progress(f"fleet: {sizes.single_events} events as single-event /webhook posts")
    out["webhook"] = measured_end_to_end(stack, port, "webhook", "e2e-hook", sizes.single_events)
    progress(f"fleet: {out['webhook']['events_per_s']:.0f} events/s end to end (webhook)")
    progress(f"fleet: the worker's CPU per event, {COST_RUNS} runs of {sizes.cost_events} events")
    out["batch_cost"] = cost_runs(stack, port, "batch", sizes.cost_events)
    rate_eps = out["batch"]["events_per_s"] / 2
    progress(f"fleet: sustained {rate_eps:.0f} events/s (half of end-to-end) for {sizes.lag_s} s")
    stack.standin_reset()
    load = paced(stack, port, "batch", "lag", rate_eps / 100, sizes.lag_s)
    sent = sum(1 for r in load["records"] if r[measure.STATUS] == 200) * 100
    stack.wait_for_events(sent)
    out["lag"] = measure.delivery(load["records"], stack.standin_dump(), 0, 100) | {
        "rate_eps": rate_eps, "ingest": measure.latency(load["records"])}  # fmt: skip
    progress(
        f"fleet: lag p99 {out['lag']['lag_p99_ms']:.0f} ms, "
        f"{out['lag']['events_per_request']:.1f} events/request"
    )
    return out


def backlog(
    stack: Stack, port: int, sizes: Sizes, ingest_eps: float, profile_dir: Path | None
) -> dict[str, Any]:
    progress("backlog: stopping the worker")
    stack.procs.stop("worker")
    stack.reset_keys()
    out: dict[str, Any] = {"events": sizes.backlog, "redis_mb_before": stack.used_memory_mb()}
    projected_s = sizes.backlog / ingest_eps if ingest_eps > 0 else math.inf
    started = time.monotonic()
    if projected_s <= sizes.http_fill_budget_s:
        out["fill"] = "ingest /v1/batch over HTTP"
        progress(f"backlog: {sizes.backlog} events through ingest (~{projected_s:.0f} s)")
        stack.run_load("backlog", _spec(port, "batch", "backlog", sizes.backlog // 100))
    else:
        out["fill"] = "ingest's publish script, no HTTP"
        progress(
            f"backlog: ingest would need ~{projected_s:.0f} s for {sizes.backlog} events; "
            "filling with ingest's publish script directly"
        )
        assert stack.redis is not None
        fill_direct(stack.redis, load_settings(stack.env), "backlog", sizes.backlog)
    out["fill_s"] = time.monotonic() - started
    out["stream_length"] = stack.stream_length()
    out["redis_mb"] = stack.used_memory_mb()
    progress(f"backlog: {out['stream_length']} queued, Redis {out['redis_mb']:.0f} MB; draining")
    stack.standin_reset()
    # A new process has used no CPU yet: the fallback start if the drain is over too soon.
    at_start = cost.snapshot({}, stack.redis) | {"worker": 0.0}
    pid = stack.start_worker("worker", "worker")
    profilers: list[subprocess.Popen[bytes]] = []
    max_rss = max_pss = 0.0
    samples = 0
    first_rss = None
    cpu_from: tuple[int, dict[str, float]] | None = None
    last_count, last_change, next_poll = -1, time.monotonic(), 0.0
    while True:
        rss, pss, _count = tree_memory_mb(pid)
        max_rss, max_pss = max(max_rss, rss), max(max_pss, pss)
        samples += 1
        now = time.monotonic()
        if now >= next_poll:
            next_poll = now + 0.5
            count = int(stack.standin_stats()["events"])
            if count and first_rss is None:
                first_rss = rss
                # From the first delivery on: the worker's start-up is not an event's cost.
                cpu_from = (count, cost.snapshot({"worker": pid}, stack.redis))
                if profile_dir:
                    profilers = _start_profilers(stack, profile_dir, ("worker",), "drain")
            if count >= sizes.backlog:
                break
            if count != last_count:
                last_count, last_change = count, now
            elif now - last_change > 60:
                break
        time.sleep(0.2)
    _wait_profilers(stack, profilers)
    time.sleep(SETTLE_S)
    after = cost.snapshot({"worker": pid}, stack.redis)
    delivered = int(stack.standin_stats()["events"])
    counted_from, before = cpu_from or (0, at_start)
    if delivered - counted_from < sizes.backlog // 10:
        # Drained before the first look (a tiny backlog): count from the worker's start.
        counted_from, before = 0, at_start
        out["cpu_includes_start_up"] = True
    drained = delivered - counted_from
    out["cpu_us"] = cost.per_event_us(before, after, {"worker": drained, cost.REDIS: drained})
    dump = stack.standin_dump()
    times = dump["seq_times"]
    out |= {
        "worker_rss_mb_max": max_rss,
        "worker_pss_mb_max": max_pss,
        "worker_rss_mb_at_first_delivery": first_rss or 0.0,
        "rss_samples": samples,
        "delivered": len(set(dump["seqs"])),
        "drain_events_per_s": len(times) / (max(times) - min(times)) if len(times) > 1 else 0.0,
    }
    progress(
        f"backlog: drained {out['delivered']} at {out['drain_events_per_s']:.0f} events/s; "
        f"worker RSS max {max_rss:.0f} MB"
    )
    stack.procs.stop("worker")  # its last metrics and history go out at its warm shutdown
    out |= retention(stack, out)
    return out


def retention(stack: Stack, out: dict[str, Any]) -> dict[str, Any]:
    """What Redis keeps per event: while queued, and once delivered (beyond the history)."""
    queued = max(1, out["stream_length"])
    per_queued = (out["redis_mb"] - out["redis_mb_before"]) * 2**20 / queued
    left_mb = stack.used_memory_mb()
    history = stack.history_bytes()
    delivered = max(1, out["delivered"])
    kept = (left_mb - out["redis_mb_before"]) * 2**20
    retained = {
        "redis_bytes_per_queued_event": per_queued,
        "redis_mb_after_drain": left_mb,
        "history_mb": history / 2**20,
        "retained_bytes_per_delivered_event": (kept - history) / delivered,
        "history_bytes_per_delivered_event": history / delivered,
    }
    progress(
        f"retention: {per_queued:.0f} B per queued event; once delivered "
        f"{retained['retained_bytes_per_delivered_event']:.1f} B per event kept, plus "
        f"{retained['history_bytes_per_delivered_event']:.0f} B of history (inside its budget)"
    )
    return retained


def cost_only(stack: Stack, port: int, mode: str, trips: cost.RoundTrips) -> dict[str, Any]:
    """Only the CPU per event (`python -m bench --cost-only`): batched and single-event loads
    through ingest and the worker, then a backlog the worker drains alone (filled with ingest's
    publish script while the worker runs, so the worker's start-up is not counted)."""
    alone = ingest_cpu(stack, port, INGEST_CPU_EVENTS[mode])
    out: dict[str, Any] = {"batch_alone": alone["batch"], "webhook_alone": alone["webhook"]}
    progress("cost: starting the worker")
    stack.start_worker("worker", "worker")
    warm_up(stack, port, "cw")
    batched, single, backlog_events = COST_SIZES[mode]
    trips.sample()
    progress(f"cost: {batched} events as batch posts through ingest and the worker")
    out["batch"] = cost_runs(stack, port, "batch", batched)
    trips.sample()
    progress(f"cost: {single} events as webhook posts through ingest and the worker")
    result = measured_end_to_end(stack, port, "webhook", "cost-webhook", single)
    out["webhook"] = result["cpu_us"]
    progress(f"cost: webhook: {result['events_per_s']:,.0f} events/s end to end; "
             f"{_cpu_line(out['webhook'])}")  # fmt: skip
    trips.sample()
    stack.standin_reset()
    trees = {"worker": stack.main_pid("worker")}
    before = cost.snapshot(trees, stack.redis)
    progress(f"cost: {backlog_events} events straight into Redis, drained by the worker")
    assert stack.redis is not None
    fill_direct(stack.redis, load_settings(stack.env), "cost-drain", backlog_events)
    delivered = stack.wait_for_events(backlog_events)
    time.sleep(SETTLE_S)
    after = cost.snapshot(trees, stack.redis)
    out["drain"] = cost.per_event_us(before, after, {"worker": delivered, cost.REDIS: delivered})
    trips.sample()
    progress(f"cost: drain: {_cpu_line(out['drain'])}")
    return out


def _cpu_line(cpu_us: dict[str, float]) -> str:
    return ", ".join(f"{name} {us:.1f} µs/event" for name, us in cpu_us.items())


# -- profiling (optional) ---------------------------------------------------------------------
def _start_profilers(
    stack: Stack, directory: Path, names: tuple[str, ...], label: str, seconds: int = 20
) -> list[subprocess.Popen[bytes]]:
    """py-spy (installed separately, for profiling only) on every process of the named trees."""
    spy = shutil.which("py-spy") or str(BIN / "py-spy")
    directory.mkdir(parents=True, exist_ok=True)
    targets = {}
    for name in names:
        tree = children_of(stack.main_pid(name))
        # gunicorn's arbiter only supervises; the Celery main process runs the pump and consumer.
        for pid in tree[1:] if name == "ingest" else tree:
            targets[f"{label}-{name}-{pid}"] = pid
    progress(f"profiling {sorted(targets)} for {seconds} s into {directory}")
    started = []
    for target, pid in targets.items():
        out = str(directory / f"{target}.txt")
        args = [spy, "record", "--pid", str(pid), "--duration", str(seconds), "--rate", "100",
                "--nonblocking", "--format", "raw", "-o", out]  # fmt: skip
        started.append(stack.procs.spawn(f"py-spy-{target}", args, stack.env))
    return started


def _wait_profilers(stack: Stack, profilers: list[subprocess.Popen[bytes]]) -> None:
    for profiler in profilers:
        profiler.wait()
    for name in [n for n in stack.procs.running if n.startswith("py-spy-")]:
        stack.procs.running.pop(name)
