"""Calls waiting to go out: packed into requests as they become due. Pure; time is handed in.

A batchable call (post-events with batching on) waits in its mapping's buffer until the buffer
holds a full request or its oldest call waited the flush delay; any other call is a request of
its own at once. Each request remembers the stream entries it came from, so delivery can settle
exactly those.
"""

from __future__ import annotations

import dataclasses

from worker.batching import (
    PlannedRequest,
    check_max_events,
    pack,
    select_request,
    split_request,
)
from worker.mapping import Call
from worker.order import entry_order


@dataclasses.dataclass(frozen=True)
class Outgoing:
    """A request to send, with the stream entries it settles and what its attempts were."""

    request: PlannedRequest
    entry_ids: tuple[str, ...]  # stream entries it settles (none for a retry)
    accepted_ms: tuple[int, ...]  # when each of its events was accepted by ingest
    attempts: int = 0
    retry_id: str | None = None  # its record on the retry schedule, once parked
    order: str = ""  # where its oldest event stands in its stream (holds.entry_order)

    @property
    def size(self) -> int:
        return len(self.request.message_ids)

    @property
    def first_accepted_ms(self) -> int:
        return min(self.accepted_ms)

    def split(self) -> tuple[Outgoing, Outgoing]:
        """The two halves of a batch, each settling its own entries; neither is a retry."""
        left, right = split_request(self.request)
        cut = len(left.message_ids)
        halves = (
            (left, slice(None, cut)),
            (right, slice(cut, None)),
        )
        return tuple(  # type: ignore[return-value]
            dataclasses.replace(
                self,
                request=request,
                entry_ids=self.entry_ids[part],
                accepted_ms=self.accepted_ms[part],
                retry_id=None,
                order=entry_order(self.entry_ids[part][0]) if self.entry_ids[part] else self.order,
            )
            for request, part in halves
        )

    def take(self, indexes: list[int]) -> Outgoing:
        """The part of a fresh (not yet parked) request made of the calls at `indexes`."""
        entry_ids = tuple(self.entry_ids[i] for i in indexes)
        return dataclasses.replace(
            self,
            request=select_request(self.request, indexes),
            entry_ids=entry_ids,
            accepted_ms=tuple(self.accepted_ms[i] for i in indexes),
            order=entry_order(entry_ids[0]),
        )


_Item = tuple[Call, str, int]  # the call, its stream entry, when that entry was accepted


def _outgoing(items: list[_Item]) -> Outgoing:
    return Outgoing(
        request=pack([call for call, _, _ in items]),
        entry_ids=tuple(entry_id for _, entry_id, _ in items),
        accepted_ms=tuple(accepted for _, _, accepted in items),
        order=entry_order(items[0][1]),
    )


class Batcher:
    def __init__(self, max_events: int, flush_delay_ms: int) -> None:
        check_max_events(max_events)
        self._max_events = max_events
        self._flush_delay_ms = flush_delay_ms
        self._buffers: dict[str, list[_Item]] = {}  # per mapping, oldest first

    def __len__(self) -> int:
        return sum(len(buffer) for buffer in self._buffers.values())

    def add(self, call: Call, entry_id: str, accepted_ms: int) -> list[Outgoing]:
        """Take one call; return what must go now (it alone, or a buffer it filled)."""
        if not call.batchable:
            return [_outgoing([(call, entry_id, accepted_ms)])]
        buffer = self._buffers.setdefault(call.mapping, [])
        buffer.append((call, entry_id, accepted_ms))
        if len(buffer) < self._max_events:
            return []
        del self._buffers[call.mapping]
        return [_outgoing(buffer)]

    def due(self, now_ms: int) -> list[Outgoing]:
        """Partial batches whose oldest call waited the flush delay."""
        aged = [
            mapping
            for mapping, buffer in self._buffers.items()
            if now_ms - buffer[0][2] >= self._flush_delay_ms
        ]
        return [_outgoing(self._buffers.pop(mapping)) for mapping in aged]

    def flush(self) -> list[Outgoing]:
        """Everything buffered, as requests."""
        buffers, self._buffers = self._buffers, {}
        return [_outgoing(buffer) for buffer in buffers.values()]

    def wait_ms(self, now_ms: int) -> int | None:
        """How long until the oldest buffered call is due; None when nothing waits."""
        if not self._buffers:
            return None
        oldest = min(buffer[0][2] for buffer in self._buffers.values())
        return max(0, oldest + self._flush_delay_ms - now_ms)
