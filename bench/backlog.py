"""Filling a large backlog straight into Redis, for when ingest over HTTP would take too long.

It runs ingest's own publish script (`store/lua/publish.lua`: backlog check, dedupe marker
`SET NX EX`, `XADD` of the stored JSON), 1,000 events per call, so Redis holds exactly what ingest
would have stored: the same stream entries and the same dedupe keys. Only HTTP, auth and the
per-event validation are skipped.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import redis

from bench.events import USERS, batch_body, stored_event_json
from config.redis_keys import RedisKeys, shard_for
from config.settings import Settings
from ingest.events import format_timestamp, parse_v1
from store import scripts

CHUNK = 1000


def check_stored_format(tag: str) -> None:
    """The template must decode to what ingest's parser makes of the same message."""
    received = datetime.now(UTC)
    parsed = parse_v1(None, json.loads(batch_body(tag, 7, 1)), received, lambda: str(uuid.uuid4()))
    ours = json.loads(stored_event_json(tag, 7, format_timestamp(received)))
    if ours != parsed[0]:
        raise AssertionError(f"stored-event template drifted from ingest:\n{ours}\n{parsed[0]}")


def fill_direct(client: redis.Redis, settings: Settings, tag: str, count: int) -> None:
    check_stored_format(tag)
    keys = RedisKeys(settings.redis_key_prefix, "default")
    streams = [keys.stream(shard) for shard in range(settings.shards)]
    script = scripts.script(client, "publish")
    received_at = format_timestamp(datetime.now(UTC))
    # The bench's own cap: a 1M backlog is the point here, not ingest's back-pressure.
    max_queued = max(settings.ingest_max_queued_events, 2 * count)
    for start in range(0, count, CHUNK):
        seqs = range(start, min(count, start + CHUNK))
        key_list = list(streams)
        args: list[object] = [len(streams), max_queued, settings.dedupe_window_s, "v1/batch"]
        for seq in seqs:
            key_list.append(keys.seen(f"{tag}-{seq}"))
            args += [shard_for(f"user-{seq % USERS}", len(streams)) + 1,
                     stored_event_json(tag, seq, received_at)]  # fmt: skip
        written, _ = script(keys=key_list, args=args)
        if int(written) != len(seqs):
            raise RuntimeError(f"backlog fill: script stored {written} of {len(seqs)} events")
