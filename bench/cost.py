"""CPU per event, as a multiple of a fixed piece of work measured in the same run.

Events per second move with the machine (the same commit measured 26,503 events/s end to end on
one 2-core machine and 7,535 on another); the CPU one event costs, divided by the CPU of a fixed
piece of work timed on the same machine at the same time, moves much less. That piece of work,
**one round trip**, is `orjson.loads` + `orjson.dumps` of one of the benchmark's events (the
~700-byte Segment track event of `bench/events.py`), the least any process can do with an event
it receives as JSON and passes on as JSON.

CPU is read from /proc for each process tree (user + system time of every process in it, gunicorn's
master and workers, Celery's main process and its threads) and from Redis' own `INFO cpu`
(`used_cpu_user` + `used_cpu_sys`), before and after a load; divided by the events that load
stored or delivered.

`make bench` reports it for its end-to-end runs and its backlog drain; `python -m bench
--cost-only` measures only this, in about a minute.
"""

from __future__ import annotations

import time
import timeit
from collections.abc import Mapping

import orjson
import redis

from bench.events import SENT_PLACEHOLDER, render_event
from bench.procs import tree_cpu_s

REDIS = "redis"


def sample_event() -> bytes:
    """One of the benchmark's events, as the load generator sends it (send time spliced in)."""
    return render_event("rt", 123_456).replace(SENT_PLACEHOLDER, b'"sent":%.6f' % time.time())


def round_trip_us(repeats: int = 30, number: int = 300) -> float:
    """One round trip, `orjson.loads` + `orjson.dumps` of one benchmark event, in µs: the
    fastest of `repeats` timings of `number` round trips each. Short timings, many of them: on
    a shared machine the same code runs up to twice as slow while another process shares its
    core, and a short timing is more likely to fall entirely in a quiet moment."""
    raw = sample_event()
    loads, dumps = orjson.loads, orjson.dumps

    def once() -> None:
        for _ in range(number):
            dumps(loads(raw))

    once()  # warm
    best = min(timeit.repeat(once, repeat=repeats, number=1))
    return best / number * 1e6


class RoundTrips:
    """The unit, timed several times over a run (the machine's other load comes and goes);
    the fastest timing is the unit, as timing a piece of code usually takes the minimum."""

    def __init__(self) -> None:
        self.samples: list[float] = []

    def sample(self) -> float:
        self.samples.append(round_trip_us())
        return self.samples[-1]

    @property
    def unit_us(self) -> float:
        return min(self.samples)


def redis_cpu_s(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def snapshot(trees: Mapping[str, int], client: redis.Redis | None) -> dict[str, float]:
    """CPU seconds so far of each named process tree (name -> root pid), and of Redis."""
    out = {name: tree_cpu_s(pid) for name, pid in trees.items()}
    if client is not None:
        out[REDIS] = redis_cpu_s(client)
    return out


def per_event_us(
    before: Mapping[str, float], after: Mapping[str, float], events: Mapping[str, int]
) -> dict[str, float]:
    """µs of CPU per event for each name in `events` (name -> events it handled)."""
    return {
        name: (after[name] - before[name]) / count * 1e6
        for name, count in events.items()
        if count > 0 and name in before and name in after
    }


def ratios(costs_us: Mapping[str, float], unit_us: float) -> dict[str, float]:
    return {name: us / unit_us for name, us in costs_us.items()}
