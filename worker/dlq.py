"""The dead-letter queue: a Redis Stream of calls that will not be sent again on their own.

Each entry keeps what is needed to understand and replay it: the request (or, for an event that
failed mapping, the event itself), mapping, action, HTTP status, Pushwoosh's reply (truncated),
attempts, first and last attempt times. Replaying moves an entry back to the retry schedule in
one transaction, so a second replay finds nothing to send again.
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import redis

from config.redis_keys import RedisKeys, shard_for

MAX_REPLY_CHARS = 2000

_REPLAY = """
if redis.call('XDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
if ARGV[2] == 'request' then
  redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
  redis.call('ZADD', KEYS[3], ARGV[5], ARGV[3])
else
  redis.call('XADD', KEYS[4], '*', 'e', ARGV[4], 'src', 'replay')
end
return 1
"""


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
    request: dict[str, Any] | None = None
    event: dict[str, Any] | None = None
    destination: str = "default"
    code: str = ""  # a short, bounded reason label (mapping_rejected, mapping_error, ...)
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


def add_to_pipeline(pipe: redis.client.Pipeline, keys: RedisKeys, letter: DeadLetter) -> None:
    pipe.xadd(keys.dlq, {"d": letter.to_json()})
    pipe.hincrby(keys.stats, "dead_lettered", len(letter.message_ids) or 1)


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


class DeadLetterQueue:
    def __init__(self, client: redis.Redis, keys: RedisKeys, shards: int = 1) -> None:
        self._client = client
        self._keys = keys
        self._shards = shards
        self._replay_script = client.register_script(_REPLAY)

    def count(self) -> int:
        return int(self._client.xlen(self._keys.dlq))

    def iter(self, flt: DeadLetterFilter | None = None, page: int = 500) -> Iterator[DeadLetter]:
        flt = flt or DeadLetterFilter()
        now_ms = int(time.time() * 1000)
        start = "-"
        while True:
            entries = self._client.xrange(self._keys.dlq, min=start, count=page)
            for entry_id, fields in entries:
                letter = DeadLetter.from_entry(entry_id, fields["d"])
                if flt.matches(letter, now_ms):
                    yield letter
            if len(entries) < page:
                return
            start = "(" + entries[-1][0]

    def get(self, entry_id: str) -> DeadLetter | None:
        entries = self._client.xrange(self._keys.dlq, min=entry_id, max=entry_id)
        return DeadLetter.from_entry(entries[0][0], entries[0][1]["d"]) if entries else None

    def purge(self, letters: list[DeadLetter]) -> int:
        if not letters:
            return 0
        return int(self._client.xdel(self._keys.dlq, *[letter.id for letter in letters]))

    def replay(self, letter: DeadLetter) -> bool:
        """Move one entry back for delivery; False when it was already replayed or purged.

        A failed request goes back on the retry schedule, due now; a rejected event goes back on
        its stream, to be mapped again with the current mappings. One script does the move, so
        two replays racing each other send it once.
        """
        now_ms = int(time.time() * 1000)
        if letter.request is not None:
            retry_id = uuid.uuid4().hex
            item = {
                "id": retry_id,
                "request": letter.request,
                "entry_times_ms": [now_ms],
                "attempts": 0,
                "first_attempt_ms": now_ms,
                "replayed_from": letter.id,
            }
            mode, payload = "request", json.dumps(item, separators=(",", ":"))
            stream = self._keys.stream(0)
        else:
            event = letter.event or {}
            identity = event.get("userId") or event.get("anonymousId")
            stream = self._keys.stream(shard_for(identity, self._shards))
            mode, retry_id, payload = "event", "", json.dumps(event, separators=(",", ":"))
        moved = self._replay_script(
            keys=[self._keys.dlq, self._keys.retry_data, self._keys.retry, stream],
            args=[letter.id, mode, retry_id, payload, now_ms],
        )
        return bool(moved)
