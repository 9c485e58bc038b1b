"""Per-user order across retries: a user's later calls wait behind one that is parked.

While a call for user U is on the retry schedule, U's later calls of the same action must not
overtake it: Pushwoosh keeps the last profile update it receives, so v2 arriving after v7 would
win. Each parked request holds the (action, user) pairs it carries; a later call of a held pair
is parked behind it (a follower) instead of being sent, and a parked request is sent only when
it is the oldest, by stream order, of every pair it carries. When the head is delivered or
dead-lettered, the next one goes. Other users' calls keep flowing.

Pure: the drain keeps one `Holds` per shard, loaded from the shard's `holds` hash (retry id ->
encoded order and pairs) and kept in step by its unit of work.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from typing import Any, Final

from worker.batching import PlannedRequest
from worker.mapping import DELETE_USER_PATH, POST_EVENTS_PATH, TRACK_USER_PATH

_SEP: Final = "\x1e"
_PAIR: Final = "\x1f"


def _user_of(element: Mapping[str, Any], key: str) -> str | None:
    user = element.get(key)
    return None if user is None or user == "" else str(user)


def call_pairs(request: PlannedRequest) -> list[str | None]:
    """The (action, user) pair of each call of a request, in order (None: no user)."""
    if request.path == POST_EVENTS_PATH:
        events = request.body.get("events") or []
        users = [_user_of(e, "user_id") if isinstance(e, Mapping) else None for e in events]
    elif request.path == TRACK_USER_PATH:
        users = [_user_of(request.body, "user_id")]
    elif request.path == DELETE_USER_PATH:
        users = [_user_of(request.body, "external_id")]
    else:
        users = [None]
    return [None if u is None else f"{request.action}{_PAIR}{u}" for u in users]


def pairs_of(request: PlannedRequest) -> tuple[str, ...]:
    """The (action, user) pairs a request carries, each once."""
    return tuple(dict.fromkeys(p for p in call_pairs(request) if p is not None))


def encode(order: str, pairs: Iterable[str]) -> str:
    return _SEP.join((order, *pairs))


class Holds:
    def __init__(self) -> None:
        self._queues: dict[str, list[tuple[str, str]]] = {}  # pair -> [(order, retry id)]
        self._records: dict[str, tuple[str, tuple[str, ...]]] = {}  # retry id -> order, pairs
        self._due_ms: dict[str, int] = {}  # retry id -> when it is due

    def __len__(self) -> int:
        return len(self._records)

    def load(self, stored: Mapping[str, str], due_ms: Mapping[str, float]) -> None:
        """Start from the shard's holds hash and its schedule (retry id -> due)."""
        self._queues.clear()
        self._records.clear()
        self._due_ms.clear()
        for retry_id, text in stored.items():
            order, *pairs = text.split(_SEP)
            self.add(retry_id, order, pairs, int(due_ms.get(retry_id, 0)))

    def add(self, retry_id: str, order: str, pairs: Iterable[str], due_ms: int) -> None:
        held = tuple(pairs)
        self._records[retry_id] = (order, held)
        self._due_ms[retry_id] = due_ms
        for each in held:
            bisect.insort(self._queues.setdefault(each, []), (order, retry_id))

    def remove(self, retry_id: str) -> None:
        self._due_ms.pop(retry_id, None)
        order, held = self._records.pop(retry_id, ("", ()))
        for each in held:
            queue = self._queues.get(each, [])
            if (order, retry_id) in queue:
                queue.remove((order, retry_id))
            if not queue:
                self._queues.pop(each, None)

    def is_held(self, each: str | None) -> bool:
        return each is not None and each in self._queues

    def blocked(self, retry_id: str) -> bool:
        """Whether an older parked request holds any pair of this one."""
        _, held = self._records.get(retry_id, ("", ()))
        return any(self._queues[each][0][1] != retry_id for each in held if each in self._queues)

    def set_due(self, retry_id: str, due_ms: int) -> None:
        if retry_id in self._records:
            self._due_ms[retry_id] = due_ms

    def wait_until_ms(self, pairs: Iterable[str], exclude: str | None = None) -> int:
        """When the oldest parked request holding any of these pairs is next due (0: none)."""
        dues = [
            self._due_ms.get(queue[0][1], 0)
            for each in pairs
            if (queue := self._queues.get(each)) and queue[0][1] != exclude
        ]
        return max(dues, default=0)
