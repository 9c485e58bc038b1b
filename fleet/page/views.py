"""The delivery page's views: overview (charts, now, errors), dead letters, trace, test mapping.

Each view reads what it shows with the fleet's own functions, the ones the command line uses:
`read_status` (fleet/status.py), `DeadLetterQueue` (worker/dlq.py, as `pushwoosh-fleet dlq`),
`lookup` and `describe` (telemetry/trace.py, as `trace`), `preview` (fleet/preview.py, as
`preview`), so the page and the CLI cannot disagree.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

import falcon

from config.destinations import Destination
from config.redis_keys import RedisKeys
from fleet.dlq_cli import read_age
from fleet.page import charts, series
from fleet.page.context import Page
from fleet.page.reads import read_now
from fleet.preview import PreviewInputError, preview, read_events
from telemetry.error_groups import read_error_groups
from telemetry.trace import describe, lookup
from worker.dlq import DeadLetter, DeadLetterFilter, DeadLetterQueue
from worker.wire import Endpoint

DEAD_LETTERS_PER_PAGE: Final = 50
# A filter that matches little reads at most this many entries per page, however many there are.
DEAD_LETTERS_SCANNED: Final = 1000
# One replay or purge request acts on at most this many entries (the page sends a selection in
# chunks, to show its progress).
MAX_IDS_PER_ACTION: Final = 100
# What the test-mapping form takes: about ingest's request limit.
MAX_TEST_INPUT_CHARS: Final = 512 * 1024
MAX_TEST_EVENTS: Final = 1000
ERROR_HOURS: Final = 24


def _when(ms: int | None) -> str:
    if not ms:
        return "—"
    try:
        return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, OSError, ValueError):
        return f"{ms} ms since 1970"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = abs(seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _number(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "—"
    return f"{value:,.{digits}f}"


FILTERS: Final[dict[str, Callable[..., str]]] = {
    "when": _when,
    "duration": _duration,
    "number": _number,
    "pretty": lambda value: json.dumps(value, indent=2, ensure_ascii=False),
}


def _keys(destination: Destination) -> RedisKeys:
    return RedisKeys(destination.settings.redis_key_prefix, destination.name)


class Home:
    def __init__(self, page: Page) -> None:
        self._page = page

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        visible = sorted(req.context.visitor.destinations)
        if len(visible) == 1:
            raise falcon.HTTPFound(f"/delivery/{visible[0]}")
        self._page.render(req, resp, "index.html", tab="", destination=None)


class Overview:
    """Delivery over time, the fleet now, and errors by kind."""

    def __init__(self, page: Page) -> None:
        self._page = page

    def on_get(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        page = self._page
        destination = page.destination(req, name)
        range_ = series.RANGES.get(req.get_param("range") or "", series.LAST_HOUR)
        now_s = page.clock()
        now_minute, now_ms = int(now_s // 60), int(now_s * 1000)
        keys = _keys(destination)
        per_minute = page.counters.read(
            page.client, keys, destination.settings.shards,
            series.hours_for(now_minute, range_), now_minute // 60,
        )  # fmt: skip
        buckets = series.buckets(per_minute, now_minute, range_)
        totals = series.total(buckets)
        page.render(
            req, resp, "overview.html", tab="overview", destination=destination, range=range_,
            ranges=series.RANGES.values(), totals=totals,
            p50=series.quantile_ms(totals, 0.5), p95=series.quantile_ms(totals, 0.95),
            per_request=series.events_per_request(totals),
            skipped=series.skipped_reasons(totals),
            outcomes_svg=charts.with_nonce(_outcomes_chart(range_, buckets), req.context.nonce),
            latency_svg=charts.with_nonce(_latency_chart(range_, buckets), req.context.nonce),
            per_request_svg=charts.with_nonce(
                _per_request_chart(range_, buckets), req.context.nonce
            ),
            now=read_now(page.client, destination, now_s), now_ms=now_ms,
            errors=read_error_groups(page.client, keys, now_ms, ERROR_HOURS),
            error_hours=ERROR_HOURS,
        )  # fmt: skip


def _outcomes_chart(range_: series.Range, buckets: list[series.Bucket]) -> str:
    starts = tuple(b.start_minute for b in buckets)
    rows = tuple(tuple(b.get(m) for b in buckets) for m in series.OUTCOMES)
    return charts.outcomes_chart(range_, starts, rows)


def _rounded(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def _latency_chart(range_: series.Range, buckets: list[series.Bucket]) -> str:
    return charts.latency_chart(
        range_,
        tuple(b.start_minute for b in buckets),
        tuple(_rounded(series.quantile_ms(b.counts, 0.5)) for b in buckets),
        tuple(_rounded(series.quantile_ms(b.counts, 0.95)) for b in buckets),
    )


def _per_request_chart(range_: series.Range, buckets: list[series.Bucket]) -> str:
    return charts.per_request_chart(
        range_,
        tuple(b.start_minute for b in buckets),
        tuple(_rounded(series.events_per_request(b.counts)) for b in buckets),
    )


def _filter_of(req: falcon.Request) -> tuple[DeadLetterFilter, dict[str, str], list[str]]:
    """The filter the query asks for, the query as given (to fill the form), and problems."""
    given = {
        field: (req.get_param(field) or "").strip()
        for field in ("status", "action", "older_than", "newer_than", "message_id")
    }
    problems: list[str] = []
    ages: dict[str, float | None] = {}
    for field in ("older_than", "newer_than"):
        try:
            ages[field] = read_age(given[field])
        except ValueError as ex:
            problems.append(f"{field.replace('_', ' ')}: {ex}")
            ages[field] = None
    status: int | None = None
    if given["status"]:
        if given["status"].isdigit():
            status = int(given["status"])
        else:
            problems.append(f"status: {given['status']!r} is not an HTTP status")
    flt = DeadLetterFilter(
        status=status,
        action=given["action"] or None,
        older_than_s=ages["older_than"],
        newer_than_s=ages["newer_than"],
        message_id=given["message_id"] or None,
    )
    return flt, given, problems


class DeadLetters:
    """Browse and filter the dead letters, newest first, a page at a time."""

    def __init__(self, page: Page) -> None:
        self._page = page

    def on_get(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        page = self._page
        destination = page.destination(req, name)
        flt, given, problems = _filter_of(req)
        queue = DeadLetterQueue(page.client, _keys(destination), destination.settings.shards)
        now_ms = int(page.clock() * 1000)
        cursor = req.get_param("after") or None
        try:
            found = queue.newest(
                flt, now_ms, cursor=cursor, limit=DEAD_LETTERS_PER_PAGE,
                max_scanned=DEAD_LETTERS_SCANNED,
            )  # fmt: skip
        except ValueError as ex:
            raise falcon.HTTPBadRequest(title="bad cursor", description=str(ex)) from ex
        query = {k: v for k, v in given.items() if v}
        page.render(
            req, resp, "dead_letters.html", tab="dead-letters", destination=destination,
            letters=found.letters, next_cursor=found.next_cursor, scanned=found.scanned,
            total=queue.count(), given=given, query=query, problems=problems, now_ms=now_ms,
            after=cursor, max_ids=MAX_IDS_PER_ACTION,
        )  # fmt: skip


def _request_view(destination: Destination, letter: DeadLetter) -> dict[str, Any] | None:
    """The request a dead letter holds as it went out, the key masked."""
    if letter.request is None:
        return None
    http = Endpoint.of(destination.settings).request(letter.path, letter.request.get("body") or {})
    return {"method": http.method, "url": http.url, "headers": http.headers, "json": http.json}


class DeadLetterOne:
    def __init__(self, page: Page) -> None:
        self._page = page

    def on_get(
        self, req: falcon.Request, resp: falcon.Response, name: str, shard: int, entry: str
    ) -> None:
        page = self._page
        destination = page.destination(req, name)
        queue = DeadLetterQueue(page.client, _keys(destination), destination.settings.shards)
        letter = queue.get(f"{shard}/{entry}")
        if letter is None:
            raise falcon.HTTPNotFound(
                title="no such dead letter",
                description=f"{shard}/{entry}: replayed, purged, or never there",
            )
        page.render(
            req, resp, "dead_letter.html", tab="dead-letters", destination=destination,
            letter=letter, request=_request_view(destination, letter),
            now_ms=int(page.clock() * 1000),
        )  # fmt: skip


class DeadLetterAction:
    """POST {"ids": [...]}: replay or purge those entries, as `pushwoosh-fleet dlq` does."""

    def __init__(self, page: Page, action: str) -> None:
        self._page = page
        self._action = action

    def on_post(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        page = self._page
        destination = page.destination(req, name)
        body = req.get_media(default_when_empty={})
        ids = body.get("ids") if isinstance(body, dict) else None
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise falcon.HTTPBadRequest(title="bad request", description='send {"ids": [...]}')
        if len(ids) > MAX_IDS_PER_ACTION:
            raise falcon.HTTPBadRequest(
                title="too many ids", description=f"at most {MAX_IDS_PER_ACTION} per request"
            )
        queue = DeadLetterQueue(page.client, _keys(destination), destination.settings.shards)
        letters = [letter for letter in map(queue.get, ids) if letter is not None]
        if self._action == "replay":
            now_ms = int(page.clock() * 1000)
            done = sum(queue.replay(letter, now_ms) for letter in letters)
        else:
            done = queue.purge(letters)
        resp.media = {"action": self._action, "asked": len(ids), "done": done,
                      "not_found": len(ids) - done}  # fmt: skip


class Trace:
    """A messageId's history, as `pushwoosh-fleet trace` prints it."""

    def __init__(self, page: Page) -> None:
        self._page = page

    def on_get(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        page = self._page
        destination = page.destination(req, name)
        message_id = (req.get_param("message_id") or "").strip()
        settings = destination.settings
        records: list[dict[str, Any]] = []
        if message_id and settings.trace_window_s > 0:
            records = lookup(page.client, settings, message_id, page.clock())
        page.render(
            req, resp, "trace.html", tab="trace", destination=destination,
            message_id=message_id, records=records, lines=[describe(r) for r in records],
            window_h=settings.trace_window_s / 3600,
        )  # fmt: skip


class TestMapping:
    """Paste events, see the Pushwoosh requests they would make, as `pushwoosh-fleet preview`."""

    def __init__(self, page: Page) -> None:
        self._page = page

    def on_get(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        destination = self._page.destination(req, name)
        self._show(req, resp, destination, "", None, None)

    def on_post(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        destination = self._page.destination(req, name)
        form = req.get_media(default_when_empty={})
        text = str(form.get("events") or "") if isinstance(form, dict) else ""
        if len(text) > MAX_TEST_INPUT_CHARS:
            problem = f"at most {MAX_TEST_INPUT_CHARS // 1024} KB of events at a time"
            self._show(req, resp, destination, text[:MAX_TEST_INPUT_CHARS], None, problem)
            return
        try:
            events = read_events(text)
        except PreviewInputError as ex:
            self._show(req, resp, destination, text, None, str(ex))
            return
        if len(events) > MAX_TEST_EVENTS:
            self._show(req, resp, destination, text, None,
                       f"at most {MAX_TEST_EVENTS} events at a time")  # fmt: skip
            return
        result = preview(events, destination.mappings, destination.settings)
        self._show(req, resp, destination, text, result, None if events else "no events given")

    def _show(
        self, req: falcon.Request, resp: falcon.Response, destination: Destination, text: str,
        result: dict[str, Any] | None, problem: str | None,
    ) -> None:  # fmt: skip
        self._page.render(
            req, resp, "test_mapping.html", tab="test-mapping", destination=destination,
            text=text, result=result, problem=problem,
            mappings=list(destination.mappings),
        )  # fmt: skip
