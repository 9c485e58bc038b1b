"""The worker's heartbeat file and what `pushwoosh-fleet probe worker` concludes from it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from worker.heartbeat import Heartbeat, problems, read_heartbeat

NOW_S = 1_714_565_100.0


def state(**changes: object) -> dict[str, object]:
    base: dict[str, object] = {"node": "w@h", "pid": 123, "beat": NOW_S - 1, "redis_ok": True,
                               "stuck_after_s": 45.0, "tasks": {}}  # fmt: skip
    base.update(changes)
    return base


def alive(pid: int) -> bool:
    return pid == 123


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, []),
        ({"redis_ok": False}, []),  # Redis away: restarting the worker would not help
        ({"tasks": {"t1": NOW_S - 44}}, []),
        ({"beat": NOW_S - 61}, ["the pump last ran 61 s ago (limit 60 s): stuck"]),
        ({"pid": 999}, ["the worker process 999 is gone"]),
        (
            {"tasks": {"t1": NOW_S - 46, "t2": NOW_S - 3}},
            ["drain task t1 has run 46 s; a drain ends within 45 s: stuck"],
        ),
    ],
)
def test_what_the_probe_concludes(changes: dict[str, object], expected: list[str]) -> None:
    assert problems(state(**changes), NOW_S, 60.0, alive=alive) == expected


def test_no_heartbeat_fails_the_probe() -> None:
    (reason,) = problems(None, NOW_S)
    assert reason.startswith("no heartbeat")


def test_the_file_holds_the_running_tasks_and_is_written_at_most_once_a_second(
    tmp_path: Path,
) -> None:
    # Given a heartbeat on a clock we move by hand
    now = [NOW_S]
    path = tmp_path / "hb.json"
    beat = Heartbeat(str(path), "w@h", 45.0, "k:workers", clock=lambda: now[0])
    beat.task_started("t1")
    # When the pump beats twice within a second, then once more a second later
    beat.beat(True, None)
    first = read_heartbeat(str(path))
    beat.task_finished("t1")
    now[0] += 0.5
    beat.beat(False, None)
    assert read_heartbeat(str(path)) == first
    now[0] += 0.6
    beat.beat(False, None)
    # Then the file shows the latest state, the finished task gone
    assert first is not None and first["tasks"] == {"t1": NOW_S}
    latest = json.loads(path.read_text())
    assert latest["beat"] == NOW_S + 1.1 and latest["tasks"] == {} and latest["redis_ok"] is False
    # And a clean stop removes it
    beat.stop(None)
    assert not path.exists()
