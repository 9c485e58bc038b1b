"""An export for `pushwoosh-fleet replay`: numbered track events, written one JSON a line."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def track(i: int) -> dict[str, Any]:
    return {
        "type": "track",
        "messageId": f"replay-{i}",
        "event": "Item Viewed",
        "userId": f"user-{i % 13}",
        "properties": {"i": i},
    }


def write_ndjson(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
