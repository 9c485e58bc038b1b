"""Duplicate detection by fingerprint: per sender, per shard, in bounded integer sets. Pure.

Senders retry, so the same `messageId` can arrive twice; Segment drops a repeat seen within
about a day. A repeat is recognised by a 64-bit fingerprint of (who sent it, messageId): a
sender's ids never suppress another sender's events, even when both use the same ids (order
numbers are guessable). Fingerprints live in Redis sets of integers, which Redis stores as a
packed sorted array (an intset: 8 bytes a member, looked up by binary search) while a set holds
at most 512 members; the publish script (store/lua/publish.lua) keeps each set near
BUCKET_TARGET members by spreading a generation's fingerprints over as many buckets as its
traffic needs.

Time is cut in generations of a quarter of DEDUPE_WINDOW_S (by Redis' clock); a lookup checks
the current generation and the four before it, so a repeat is dropped for at least the window
and at most a quarter more. A generation's sets expire once no lookup can reach them.

Two different messageIds share a fingerprint with a chance of about one in 10^19 per pair: over
a day of a billion events, a wrongly dropped event is about a 1-in-10^10 chance.
"""

from __future__ import annotations

import hashlib
from typing import Final

# Generations a lookup checks: the current one and the four before (a window is four).
GENERATIONS_PER_WINDOW: Final = 4
# Members a bucket aims at: half of Redis' set-max-intset-entries (512), so the sets stay
# packed even when one bucket gets more than its share.
BUCKET_TARGET: Final = 256
MIN_BUCKETS: Final = 1024
MAX_BUCKETS: Final = 1 << 22


def generation_s(window_s: int) -> int:
    """How long one generation lasts."""
    return max(1, window_s // GENERATIONS_PER_WINDOW)


def fingerprint(scope: str, message_id: str) -> int:
    """A signed 64-bit fingerprint of (sender, messageId), as Redis stores set integers."""
    digest = hashlib.blake2b(
        scope.encode("utf-8", "surrogatepass")
        + b"\0"
        + message_id.encode("utf-8", "surrogatepass"),
        digest_size=8,
    ).digest()
    return int.from_bytes(digest, "big", signed=True)


def bucket_hash(fp: int) -> int:
    """The part of a fingerprint that picks its bucket (the script takes it modulo the count)."""
    return (fp >> 32) & 0x7FFFFFFF
