"""The fleet's Lua scripts, one `.lua` file each in `store/lua/`, loaded by one loader.

Each file starts with a header saying what the script does, its KEYS, its ARGV and what it
returns. `script(client, name)` registers the file's text with a client; redis-py then runs it
with EVALSHA and falls back to EVAL after a Redis restart emptied the script cache.
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any, Final

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


def script(client: Any, name: str) -> Any:
    """The script registered with `client` (a redis.Redis or cluster client)."""
    return client.register_script(source(name))
