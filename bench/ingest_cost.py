"""`python -m bench.ingest_cost`: what ingest costs, measured so that other load on the machine
moves the numbers as little as possible; for comparing two versions of ingest, run alternately.

- CPU time of ingest's gunicorn workers per event (from /proc) for a fixed closed-loop load:
  3,000 `/v1/batch` posts of 100 events, then 20,000 single-event `/webhook` posts, also in
  round trips (`bench/cost.py`; `python -m bench --cost-only` measures the worker too);
- latency p50 / p99 at one fixed open-loop rate, the same for every version measured
  (`--batch-rps`, `--webhook-rps`; the benchmark's "half of saturation" moves with saturation).

Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from bench import cost, measure, phases
from bench.procs import children_of, tree_cpu_s
from bench.stack import Stack


def _cpu_s(pids: list[int]) -> float:
    return sum(tree_cpu_s(pid) for pid in pids)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest_cost", description=__doc__)
    parser.add_argument("--batch-rps", type=float, default=100.0)
    parser.add_argument("--webhook-rps", type=float, default=500.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    work_dir = Path(tempfile.mkdtemp(prefix="pwf-ingest-cost-"))
    stack = Stack(work_dir)
    out: dict[str, object] = {"loadavg": Path("/proc/loadavg").read_text().split()[0]}
    trips = cost.RoundTrips()
    trips.sample()
    try:
        stack.start_redis()
        port = stack.start_ingest("ingest", phases.FLEET_INGEST)
        workers = children_of(stack.main_pid("ingest"))[1:]
        for route, count, per, rate in (
            ("batch", 3000, 100, args.batch_rps),
            ("webhook", 20000, 1, args.webhook_rps),
        ):
            stack.run_load("warm", phases.closed_spec(port, route, f"warm-{route}", 200))
            stack.reset_keys()
            before = _cpu_s(workers)
            load = stack.run_load(route, phases.closed_spec(port, route, f"cpu-{route}", count))
            used = _cpu_s(workers) - before
            stored = sum(1 for r in load["records"] if r[measure.STATUS] == 200) * per
            out[f"{route}_cpu_us_per_event"] = round(used / stored * 1e6, 1) if stored else None
            trips.sample()
            stack.reset_keys()
            time.sleep(phases.SETTLE_S)
            paced = phases.paced(stack, port, route, f"rate-{route}", rate, args.seconds)
            latency = measure.latency(paced["records"])
            out[f"{route}_at_{rate:g}_rps_p50_ms"] = round(latency["p50_ms"], 2)
            out[f"{route}_at_{rate:g}_rps_p99_ms"] = round(latency["p99_ms"], 2)
            stack.reset_keys()
    finally:
        stack.stop()
        shutil.rmtree(work_dir, ignore_errors=True)
    out["round_trip_us"] = round(trips.unit_us, 3)
    for route in ("batch", "webhook"):
        us = out.get(f"{route}_cpu_us_per_event")
        if isinstance(us, float):
            out[f"{route}_round_trips_per_event"] = round(us / trips.unit_us, 1)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
