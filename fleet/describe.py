"""A readable account of what the fleet will do with events, for `pushwoosh-fleet check-config`.

Shows each mapping as it was compiled (with `defaults: true`, after the defaults were merged
in), so what is printed is what runs: the trigger, the Pushwoosh endpoint, every field with the
JSON it is taken from, and the names of the `integrations` entry that switches events off.
"""

from __future__ import annotations

import json
from collections.abc import Mapping as MappingABC
from collections.abc import Sequence
from typing import Any

from config.destinations import load_destinations
from config.errors import ConfigError
from config.mapping_file import load_mappings
from config.mappings import TRACK_EVENT, UPDATE_USER_PROFILE, Mapping
from config.settings import Settings, load_settings
from worker.mapping import POST_EVENTS_PATH, TRACK_USER_PATH
from worker.wire import API_PREFIX


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _endpoint(mapping: Mapping, settings: Settings) -> str:
    if mapping.action == UPDATE_USER_PROFILE:
        return f"POST {API_PREFIX}{TRACK_USER_PATH}, one request per event"
    if mapping.action == TRACK_EVENT:
        if mapping.enable_batching:
            how = f"batched, up to {settings.batch_max_events} events per request"
        else:
            how = "one event per request"
        return f"POST {API_PREFIX}{POST_EVENTS_PATH}, {how}"
    return mapping.action


def _describe_one(number: int, mapping: Mapping, settings: Settings) -> list[str]:
    state = "enabled" if mapping.enabled else "DISABLED (never runs)"
    lines = [
        f'{number}. "{mapping.name}" [{state}]',
        f"   action:  {mapping.action} -> {_endpoint(mapping, settings)}",
        f"   trigger: {mapping.trigger_source}",
        "   fields:",
    ]
    width = max((len(key) for key in mapping.field_sources), default=0)
    for key, source in mapping.field_sources.items():
        lines.append(f"     {key.ljust(width)}  {_compact(source)}")
    if not mapping.field_sources:
        lines.append("     (none)")
    return lines


def describe_mappings(mappings: Sequence[Mapping], settings: Settings) -> str:
    """Every mapping with its endpoint, trigger and field sources, plus the built-in delete."""
    if settings.dry_run:
        target = "DRY RUN: requests are logged, not sent (no credentials or PUSHWOOSH_DRY_RUN)"
    else:
        app_code = settings.pushwoosh_application_code
        target = f"Pushwoosh at {settings.pushwoosh_base_url}, application {app_code}"
    origin = settings.pushwoosh_mappings_file or "the presets (no PUSHWOOSH_MAPPINGS_FILE)"
    lines = [f"destination: {target}", f"mappings: {len(mappings)}, from {origin}", ""]
    for number, mapping in enumerate(mappings, start=1):
        lines += [*_describe_one(number, mapping, settings), ""]
    names = mappings[0].integration_names if mappings else ()
    if names:
        listed = " or ".join(f'"{name}": false' for name in names)
        lines.append(f'skipped: events whose integrations say {listed}, or "All": false')
    lines.append(
        'delete events (type = "delete") -> delete-user ({"external_id": userId}), '
        "always, whatever the mappings"
    )
    return "\n".join(lines)


def _mapping_problems(env: MappingABC[str, str]) -> list[str]:
    """Problems in the mappings file alone, for when the settings are broken too."""
    try:
        load_mappings(env.get("PUSHWOOSH_MAPPINGS_FILE") or None, False)
    except ConfigError as ex:
        return ex.problems
    return []


def check_config(env: MappingABC[str, str]) -> tuple[int, str]:
    """(0, summary) when settings and mappings are valid, else (2, every problem found)."""
    try:
        settings = load_settings(env)
    except ConfigError as ex:
        problems = [*ex.problems, *_mapping_problems(env)]
    else:
        try:
            destinations = load_destinations(settings, env)
        except ConfigError as ex:
            problems = ex.problems
        else:
            return 0, "\n\n".join(
                describe_mappings(list(d.mappings), d.settings)
                + ("" if len(destinations) == 1 else f"\n(destination {name!r})")
                for name, d in destinations.items()
            )
    return 2, "configuration problems:\n" + "\n".join(f" - {p}" for p in problems)
