"""`pushwoosh-fleet preview`: the Pushwoosh requests a set of events would produce, offline.

No network, no Redis: events are read from a file or stdin (one JSON object, a JSON array, or
NDJSON), mapped through the configured mappings and packed as a worker packs one batch window.
Each request names the mapping that made it (and its action), as Segment's "Test Mapping" does.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from config.mappings import Mapping
from config.settings import Settings
from worker.batching import plan_requests
from worker.mapping import Call, plan_calls
from worker.wire import DRY_RUN_APP_CODE, Endpoint


class PreviewInputError(ValueError):
    """Raised when the preview input is neither JSON, a JSON array nor NDJSON."""


def read_events(text: str) -> list[Any]:
    """One JSON value, a JSON array of events, or one JSON value per line."""
    stripped = text.strip()
    if not stripped:
        return []
    try:
        value = json.loads(stripped)
    except json.JSONDecodeError:
        events = []
        for number, line in enumerate(stripped.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError as ex:
                raise PreviewInputError(f"line {number}: not JSON ({ex.msg})") from ex
        return events
    return value if isinstance(value, list) else [value]


def preview(
    events: Sequence[Any],
    mappings: Sequence[Mapping],
    settings: Settings,
    *,
    show_secrets: bool = False,
) -> dict[str, list[dict[str, Any]]]:
    app_code = settings.pushwoosh_application_code or DRY_RUN_APP_CODE
    calls: list[Call] = []
    rejected: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    for index, event in enumerate(events):
        if not isinstance(event, dict):
            skipped.append({"index": index, "reason": "not a JSON object"})
            continue
        if "messageId" not in event:
            event = {**event, "messageId": f"preview-{index}"}
        event_calls, rejections = plan_calls(event, mappings, app_code)
        for rejection in rejections:
            rejected.append(
                {
                    "index": index,
                    "messageId": rejection.message_id,
                    "action": rejection.action,
                    "reason": rejection.reason,
                }
            )
        if not event_calls and not rejections:
            skipped.append({"index": index, "reason": "no enabled mapping matches this event"})
        calls.extend(event_calls)
    requests = []
    endpoint = Endpoint.of(settings)
    for planned in plan_requests(calls, settings.batch_max_events):
        http = endpoint.request(planned.path, planned.body, reveal_secrets=show_secrets)
        requests.append(
            {
                "mapping": planned.mapping,
                "action": planned.action,
                "events": len(planned.message_ids),
                "method": http.method,
                "url": http.url,
                "headers": http.headers,
                "json": http.json,
            }
        )
    return {"requests": requests, "rejected": rejected, "skipped": skipped}
