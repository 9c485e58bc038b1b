"""Numbers from raw records: percentiles, rates, and the join of what the load generator was
told (ingest's 200) with what the stand-in received."""

from __future__ import annotations

import math
from array import array
from collections.abc import Sequence
from typing import Any

# A load-generator record: [request index, due, sent, answered, status] (times: time.time()).
INDEX, DUE, SENT, DONE, STATUS = range(5)


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (p99 of 100 values is the 99th smallest); NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return float(ordered[rank - 1])


def request_rate(records: list[list[float]], per_request: int) -> dict[str, float]:
    """Closed-loop saturation: answered requests per second over the busy period."""
    ok = [r for r in records if r[STATUS] == 200]
    if not ok:
        return {"rps": 0.0, "eps": 0.0, "errors": float(len(records)), "p50_ms": math.nan,
                "p99_ms": math.nan}  # fmt: skip
    span = max(r[DONE] for r in ok) - min(r[SENT] for r in records)
    latencies = [(r[DONE] - r[DUE]) * 1000 for r in ok]
    rps = len(ok) / span
    return {
        "rps": rps,
        "eps": rps * per_request,
        "errors": float(len(records) - len(ok)),
        "p50_ms": percentile(latencies, 0.50),
        "p99_ms": percentile(latencies, 0.99),
    }


def latency(records: list[list[float]]) -> dict[str, float]:
    """Open loop: latency from the moment each request was due until its answer."""
    ok = [r for r in records if r[STATUS] == 200]
    latencies = [(r[DONE] - r[DUE]) * 1000 for r in ok]
    span = (max(r[DONE] for r in ok) - min(r[DUE] for r in ok)) if ok else math.nan
    return {
        "p50_ms": percentile(latencies, 0.50),
        "p99_ms": percentile(latencies, 0.99),
        "max_ms": max(latencies) if latencies else math.nan,
        "achieved_rps": len(ok) / span if ok and span > 0 else math.nan,
        "errors": float(len(records) - len(ok)),
    }


def delivery(
    records: list[list[float]], dump: dict[str, array[Any]], seq_start: int, per_request: int
) -> dict[str, Any]:
    """End to end: throughput from the first POST to the last receipt, lag per event from
    ingest's 200 to the stand-in's receipt, and events per Pushwoosh request."""
    answered = {int(r[INDEX]): r[DONE] for r in records if r[STATUS] == 200}
    sent_events = len(answered) * per_request
    first_post = min(r[SENT] for r in records)
    received: dict[int, float] = {}
    duplicates = 0
    for seq, at in zip(dump["seqs"], dump["seq_times"], strict=True):
        if seq in received:
            duplicates += 1
        else:
            received[seq] = at
    lags = []
    for seq, at in received.items():
        done = answered.get((seq - seq_start) // per_request)
        if done is not None:
            lags.append((at - done) * 1000)
    last = max(received.values()) if received else math.nan
    sizes = [s for s in dump["req_sizes"] if s > 0]
    return {
        "sent_events": sent_events,
        "received_events": len(received),
        "missing": sent_events - len(received),
        "duplicates": duplicates,
        "errors": len(records) - len(answered),
        "events_per_s": len(received) / (last - first_post) if received else 0.0,
        "ingest_events_per_s": sent_events / (max(answered.values()) - first_post)
        if answered
        else 0.0,
        "seconds": last - first_post,
        "lag_p50_ms": percentile(lags, 0.50),
        "lag_p99_ms": percentile(lags, 0.99),
        "lag_max_ms": max(lags) if lags else math.nan,
        "requests": len(sizes),
        "events_per_request": sum(sizes) / len(sizes) if sizes else math.nan,
        "full_request_share": sum(1 for s in sizes if s >= 100) / len(sizes) if sizes else 0.0,
    }
