"""What one drain task did, for its log line and the task's result."""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass
class DrainReport:
    shard: int
    entries: int = 0
    requests: int = 0
    delivered: int = 0
    parked: int = 0
    dead_lettered: int = 0
    rejected: int = 0
    skipped: int = 0
    unmatched: int = 0
    not_started: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v not in (None, 0)} | {
            "shard": self.shard
        }
