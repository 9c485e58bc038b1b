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
from config.redis_keys import shard_for
from config.settings import Settings
from ingest.events import format_timestamp, parse_v1
from ingest.publish import Publisher

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
    publisher = Publisher(client, settings, "default")
    received_at = format_timestamp(datetime.now(UTC))
    # The bench's own cap: a 1M backlog is the point here, not ingest's back-pressure.
    max_queued = max(settings.ingest_max_queued_events, 2 * count)
    for start in range(0, count, CHUNK):
        seqs = range(start, min(count, start + CHUNK))
        items = [
            (
                shard_for(f"user-{seq % USERS}", settings.shards),
                f"{tag}-{seq}",
                stored_event_json(tag, seq, received_at),
            )
            for seq in seqs
        ]
        written = publisher.publish_encoded(items, "v1/batch", "bench", max_queued).accepted
        if written != len(seqs):
            raise RuntimeError(f"backlog fill: script stored {written} of {len(seqs)} events")
