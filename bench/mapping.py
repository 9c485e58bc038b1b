"""`python -m bench.mapping`: how fast triggers and mappings run, compiled once, in one process.

A realistic mix (identify 30 %, track 50 %, page 15 %, screen 5 %, with context and traits like
Segment's libraries send) goes through `plan_calls` with the presets and with a file of custom
mappings (VIP purchases, templates, @if), and the rate is printed in events per second; a
baseline in the same run re-parses the triggers and re-compiles the fields for every event, which
is what compiling once saves. No I/O: this is the pure core alone.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable
from typing import Any

from config.mapping_file import load_mappings_from_data, preset_mappings
from config.mappings import Mapping
from worker.mapping import plan_calls

CUSTOM = {
    "mappings": [
        {
            "name": "Profiles",
            "action": "updateUserProfile",
            "trigger": 'type = "identify"',
            "defaults": True,
        },
        {
            "name": "Tracks",
            "action": "trackEvent",
            "trigger": 'type = "track" or type = "page" or type = "screen"',
            "defaults": True,
        },
        {
            "name": "VIP purchases",
            "action": "trackEvent",
            "trigger": 'type = "track" and event = "Order Completed" and properties.total > 100',
            "defaults": True,
            "fields": {
                "name": "VIP Order",
                "properties": {
                    "plan": {"@template": "{{properties.plan}}"},
                    "total": {"@path": "$.properties.total"},
                },
            },
        },
        {
            "name": "Web only",
            "action": "trackEvent",
            "trigger": 'type = "page" and match(context.page.path, "/pricing*")',
            "defaults": True,
            "fields": {
                "name": {
                    "@if": {
                        "exists": {"@path": "$.name"},
                        "then": {"@path": "$.name"},
                        "else": "Page",
                    }
                }
            },
        },
    ]
}


def event_mix(count: int, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    context = {
        "app": {"version": "2.3.1"},
        "device": {"id": "D1", "model": "iPhone12,1", "type": "ios", "token": "ff15"},
        "os": {"version": "17.4"},
        "locale": "en-US",
        "location": {"city": "Berlin", "country": "DE", "latitude": 52.52, "longitude": 13.405},
        "timezone": "Europe/Berlin",
        "userAgent": "ShopApp/2.3.1",
        "page": {"path": "/pricing/team"},
    }
    events = []
    for i in range(count):
        roll = rng.random()
        base = {
            "userId": f"user-{i % 500}",
            "messageId": f"m-{i}",
            "context": context,
            "timestamp": "2024-05-01T12:05:00.000Z",
        }
        if roll < 0.3:
            events.append(
                {
                    **base,
                    "type": "identify",
                    "traits": {"email": "a@example.com", "plan": "pro", "visits": i},
                }
            )
        elif roll < 0.8:
            events.append(
                {
                    **base,
                    "type": "track",
                    "event": "Order Completed",
                    "properties": {"total": rng.choice([20, 150]), "plan": "pro"},
                }
            )
        elif roll < 0.95:
            events.append({**base, "type": "page", "name": "Pricing", "properties": {"path": "/p"}})
        else:
            events.append({**base, "type": "screen", "name": "Cart"})
    return events


def rate(events: list[dict[str, Any]], mappings: Callable[[], list[Mapping]]) -> float:
    started = time.perf_counter()
    for event in events:
        plan_calls(event, mappings(), "ABCDE-12345")
    return len(events) / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.mapping", description=__doc__)
    parser.add_argument("--events", type=int, default=50_000)
    args = parser.parse_args(argv)
    events = event_mix(args.events)
    presets = preset_mappings(False)
    custom = load_mappings_from_data(CUSTOM, False, "bench")
    presets_rate = rate(events, lambda: presets)
    custom_rate = rate(events, lambda: custom)
    slice_for_baseline = events[: max(1000, args.events // 20)]
    recompiled_rate = rate(
        slice_for_baseline, lambda: load_mappings_from_data(CUSTOM, False, "bench")
    )
    print(f"trigger + mapping, presets:             {presets_rate:>10,.0f} events/s")
    print(f"trigger + mapping, 4 custom mappings:   {custom_rate:>10,.0f} events/s")
    print(f"same, re-parsing per event (baseline):  {recompiled_rate:>10,.0f} events/s")
    print(
        f"compiling once is {custom_rate / recompiled_rate:,.0f}x faster; "
        f"{1e6 / presets_rate:.1f} µs per event with the presets"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
