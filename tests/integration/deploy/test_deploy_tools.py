"""The deploy files checked by the tools made for them: hadolint on the Dockerfile, promtool on
the alert rules (with unit tests of when each alert fires), the wheel the image installs, and
the image build itself where a Docker engine runs."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from store.scripts import NAMES
from tests.support.harness import BIN, ROOT

pytestmark = pytest.mark.integration

MONITORING = ROOT / "deploy" / "monitoring"


def _tool(name: str, how: str) -> str:
    found = shutil.which(name) or (str(BIN / name) if (BIN / name).exists() else None)
    if found is None:
        message = f"{name} is not installed ({how})"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


def test_hadolint_passes_the_dockerfile() -> None:
    hadolint = _tool("hadolint", "it comes with the test extras: pip install -e '.[test]'")
    result = subprocess.run(
        [hadolint, "--failure-threshold", "info", str(ROOT / "deploy" / "Dockerfile")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_accepts_the_alert_rules() -> None:
    promtool = _tool("promtool", "scripts/ensure-promtool.sh unpacks it from Debian's package")
    result = subprocess.run(
        [promtool, "check", "rules", str(MONITORING / "alerts.yaml")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 9 rules found" in result.stdout


# -- when each alert fires: promtool's rule unit tests, built from the rules' own text ----------
RULES = {
    rule["alert"]: rule
    for group in yaml.safe_load((MONITORING / "alerts.yaml").read_text())["groups"]
    for rule in group["rules"]
}
SERIES = '{job="pushwoosh-fleet", instance="a"}'
CASES: list[tuple[str, list[tuple[str, str]], str, dict[str, str] | None]] = [
    # alert, input series, evaluated at, labels it fires with (None: must not fire)
    ("PushwooshFleetNoLiveWorker", [(f"pushwoosh_fleet_workers_live{SERIES}", "1 1 1 0x10")],
     "10m", {}),
    ("PushwooshFleetNoLiveWorker", [(f"pushwoosh_fleet_workers_live{SERIES}", "1 1 1 0x10")],
     "4m", None),
    ("PushwooshFleetOldestEventTooOld",
     [('pushwoosh_fleet_oldest_event_age_seconds{destination="ios", shard="0"}', "0+60x30")],
     "20m", {"destination": "ios"}),
    ("PushwooshFleetOldestEventTooOld",
     [('pushwoosh_fleet_oldest_event_age_seconds{destination="ios", shard="0"}', "5x30")],
     "20m", None),
    ("PushwooshFleetBacklogGrowing",
     [('pushwoosh_fleet_queue_depth{destination="web", shard="0"}', "0+100x60")],
     "40m", {"destination": "web"}),
    ("PushwooshFleetBacklogGrowing",
     [('pushwoosh_fleet_queue_depth{destination="web", shard="0"}', "5000x60")],
     "40m", None),
    ("PushwooshFleetDeadLettersRising",
     [('pushwoosh_fleet_events_dead_lettered_total{destination="ios", action="trackEvent", '
       'reason="http_400", instance="w1"}', "0 0 0 2 2 2")],
     "5m", {"destination": "ios", "reason": "http_400"}),
    ("PushwooshFleetPushwooshAuthFailed",
     [('pushwoosh_fleet_pushwoosh_requests_total{destination="web", path="post-events", '
       'status="401", instance="w1"}', "0 0 1 1 1")],
     "4m", {"destination": "web"}),
    ("PushwooshFleetIngestAuthFailures",
     [('pushwoosh_fleet_ingest_requests_total{destination="(none)", route="v1/batch", '
       'status="401"}', "0+5x40"),
      ('pushwoosh_fleet_ingest_requests_total{destination="ios", route="v1/batch", '
       'status="200"}', "0+10x40")],
     "30m", {}),
    ("PushwooshFleetRedisDown", [(f"pushwoosh_fleet_redis_up{SERIES}", "1 1 0x10")], "8m", {}),
    ("PushwooshFleetDeliveryPaused",
     [('pushwoosh_fleet_delivery_paused{destination="web", cause="backoff"}', "1x20")],
     "15m", {"destination": "web"}),
    ("PushwooshFleetExporterMissing", [(f"pushwoosh_fleet_events_read_total{SERIES}", "0x20")],
     "15m", {}),
]  # fmt: skip


def _rendered(text: str, labels: dict[str, str]) -> str:
    return re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels[m.group(1)], text)


def _case(alert: str, series: list[tuple[str, str]], at: str, fires: dict[str, str] | None):
    rule = RULES[alert]
    expected: list[dict[str, Any]] = []
    if fires is not None:
        labels = {**fires, **rule["labels"]}
        annotations = {k: _rendered(v, labels) for k, v in rule["annotations"].items()}
        expected.append({"exp_labels": labels, "exp_annotations": annotations})
    return {
        "interval": "1m",
        "input_series": [{"series": name, "values": values} for name, values in series],
        "alert_rule_test": [{"eval_time": at, "alertname": alert, "exp_alerts": expected}],
    }


def test_each_alert_fires_when_it_should_and_only_then(tmp_path: Path) -> None:
    promtool = _tool("promtool", "scripts/ensure-promtool.sh unpacks it from Debian's package")
    assert {alert for alert, *_ in CASES} == set(RULES), "every alert has a case"
    tests = {
        "rule_files": [str(MONITORING / "alerts.yaml")],
        "evaluation_interval": "1m",
        "tests": [_case(*case) for case in CASES],
    }
    path = tmp_path / "alerts.test.yaml"
    path.write_text(yaml.safe_dump(tests, sort_keys=False))
    result = subprocess.run(
        [promtool, "test", "rules", str(path)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


# -- what the image installs --------------------------------------------------------------------
def test_the_wheel_the_image_installs_carries_the_lua_scripts(tmp_path: Path) -> None:
    # Given the wheel pip builds from the repository (what `pip install .` in the image does)
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
         "-w", str(tmp_path), str(ROOT)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (wheel,) = tmp_path.glob("pushwoosh_fleet-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    # Then every Lua script is inside, beside the packages and the console script
    assert {f"store/lua/{name}.lua" for name in NAMES} <= names
    assert {"ingest/gunicorn_conf.py", "worker/heartbeat.py", "fleet/cli.py"} <= names
    # And the delivery page's templates, CSS and script (the page fetches nothing elsewhere)
    page = ROOT / "fleet" / "page"
    shipped = {str(p.relative_to(ROOT)) for p in page.glob("templates/*")} | {
        str(p.relative_to(ROOT)) for p in page.glob("static/*")
    }
    assert shipped and shipped <= names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "pushwoosh-fleet = fleet.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_the_image_builds_where_a_docker_engine_runs() -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker client here: the image is not built (hadolint checked the file)")
    info = subprocess.run([docker, "info"], capture_output=True, text=True, timeout=30)
    if info.returncode != 0:
        reason = (info.stderr.strip().splitlines() or ["docker info failed"])[-1]
        pytest.skip(f"no Docker engine here ({reason}): the image is not built")
    built = subprocess.run(
        [docker, "build", "-f", "deploy/Dockerfile", "-t", "pushwoosh-fleet:test", "."],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    version = subprocess.run(
        [docker, "run", "--rm", "pushwoosh-fleet:test", "pushwoosh-fleet", "--version"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert version.returncode == 0 and version.stdout.startswith("pushwoosh-fleet ")
    user = subprocess.run(
        [docker, "run", "--rm", "pushwoosh-fleet:test", "id", "-u"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert user.stdout.strip() == "10001"
