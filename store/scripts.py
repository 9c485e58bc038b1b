"""The fleet's Lua scripts, one `.lua` file each in `store/lua/`, loaded by one loader.

Each file starts with a header saying what the script does, its KEYS, its ARGV and what it
returns. `script(client, name)` registers the file's text with a client; redis-py then runs it
with EVALSHA and falls back to EVAL after a Redis restart emptied the script cache. In a Redis
Cluster pipeline, where redis-py refuses EVALSHA, it is queued as EVAL with its text (the node
caches it by the same digest).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from importlib import resources
from typing import Any, Final

from redis.cluster import ClusterPipeline

NAMES: Final = (
    "dlq_replay",
    "error_groups",
    "lease_release",
    "lease_renew",
    "publish",
    "rate_limit_acquire",
    "rate_limit_slow_down",
    "trace_append",
)


@functools.cache
def source(name: str) -> str:
    """The text of `store/lua/<name>.lua`; KeyError for a script that does not exist."""
    if name not in NAMES:
        raise KeyError(f"no Lua script {name!r}; known: {', '.join(NAMES)}")
    return resources.files("store").joinpath("lua", f"{name}.lua").read_text(encoding="utf-8")


class Script:
    """A registered script, called as redis-py's are: `script(keys=..., args=..., client=pipe)`."""

    def __init__(self, client: Any, name: str) -> None:
        self.name = name
        self._text = source(name)
        self._registered = client.register_script(self._text)

    def __call__(
        self, keys: Sequence[Any] = (), args: Sequence[Any] = (), client: Any = None
    ) -> Any:
        if isinstance(client, ClusterPipeline):
            return client.execute_command("EVAL", self._text, len(keys), *keys, *args)
        return self._registered(keys=keys, args=args, client=client)


def script(client: Any, name: str) -> Script:
    """The script registered with `client` (a redis.Redis or cluster client)."""
    return Script(client, name)
