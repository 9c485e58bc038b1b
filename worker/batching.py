"""Packing calls into HTTP requests, and halving a batch that Pushwoosh refused.

Pure. A batch is only ever a list of singly-mapped elements (`Call.body`), so a batched event and a
single one are byte-for-byte the same element.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Final

from config import fastjson
from worker.mapping import POST_EVENTS_PATH, Call

# 100 per request: Pushwoosh's limit for post-events.
MAX_EVENTS_PER_REQUEST: Final = 100


@dataclasses.dataclass(frozen=True)
class PlannedRequest:
    """One HTTP request to make, still without credentials."""

    path: str
    body: dict[str, Any]  # post-events: {"events": [E, ...]}
    message_ids: tuple[str, ...]  # one per element (post-events) or the one event
    mapping: str
    action: str
    # Each call's body as its `Call.encoded` bytes (post-events: one per element), when the
    # request was packed from calls in this process; None for one read back from a retry record.
    parts: tuple[bytes, ...] | None = dataclasses.field(default=None, compare=False, repr=False)

    def encoded(self) -> bytes:
        """The body as sent: the calls' own encodings joined, so no event is encoded twice.
        For ordinary data these are the bytes of encoding `body` whole; either way each element
        is byte for byte what it would be alone."""
        if self.parts is None:
            return fastjson.dumps(self.body)
        if self.path == POST_EVENTS_PATH:
            return b'{"events":[' + b",".join(self.parts) + b"]}"
        return self.parts[0]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe form, for retry records; `from_dict` reads it back."""
        return {
            "path": self.path,
            "body": self.body,
            "message_ids": list(self.message_ids),
            "mapping": self.mapping,
            "action": self.action,
        }

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> PlannedRequest:
        body = data["body"]
        message_ids = data["message_ids"]
        if not isinstance(body, dict) or not isinstance(message_ids, list):
            raise ValueError("a planned request needs an object body and a list of message ids")
        return PlannedRequest(
            path=str(data["path"]),
            body=body,
            message_ids=tuple(str(message_id) for message_id in message_ids),
            mapping=str(data["mapping"]),
            action=str(data["action"]),
        )


def pack(calls: Sequence[Call]) -> PlannedRequest:
    """One request for calls that go together: any single call, or post-events calls of one
    mapping (at most MAX_EVENTS_PER_REQUEST), as {"events": [each call's element]}."""
    first = calls[0]
    if first.path != POST_EVENTS_PATH:
        if len(calls) != 1:
            raise ValueError(f"only post-events calls can share a request, not {first.path}")
        return PlannedRequest(
            first.path, first.body, (first.message_id,), first.mapping, first.action,
            (first.encoded(),),
        )  # fmt: skip
    if len(calls) > MAX_EVENTS_PER_REQUEST:
        raise ValueError(f"at most {MAX_EVENTS_PER_REQUEST} events per request, got {len(calls)}")
    if any(call.mapping != first.mapping or call.path != first.path for call in calls):
        raise ValueError("a batch never mixes mappings")
    return PlannedRequest(
        path=POST_EVENTS_PATH,
        body={"events": [call.body for call in calls]},
        message_ids=tuple(call.message_id for call in calls),
        mapping=first.mapping,
        action=first.action,
        parts=tuple([call.encoded() for call in calls]),
    )


def plan_requests(
    calls: Sequence[Call], max_events: int = MAX_EVENTS_PER_REQUEST
) -> list[PlannedRequest]:
    """Requests for `calls`, ordered by each request's first call.

    Batchable post-events calls are packed per mapping, in arrival order, at most `max_events`
    to a request; every other call is a request of its own.
    """
    check_max_events(max_events)
    # Each group is created when its first call arrives, so creation order is output order.
    groups: list[list[Call]] = []
    open_batch: dict[str, list[Call]] = {}
    for call in calls:
        if call.batchable and call.path == POST_EVENTS_PATH:
            batch = open_batch.get(call.mapping)
            if batch is None or len(batch) >= max_events:
                batch = open_batch[call.mapping] = []
                groups.append(batch)
            batch.append(call)
        else:
            groups.append([call])
    return [pack(group) for group in groups]


def check_max_events(max_events: int) -> None:
    if not 1 <= max_events <= MAX_EVENTS_PER_REQUEST:
        raise ValueError(f"max_events must be 1..{MAX_EVENTS_PER_REQUEST}, got {max_events}")


def split_request(request: PlannedRequest) -> tuple[PlannedRequest, PlannedRequest]:
    """Halve a multi-event post-events request, to find the event Pushwoosh refuses."""
    events = request.body.get("events") if request.path == POST_EVENTS_PATH else None
    if not isinstance(events, list) or len(events) < 2:
        raise ValueError("only a post-events request with two or more events can be split")
    if len(events) != len(request.message_ids):
        raise ValueError("a post-events request needs one message id per event")
    middle = len(events) // 2

    def half(part: slice) -> PlannedRequest:
        return dataclasses.replace(
            request,
            body={**request.body, "events": events[part]},
            message_ids=request.message_ids[part],
            parts=None if request.parts is None else request.parts[part],
        )

    return half(slice(None, middle)), half(slice(middle, None))


def select_request(request: PlannedRequest, indexes: Sequence[int]) -> PlannedRequest:
    """The request with only the calls at `indexes` (in their order); for a batch, its events."""
    if request.path != POST_EVENTS_PATH:
        if list(indexes) != [0]:
            raise ValueError("a single-call request can only be taken whole")
        return request
    events = request.body["events"]
    return dataclasses.replace(
        request,
        body={**request.body, "events": [events[i] for i in indexes]},
        message_ids=tuple(request.message_ids[i] for i in indexes),
        parts=None if request.parts is None else tuple(request.parts[i] for i in indexes),
    )
