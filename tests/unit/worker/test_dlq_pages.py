"""Browsing dead letters a page at a time, newest first across shards: every entry once, in
order, and never more read than the page's bound."""

from __future__ import annotations

import fakeredis
import pytest

from config.redis_keys import RedisKeys
from worker.dlq import DeadLetter, DeadLetterFilter, DeadLetterQueue, _older_than

KEYS = RedisKeys("pwf", "default")
NOW_MS = 1_714_565_100_000


def _letter(i: int, status: int = 400, action: str = "trackEvent") -> DeadLetter:
    return DeadLetter(
        kind="failed", mapping="M", action=action, path="post-events", status=status,
        reason="HTTP 400", reply="", attempts=1, first_attempt_ms=NOW_MS - 1000,
        last_attempt_ms=NOW_MS - 1000 + i, message_ids=[f"m-{i}"], destination="default",
    )  # fmt: skip


def _queue(entries: dict[int, list[tuple[str, DeadLetter]]]) -> DeadLetterQueue:
    client = fakeredis.FakeRedis(decode_responses=True)
    for shard, rows in entries.items():
        for entry_id, letter in rows:
            client.xadd(KEYS.shard(shard).dlq, {"d": letter.to_json()}, id=entry_id)
    return DeadLetterQueue(client, KEYS, shards=max(entries) + 1)


@pytest.mark.parametrize(
    ("shard", "cursor", "bound"),
    [
        (0, None, "+"),
        (0, "1/100-0", "100-0"),  # a lower shard: the same id still comes after the cursor
        (1, "1/100-0", "(100-0"),
        (2, "1/100-0", "(100-0"),
    ],
)
def test_the_bound_each_shard_is_read_below(shard, cursor, bound) -> None:
    assert _older_than(shard, cursor) == bound


def test_pages_go_newest_first_across_shards_and_miss_nothing() -> None:
    # Given entries in three shards, some sharing an id
    entries = {
        0: [("100-0", _letter(1)), ("300-0", _letter(3)), ("500-0", _letter(5))],
        1: [("100-0", _letter(2)), ("300-1", _letter(4)), ("600-0", _letter(6))],
        2: [("300-0", _letter(7))],
    }
    queue = _queue(entries)
    # When every page of two is read
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        page = queue.newest(DeadLetterFilter(), NOW_MS, cursor=cursor, limit=2)
        seen += [letter.id for letter in page.letters]
        cursor = page.next_cursor
        if cursor is None:
            break
    # Then each entry came once, by (entry id, shard), newest first
    assert seen == ["1/600-0", "0/500-0", "1/300-1", "2/300-0", "0/300-0", "1/100-0", "0/100-0"]


def test_a_filter_keeps_its_matches_and_the_scan_stays_bounded() -> None:
    rows = [(f"{1000 + i}-0", _letter(i, status=400 if i % 10 else 503)) for i in range(100)]
    queue = _queue({0: rows})
    page = queue.newest(DeadLetterFilter(status=503), NOW_MS, limit=50, max_scanned=30)
    assert page.scanned == 30  # however many entries there are
    assert [letter.status for letter in page.letters] == [503] * 3
    assert page.next_cursor == "0/1070-0"
    rest = queue.newest(DeadLetterFilter(status=503), NOW_MS, cursor=page.next_cursor, limit=50)
    assert len(rest.letters) == 7 and rest.next_cursor is None


def test_a_message_id_finds_its_entry() -> None:
    queue = _queue({0: [(f"{1000 + i}-0", _letter(i)) for i in range(20)]})
    page = queue.newest(DeadLetterFilter(message_id="m-7"), NOW_MS)
    assert [letter.message_ids for letter in page.letters] == [["m-7"]]


def test_a_bad_cursor_is_refused() -> None:
    queue = _queue({0: [("1-0", _letter(1))]})
    with pytest.raises(ValueError, match="not a dead-letter id"):
        queue.newest(DeadLetterFilter(), NOW_MS, cursor="nonsense")
