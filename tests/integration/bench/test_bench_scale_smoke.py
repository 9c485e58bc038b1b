"""`python -m bench --scale` runs end to end in its tiny mode: every drain delivers its whole
backlog, and the summary carries the scaling figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.cluster import cluster_tools

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(240)
def test_scale_smoke_run_drains_every_backlog() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--scale", "--smoke"],
        cwd=ROOT, capture_output=True, text=True, timeout=230,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    lines = [json.loads(line) for line in done.stdout.strip().splitlines()]
    drains = [line for line in lines if line["measure"] == "drain"]
    assert [d["workers"] for d in drains][:2] == [1, 2]
    assert len(drains) == (4 if cluster_tools() else 2)
    assert all(d["delivered"] == d["events"] and d["events_per_s"] > 0 for d in drains), drains
    summary = lines[-1]
    assert summary["measure"] == "summary" and summary["worker_efficiency_2"] > 0
    if cluster_tools():
        assert summary["cluster_efficiency_3"] > 0
