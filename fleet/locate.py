"""Where the fleet is: the Redis (and ingest) that commands in this directory talk to.

`pushwoosh-fleet run` records its embedded Redis, ingest's URL and its own pid in
`<data dir>/fleet.json` (default `.pushwoosh-fleet/`), and removes the file when it stops.
Every other command run in the same directory uses that Redis when REDIS_URL is unset, and says
on stderr which Redis it talks to and why, so `status` in a second terminal sees the fleet that
`run` started, not an unrelated Redis on 127.0.0.1:6379.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from config.settings import DEFAULT_REDIS_URL, MASK
from worker.heartbeat import pid_alive

DEFAULT_DATA_DIR = ".pushwoosh-fleet"
FLEET_FILE = "fleet.json"


@dataclasses.dataclass(frozen=True)
class RunningFleet:
    """What `run` recorded about itself."""

    redis_url: str
    ingest_url: str
    pid: int
    write_key_file: str | None = None
    metrics: dict[str, str] = dataclasses.field(default_factory=dict)
    broker_url: str | None = None  # CELERY_BROKER_URL, when `run` was given one

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def record(data_dir: Path, fleet: RunningFleet) -> Path:
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / FLEET_FILE
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(fleet.as_dict(), indent=2) + "\n", encoding="utf-8")
    temporary.chmod(0o600)
    os.replace(temporary, path)
    return path


def forget(data_dir: Path, pid: int) -> None:
    """Remove the record, if it is still the one this process wrote."""
    found = recorded(data_dir)
    if found is not None and found.pid == pid:
        with contextlib.suppress(OSError):
            (data_dir / FLEET_FILE).unlink()


def recorded(data_dir: Path) -> RunningFleet | None:
    try:
        data = json.loads((data_dir / FLEET_FILE).read_text(encoding="utf-8"))
        return RunningFleet(
            redis_url=str(data["redis_url"]),
            ingest_url=str(data["ingest_url"]),
            pid=int(data["pid"]),
            write_key_file=data.get("write_key_file"),
            metrics={str(k): str(v) for k, v in (data.get("metrics") or {}).items()},
            broker_url=data.get("broker_url"),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


@dataclasses.dataclass(frozen=True)
class RedisChoice:
    """The Redis a command talks to, and why that one."""

    source: str  # why this Redis: "REDIS_URL", "REDIS_URL_FILE", the fleet file, the default
    fleet: RunningFleet | None = None  # what `run` recorded, when its Redis is the one

    @property
    def url(self) -> str | None:
        """The URL to put in REDIS_URL, when it comes from the fleet file."""
        return self.fleet.redis_url if self.fleet is not None else None

    def describe(self, url: str) -> str:
        return f"Redis {masked(url)} ({self.source})"


def choose_redis(env: Mapping[str, str], data_dir: Path) -> RedisChoice:
    """REDIS_URL (or its _FILE) when set, else what `run` recorded here, else the default."""
    for name in ("REDIS_URL", "REDIS_URL_FILE"):
        if env.get(name):
            return RedisChoice(name)
    fleet = recorded(data_dir)
    if fleet is not None:
        where = data_dir / FLEET_FILE
        gone = "" if pid_alive(fleet.pid) else f"; its pid {fleet.pid} is gone: is it running?"
        return RedisChoice(f"from `pushwoosh-fleet run`, recorded in {where}{gone}", fleet)
    return RedisChoice(f"REDIS_URL is unset: the default {DEFAULT_REDIS_URL}")


def masked(url: str) -> str:
    """A Redis (or broker) URL with its password replaced by ****, each part of a Sentinel list;
    a cluster URL's node list stays as it is."""
    parts = []
    for part in url.split(";"):
        split = urlsplit(part.strip())
        if split.password:
            hosts = split.netloc.rpartition("@")[2]
            user = split.username or ""
            split = split._replace(netloc=f"{user}:{MASK}@{hosts}")
        parts.append(urlunsplit(split))
    return ";".join(parts)
