"""Ingest's worker processes end when their gunicorn master is killed outright: the real server.

(gunicorn's own workers stop when their parent changes; uvicorn's worker did not, and an
orphan kept serving, and holding the metrics port it inherited, for ever.)"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.harness import FleetProcesses, fleet_env

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone but for its exit status
    state = (
        Path(f"/proc/{pid}/stat").read_text().split()[2] if Path(f"/proc/{pid}").exists() else "X"
    )
    return state not in ("Z", "X")


def test_workers_stop_soon_after_their_master_is_killed(
    redis_url: str, key_prefix: str, tmp_path: Path
) -> None:
    # Given ingest as deployed, two worker processes under one master
    fleet = FleetProcesses(fleet_env(redis_url, key_prefix, "http://127.0.0.1:9"), tmp_path)
    workers: list[int] = []
    try:
        fleet.start_ingest(web_workers=2)
        master = fleet.processes[0].pid
        workers = [int(pid) for pid in subprocess.run(
            ["pgrep", "-P", str(master)], capture_output=True, text=True
        ).stdout.split()]  # fmt: skip
        assert len(workers) == 2
        # When the master is killed outright
        os.kill(master, signal.SIGKILL)
        # Then both workers have stopped within a few notify periods
        deadline = time.monotonic() + 30
        while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = [pid for pid in workers if _alive(pid)]
    finally:
        fleet.stop_all()
        for pid in workers:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
    assert left == []
