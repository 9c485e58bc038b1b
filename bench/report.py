"""The readable table and the one JSON line the run ends with."""

from __future__ import annotations

import json
import math
import os
import subprocess
from pathlib import Path
from typing import Any

# The product's promises: (key, label, target, higher_is_better).
TARGETS = {
    "fleet_events_per_s": (10_000, True),
    "speedup": (15, True),
    "events_per_request": (95, True),
    "ingest_p99_ms": (25, False),
    "lag_p99_ms": (2_000, False),
    "worker_rss_mb_backlog": (150, False),
    "retained_bytes_per_delivered_event": (32, False),
    "slow_clients_max_ms": (1_000, False),
    # CPU per event in round trips (bench/cost.py): ingest and the worker, batched events.
    "ingest_round_trips_per_event": (10, False),
    "worker_round_trips_per_event": (10, False),
    "ingest_round_trips_per_single_event_request": (60, False),
}
# (summary key, label, part of the cost results, process tree, "per" word)
COST_ROWS = (
    ("ingest_round_trips_per_event", "ingest alone, /v1/batch of 100", "batch_alone", "ingest",
     "event"),
    ("ingest_round_trips_per_single_event_request", "ingest alone, single-event /webhook",
     "webhook_alone", "ingest", "request"),
    ("ingest_round_trips_per_event_e2e", "ingest, end to end (/v1/batch load)", "batch", "ingest",
     "event"),
    ("ingest_round_trips_per_single_event_request_e2e", "ingest, end to end (single-event load)",
     "webhook", "ingest", "request"),
    ("worker_round_trips_per_event", "worker, end to end (/v1/batch load)", "batch", "worker",
     "event"),
    ("worker_round_trips_per_event_single", "worker, end to end (single-event load)", "webhook",
     "worker", "event"),
    ("worker_round_trips_per_event_drain", "worker alone, draining a backlog", "drain", "worker",
     "event"),
    ("redis_round_trips_per_event", "Redis, end to end (/v1/batch load)", "batch", "redis",
     "event"),
    ("redis_round_trips_per_event_single", "Redis, end to end (single-event load)", "webhook",
     "redis", "event"),
    ("redis_round_trips_per_event_drain", "Redis, draining a backlog", "drain", "redis", "event"),
)  # fmt: skip


def machine() -> str:
    """What the absolute numbers were measured on."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs, {model}"


def cost_results(results: dict[str, Any]) -> dict[str, Any]:
    """The CPU-per-event figures of a full run, from its end-to-end runs and its backlog."""
    fleet, backlog = results["fleet"], results["backlog"]
    return {
        "round_trip_us": results["round_trip_us"],
        "round_trip_samples_us": results.get("round_trip_samples_us"),
        "batch_alone": results["ingest"]["cpu_us"]["batch"],
        "webhook_alone": results["ingest"]["cpu_us"]["webhook"],
        # The worker's figure from its repeated cost runs (a run before those lacks them).
        "batch": fleet.get("batch_cost") or fleet["batch"]["cpu_us"],
        "webhook": fleet["webhook"]["cpu_us"],
        "drain": backlog.get("cpu_us", {}),
    }


def cost_summary(cost: dict[str, Any]) -> dict[str, float]:
    """Each COST_ROWS figure in round trips (and the round trip itself, in µs)."""
    unit = cost["round_trip_us"]
    out = {"round_trip_us": round(unit, 3)}
    for key, _label, part, tree, _per in COST_ROWS:
        us = cost.get(part, {}).get(tree)
        if us is not None:
            out[key] = round(us / unit, 1)
    return out


def cost_rows(cost: dict[str, Any]) -> list[tuple[str, str, str]]:
    unit = cost["round_trip_us"]
    samples = cost.get("round_trip_samples_us") or [unit]
    rows = [
        ("Cost: CPU per event (each process tree, from /proc; Redis from INFO cpu)", "", ""),
        ("  one round trip: orjson loads + dumps of one event",
         f"{unit:.2f} µs (fastest of {len(samples)} timings; slowest {max(samples):.2f})", ""),
    ]  # fmt: skip
    for key, label, part, tree, per in COST_ROWS:
        us = cost.get(part, {}).get(tree)
        if us is None:
            continue
        trips = us / unit
        text = f"{us:,.1f} µs per {per} = {trips:,.1f} round trips"
        runs = [r for r in cost.get(part, {}).get("runs_us", {}).get(tree, []) if r is not None]
        if len(runs) > 1:
            text += f" (fastest of {len(runs)} runs; slowest {max(runs) / unit:,.1f})"
        rows.append((f"  {label}", text, _verdict(key, round(trips, 1))))
    return rows


def cost_table(cost: dict[str, Any], header: str) -> str:
    return _render([header], cost_rows(cost), [])


def summary(results: dict[str, Any]) -> dict[str, float]:
    fleet = results["fleet"]["batch"]["events_per_s"]
    base = results["baseline"]["events_per_s"]
    return {
        "fleet_events_per_s": round(fleet, 1),
        "baseline_events_per_s": round(base, 1),
        "speedup": round(fleet / base, 2) if base > 0 else math.inf,
        "events_per_request": round(results["fleet"]["lag"]["events_per_request"], 2),
        "ingest_p99_ms": round(results["ingest"]["batch"]["half"]["p99_ms"], 2),
        "lag_p99_ms": round(results["fleet"]["lag"]["lag_p99_ms"], 1),
        "worker_rss_mb_backlog": round(results["backlog"]["worker_rss_mb_max"], 1),
        "redis_bytes_per_queued_event": round(
            results["backlog"]["redis_bytes_per_queued_event"], 1
        ),
        "retained_bytes_per_delivered_event": round(
            results["backlog"]["retained_bytes_per_delivered_event"], 1
        ),
        "history_bytes_per_delivered_event": round(
            results["backlog"]["history_bytes_per_delivered_event"], 1
        ),
    } | cost_summary(cost_results(results))


def _verdict(key: str, value: float) -> str:
    if key not in TARGETS:
        return ""
    target, higher = TARGETS[key]
    ok = value >= target if higher else value <= target
    sign = ">=" if higher else "<="
    return f"{'PASS' if ok else 'MISS'} ({sign} {target:,})"


def source_state() -> str:
    """Which code was measured: the commit, and whether the working tree differs from it."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "code: unknown (no git)"
    return f"code: {commit or 'unknown'}{' + uncommitted changes' if dirty else ''}"


def table(results: dict[str, Any], mode: str) -> str:
    s = summary(results)
    ing, fl, bl, base = results["ingest"], results["fleet"], results["backlog"], results["baseline"]
    rows: list[tuple[str, str, str]] = []

    def row(label: str, value: str, key: str = "", number: float | None = None) -> None:
        rows.append((label, value, _verdict(key, number) if key and number is not None else ""))

    row("End to end (first POST -> last receipt at the stand-in), batching on", "", "")
    row("  fleet, /v1/batch of 100", f"{fl['batch']['events_per_s']:,.0f} events/s",
        "fleet_events_per_s", s["fleet_events_per_s"])  # fmt: skip
    row("    (ingest accepted at)", f"{fl['batch']['ingest_events_per_s']:,.0f} events/s")
    row("  fleet, single-event /webhook", f"{fl['webhook']['events_per_s']:,.0f} events/s")
    row("    (ingest accepted at)", f"{fl['webhook']['ingest_events_per_s']:,.0f} events/s")
    row("  baseline (task per event), /v1/batch of 100",
        f"{base['events_per_s']:,.0f} events/s")  # fmt: skip
    row("    (baseline ingest accepted at)", f"{base['ingest_events_per_s']:,.0f} events/s")
    row("  speedup fleet / baseline", f"{s['speedup']:.1f}x", "speedup", s["speedup"])
    row("Ingest alone (no worker)", "", "")
    for route, label in (("batch", "/v1/batch of 100"), ("webhook", "single-event /webhook")):
        sat, half = ing[route]["saturation"], ing[route]["half"]
        row(f"  {label}: saturation", f"{sat['rps']:,.0f} req/s = {sat['eps']:,.0f} events/s")
        row(f"  {label}: at saturation p50 / p99",
            f"{sat['p50_ms']:.1f} / {sat['p99_ms']:.1f} ms")  # fmt: skip
        row(f"  {label}: at half ({half['rate_rps']:,.0f} req/s) p50 / p99",
            f"{half['p50_ms']:.1f} / {half['p99_ms']:.1f} ms",
            "ingest_p99_ms", half["p99_ms"])  # fmt: skip
    slow = results["slow_clients"]
    row(f"  with {slow['connections']} slow connections (a byte a second, {slow['seconds']:g} s):"
        " slowest /healthz or /v1/batch", f"{slow['max_ms']:,.0f} ms, "
        f"{slow['probes'] - len(slow['failures'])} of {slow['probes']} answered 200",
        "slow_clients_max_ms", slow["max_ms"])  # fmt: skip
    lag = fl["lag"]
    row(f"Sustained load: {lag['rate_eps']:,.0f} events/s (half of end to end), open loop", "", "")
    row("  delivery lag (ingest 200 -> receipt) p50 / p99",
        f"{lag['lag_p50_ms']:.0f} / {lag['lag_p99_ms']:.0f} ms", "lag_p99_ms",
        lag["lag_p99_ms"])  # fmt: skip
    row("  ingest latency p50 / p99 (worker running)",
        f"{lag['ingest']['p50_ms']:.1f} / {lag['ingest']['p99_ms']:.1f} ms")  # fmt: skip
    row("  events per Pushwoosh request", f"{lag['events_per_request']:.1f} "
        f"({lag['full_request_share']:.0%} full)", "events_per_request",
        lag["events_per_request"])  # fmt: skip
    row(
        "  events per request, saturating /v1/batch / /webhook",
        f"{fl['batch']['events_per_request']:.1f} / {fl['webhook']['events_per_request']:.1f}",
    )
    row(f"Backlog of {bl['events']:,} events", "", "")
    row("  filled with", f"{bl['fill']} in {bl['fill_s']:.0f} s")
    row("  Redis used_memory before / with backlog",
        f"{bl['redis_mb_before']:.0f} / {bl['redis_mb']:.0f} MB")  # fmt: skip
    row("  Redis bytes per queued event", f"{bl['redis_bytes_per_queued_event']:.0f} B")
    row("  kept per delivered event, beyond the history",
        f"{bl['retained_bytes_per_delivered_event']:.1f} B",
        "retained_bytes_per_delivered_event", s["retained_bytes_per_delivered_event"])  # fmt: skip
    row("  history per delivered event (inside TRACE_MAX_BYTES)",
        f"{bl['history_bytes_per_delivered_event']:.0f} B")  # fmt: skip
    row("  worker RSS, sum over process tree, max while draining",
        f"{bl['worker_rss_mb_max']:.0f} MB", "worker_rss_mb_backlog",
        bl["worker_rss_mb_max"])  # fmt: skip
    row("  worker RSS at its first delivery", f"{bl['worker_rss_mb_at_first_delivery']:.0f} MB")
    row("  worker PSS (shared pages counted once), max", f"{bl['worker_pss_mb_max']:.0f} MB")
    row("  drain rate (worker alone, first -> last receipt)",
        f"{bl['drain_events_per_s']:,.0f} events/s; {bl['delivered']:,} delivered")  # fmt: skip
    problems = []
    for route in ("batch", "webhook"):
        for run in ("saturation", "half"):
            refused = int(ing[route][run]["errors"])
            if refused:
                problems.append(f"ingest alone, {route} at {run}: {refused} requests refused")
    for name, part in (("baseline", base), ("fleet batch", fl["batch"]),
                       ("fleet webhook", fl["webhook"]), ("lag run", lag)):  # fmt: skip
        if part["missing"] or part["errors"] or part["duplicates"]:
            problems.append(f"{name}: {part['missing']} missing, {part['duplicates']} duplicate, "
                            f"{part['errors']} failed requests")  # fmt: skip
    if slow["failures"]:
        problems.append(f"slow clients: {len(slow['failures'])} probes failed")
    if bl["delivered"] < bl["events"]:
        problems.append(f"backlog: only {bl['delivered']} of {bl['events']} delivered")
    rows += cost_rows(cost_results(results))
    lines = [f"ACCOUNTING: {p}" for p in problems] or ["accounting: every event delivered once"]
    return _render([header(mode, results)], rows, lines)


def header(mode: str, results: dict[str, Any]) -> str:
    return (
        f"pushwoosh-fleet benchmark ({mode}), 127.0.0.1, {machine()}, "
        f"load average before start {results.get('loadavg', '?')}; "
        f"{results.get('source', source_state())}"
    )


def _render(head: list[str], rows: list[tuple[str, str, str]], tail: list[str]) -> str:
    width = max(len(r[0]) for r in rows) + 2
    vwidth = max(len(r[1]) for r in rows) + 2
    rule = "-" * (width + vwidth + 20)
    lines = [*head, rule]
    lines += [f"{label:<{width}}{value:<{vwidth}}{verdict}".rstrip() for label, value, verdict
              in rows]  # fmt: skip
    lines.append(rule)
    return "\n".join(lines + tail)


def json_line(results: dict[str, Any]) -> str:
    return json.dumps(summary(results))


def ingest_json_line(results: dict[str, Any]) -> str:
    """`--ingest-only`: ingest's saturation and latency at half, and the slow-client probes."""
    out: dict[str, Any] = {"loadavg": results.get("loadavg"), "source": results.get("source")}
    for route in ("batch", "webhook"):
        sat, half = results["ingest"][route]["saturation"], results["ingest"][route]["half"]
        out[f"{route}_saturation_rps"] = round(sat["rps"], 1)
        out[f"{route}_saturation_eps"] = round(sat["eps"], 1)
        out[f"{route}_half_p50_ms"] = round(half["p50_ms"], 2)
        out[f"{route}_half_p99_ms"] = round(half["p99_ms"], 2)
    slow = results["slow_clients"]
    out["slow_clients_max_ms"] = round(slow["max_ms"], 1)
    out["slow_clients_failed"] = len(slow["failures"])
    return json.dumps(out)
