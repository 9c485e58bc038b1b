"""The dead-letter queue: a Redis Stream of calls that will not be sent again on their own.

Each entry keeps what is needed to understand and replay it: the request (or, for an event that
failed mapping, the event itself), mapping, action, HTTP status, Pushwoosh's reply (truncated),
attempts, first and last attempt times, and a short reason code. The three ways something ends
here each have one constructor below. Replaying moves an entry back (to the retry schedule, or
to its stream to be mapped again) in one script, so a second replay finds nothing to send.
"""

from __future__ import annotations

import dataclasses
import heapq
import json
import uuid
from collections.abc import Iterator
from typing import Any, Final

import redis

from config.redis_keys import RedisKeys
from store import scripts
from worker.batcher import Outgoing
from worker.batching import PlannedRequest
from worker.holds import encode
from worker.mapping import Rejection
from worker.retries import RetryRecord

MAX_REPLY_CHARS: Final = 2000
MAX_RAW_CHARS: Final = 200


@dataclasses.dataclass(frozen=True)
class DeadLetter:
    kind: str  # "failed" (Pushwoosh refused or retries ran out) or "rejected" (mapping failed)
    mapping: str
    action: str
    path: str
    status: int | None
    reason: str
    reply: str
    attempts: int
    first_attempt_ms: int
    last_attempt_ms: int
    message_ids: list[str]
    destination: str
    request: dict[str, Any] | None = None
    event: dict[str, Any] | None = None
    code: str = ""  # a short, bounded reason label (http_400, mapping_rejected, ...)
    id: str = ""  # the stream entry id once stored

    def to_json(self) -> str:
        data = dataclasses.asdict(self)
        data.pop("id")
        data["reply"] = data["reply"][:MAX_REPLY_CHARS]
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_entry(cls, entry_id: str, payload: str) -> DeadLetter:
        data = json.loads(payload)
        return cls(id=entry_id, **data)


def failed_request(
    out: Outgoing,
    *,
    code: str,
    reason: str,
    status: int | None,
    reply: str,
    attempts: int,
    now_ms: int,
    destination: str,
) -> DeadLetter:
    """A request Pushwoosh refused, or whose retries ran out."""
    return DeadLetter(
        kind="failed",
        mapping=out.request.mapping,
        action=out.request.action,
        path=out.request.path,
        status=status,
        reason=reason,
        reply=reply,
        attempts=attempts,
        first_attempt_ms=out.first_accepted_ms,
        last_attempt_ms=now_ms,
        message_ids=list(out.request.message_ids),
        destination=destination,
        request=out.request.to_dict(),
        code=code,
    )


def rejected_event(
    event: dict[str, Any], rejection: Rejection, *, accepted_ms: int, now_ms: int, destination: str
) -> DeadLetter:
    """An event a mapping could not turn into a call; the event is kept, to replay later."""
    return DeadLetter(
        kind="rejected",
        mapping=rejection.mapping,
        action=rejection.action,
        path="",
        status=None,
        reason=rejection.reason,
        reply="",
        attempts=0,
        first_attempt_ms=accepted_ms,
        last_attempt_ms=now_ms,
        message_ids=[rejection.message_id],
        destination=destination,
        event=event,
        code=rejection.code,
    )


def unreadable_entry(raw: str, *, accepted_ms: int, now_ms: int, destination: str) -> DeadLetter:
    """A stream entry that is not a JSON object (written by something other than ingest)."""
    return DeadLetter(
        kind="rejected",
        mapping="",
        action="",
        path="",
        status=None,
        reason="stored event is not a JSON object",
        reply=raw[:MAX_RAW_CHARS],
        attempts=0,
        first_attempt_ms=accepted_ms,
        last_attempt_ms=now_ms,
        message_ids=[],
        destination=destination,
        code="unreadable_event",
    )


def reason_code(letter: DeadLetter) -> str:
    """A short, bounded label for why something was dead-lettered (the full reason is in the
    entry and the trace); entries written before codes existed get one from their fields."""
    if letter.code:
        return letter.code
    if letter.kind == "rejected":
        return "mapping_rejected" if letter.mapping or letter.action else "unreadable_event"
    if letter.reason.startswith("gave up"):
        return "retries_exhausted"
    if letter.status in (401, 403):
        return "auth_failed"
    if letter.status is not None:
        return f"http_{letter.status}"
    return "failed"


@dataclasses.dataclass(frozen=True)
class DeadLetterFilter:
    status: int | None = None
    action: str | None = None
    older_than_s: float | None = None
    newer_than_s: float | None = None
    message_id: str | None = None

    def matches(self, letter: DeadLetter, now_ms: int) -> bool:
        age_s = (now_ms - letter.last_attempt_ms) / 1000
        return (
            (self.status is None or letter.status == self.status)
            and (self.action is None or letter.action == self.action)
            and (self.older_than_s is None or age_s >= self.older_than_s)
            and (self.newer_than_s is None or age_s <= self.newer_than_s)
            and (self.message_id is None or self.message_id in letter.message_ids)
        )


def letter_id(shard: int, entry_id: str) -> str:
    """A dead letter's id across the destination: its shard and its entry in that shard."""
    return f"{shard}/{entry_id}"


def _split_id(letter_id: str) -> tuple[int, str]:
    shard, _, entry_id = letter_id.partition("/")
    if not entry_id or not shard.isdigit():
        raise ValueError(f"not a dead-letter id: {letter_id!r} (they look like 0/1714565100000-0)")
    return int(shard), entry_id


def _stream_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


@dataclasses.dataclass(frozen=True)
class DeadLetterPage:
    """One page of dead letters, newest first; `next_cursor` continues with older ones (None:
    nothing older was left to read)."""

    letters: list[DeadLetter]
    next_cursor: str | None
    scanned: int


def _older_than(shard: int, cursor: str | None) -> str:
    """XREVRANGE's upper bound in `shard` for entries after `cursor` (a dead-letter id) in the
    newest-first order by (entry id, shard): the same id in a lower shard still comes after."""
    if cursor is None:
        return "+"
    cursor_shard, entry_id = _split_id(cursor)
    return entry_id if shard < cursor_shard else "(" + entry_id


class DeadLetterQueue:
    """The dead letters of one destination, kept per shard (with the shard's other keys)."""

    def __init__(self, client: redis.Redis, keys: RedisKeys, shards: int) -> None:
        self._client = client
        self._keys = keys
        self._shards = shards
        self._replay_script = scripts.script(client, "dlq_replay")

    def count(self) -> int:
        pipe = self._client.pipeline(transaction=False)
        for shard in range(self._shards):
            pipe.xlen(self._keys.shard(shard).dlq)
        return sum(int(n) for n in pipe.execute())

    def _shard_letters(self, shard: int, page: int) -> Iterator[tuple[tuple[int, int], DeadLetter]]:
        start = "-"
        key = self._keys.shard(shard).dlq
        while True:
            entries = self._client.xrange(key, min=start, count=page)
            for entry_id, fields in entries:
                letter = DeadLetter.from_entry(letter_id(shard, entry_id), fields["d"])
                yield _stream_key(entry_id), letter
            if len(entries) < page:
                return
            start = "(" + entries[-1][0]

    def iter(self, flt: DeadLetterFilter, now_ms: int, page: int = 500) -> Iterator[DeadLetter]:
        """Every dead letter the filter takes, oldest first across the shards."""
        merged = heapq.merge(
            *(self._shard_letters(shard, page) for shard in range(self._shards)),
            key=lambda item: item[0],
        )
        for _, letter in merged:
            if flt.matches(letter, now_ms):
                yield letter

    def _shard_letters_newest(
        self, shard: int, cursor: str | None, chunk: int
    ) -> Iterator[tuple[tuple[int, int, int], DeadLetter]]:
        key = self._keys.shard(shard).dlq
        upper = _older_than(shard, cursor)
        while True:
            entries = self._client.xrevrange(key, max=upper, min="-", count=chunk)
            for entry_id, fields in entries:
                letter = DeadLetter.from_entry(letter_id(shard, entry_id), fields["d"])
                yield (*_stream_key(entry_id), shard), letter
            if len(entries) < chunk:
                return
            upper = "(" + entries[-1][0]

    def newest(
        self,
        flt: DeadLetterFilter,
        now_ms: int,
        *,
        cursor: str | None = None,
        limit: int = 50,
        max_scanned: int = 1000,
    ) -> DeadLetterPage:
        """Up to `limit` dead letters the filter takes, newest first, after `cursor`; reads at
        most about `max_scanned` entries (plus one chunk per shard), however many there are."""
        merged = heapq.merge(
            *(self._shard_letters_newest(s, cursor, limit) for s in range(self._shards)),
            key=lambda item: item[0],
            reverse=True,
        )
        letters: list[DeadLetter] = []
        scanned = 0
        for _, letter in merged:
            scanned += 1
            if flt.matches(letter, now_ms):
                letters.append(letter)
            if len(letters) >= limit or scanned >= max_scanned:
                return DeadLetterPage(letters, letter.id, scanned)
        return DeadLetterPage(letters, None, scanned)

    def get(self, dead_letter_id: str) -> DeadLetter | None:
        try:
            shard, entry_id = _split_id(dead_letter_id)
        except ValueError:
            return None
        if shard >= self._shards:
            return None
        key = self._keys.shard(shard).dlq
        entries = self._client.xrange(key, min=entry_id, max=entry_id)
        if not entries:
            return None
        return DeadLetter.from_entry(letter_id(shard, entries[0][0]), entries[0][1]["d"])

    def purge(self, letters: list[DeadLetter]) -> int:
        purged = 0
        for letter in letters:
            shard, entry_id = _split_id(letter.id)
            purged += int(self._client.xdel(self._keys.shard(shard).dlq, entry_id))
        return purged

    def replay(self, letter: DeadLetter, now_ms: int) -> bool:
        """Move one entry back for delivery; False when it was already replayed or purged.

        A failed request goes back on its shard's retry schedule, due now; a rejected event goes
        back on its shard's stream, to be mapped again with the current mappings.
        """
        shard, entry_id = _split_id(letter.id)
        keys = self._keys.shard(shard)
        holds = ""
        if letter.request is not None:
            retry_id = uuid.uuid4().hex
            request = PlannedRequest.from_dict(letter.request)
            record = RetryRecord(
                id=retry_id,
                request=request,
                accepted_ms=(now_ms,) * len(request.message_ids),
                attempts=0,
                order=f"{now_ms:015d}-9999999999",
                replayed_from=letter.id,
            )
            mode, payload, holds = "request", record.to_json(), encode(record.order, record.pairs)
        else:
            mode, retry_id = "event", ""
            payload = json.dumps(letter.event or {}, separators=(",", ":"), ensure_ascii=False)
        moved = self._replay_script(
            keys=[keys.dlq, keys.retry_data, keys.retry, keys.holds, keys.stream],
            args=[entry_id, mode, retry_id, payload, now_ms, holds],
        )
        return bool(moved)
