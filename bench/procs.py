"""Starting and stopping the benchmark's processes, and reading their memory and CPU from /proc.

Each process starts in its own session (its own process group), so stopping it also stops the
children it forked (gunicorn workers, Celery pool processes) and nothing else.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


class Processes:
    """Every process the benchmark started, by name; `stop_all` in a finally cleans up."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.running: dict[str, subprocess.Popen[bytes]] = {}

    def spawn(
        self, name: str, args: list[str], env: Mapping[str, str], *, stdin: int | None = None
    ) -> subprocess.Popen[bytes]:
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - the child owns it
        process = subprocess.Popen(
            args,
            env=dict(env),
            cwd=ROOT,
            stdin=stdin if stdin is not None else subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.running[name] = process
        return process

    def check_alive(self, name: str) -> None:
        process = self.running[name]
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}:\n{self.log_tail(name)}")

    def log_tail(self, name: str, chars: int = 3000) -> str:
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else "(no log)"

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout_s: float = 20.0) -> None:
        process = self.running.pop(name, None)
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=timeout_s)
        # Whatever is left of its group (pool children that outlived their parent).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)

    def stop_all(self) -> None:
        for name in reversed(list(self.running)):
            self.stop(name, timeout_s=10.0)


def children_of(root_pid: int) -> list[int]:
    """root_pid and all its descendants, from /proc/<pid>/stat parent links."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            parents[int(entry)] = int(fields[1])
        except (OSError, IndexError, ValueError):
            continue
    tree, frontier = [root_pid], [root_pid]
    while frontier:
        parent = frontier.pop()
        kids = [pid for pid, ppid in parents.items() if ppid == parent]
        tree += kids
        frontier += kids
    return tree


# /proc/<pid>/stat counts CPU time in clock ticks (USER_HZ, 100 on Linux).
_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def tree_cpu_s(root_pid: int) -> float:
    """User + system CPU seconds of a process and all its descendants (threads included)."""
    total = 0
    for pid in children_of(root_pid):
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, IndexError, ValueError):
            continue  # exited between listing and reading
    return total / _TICKS_PER_S


def _status_kb(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field):
                return int(line.split()[1])
    return 0


def _pss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/smaps_rollup") as rollup:
        for line in rollup:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


def tree_memory_mb(root_pid: int) -> tuple[float, float, int]:
    """(sum of RSS, sum of PSS, process count) over the process tree, in MiB."""
    rss_kb = pss_kb = count = 0
    for pid in children_of(root_pid):
        try:
            rss_kb += _status_kb(pid, "VmRSS:")
            pss_kb += _pss_kb(pid)
            count += 1
        except OSError:
            continue  # exited between listing and reading
    return rss_kb / 1024, pss_kb / 1024, count


def wait_until(
    predicate: Callable[[], bool], timeout_s: float, what: str, interval_s: float = 0.05
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval_s)
    raise TimeoutError(f"timed out after {timeout_s:.0f} s waiting for {what}")
