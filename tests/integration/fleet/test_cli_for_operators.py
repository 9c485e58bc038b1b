"""The command line as operators use it: a second terminal finds the fleet `run` started, a Redis
that does not answer is one line and exit code 2, and scripts get --version, --json and
completion."""

from __future__ import annotations

import gzip
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from fleet.embedded_redis import free_port
from tests.support.harness import CLI, clean_env, cli

TRACK = {"type": "track", "event": "Order Completed", "userId": "user-1", "messageId": "op-1",
         "timestamp": "2024-05-01T12:05:00.000Z", "properties": {"total": 5}}  # fmt: skip


def cli_in(
    directory: Path, *args: str, stdin: str = "", **env: str
) -> subprocess.CompletedProcess[str]:
    """`pushwoosh-fleet` run from `directory`, as a user in a second terminal there would."""
    return subprocess.run(
        [CLI, *args], input=stdin, capture_output=True, text=True, env=clean_env(**env),
        cwd=directory, timeout=60,
    )  # fmt: skip


@pytest.fixture
def running_fleet(tmp_path: Path) -> Iterator[tuple[Path, int, subprocess.Popen[str], str]]:
    """`pushwoosh-fleet run` in tmp_path with nothing set: embedded Redis, dry run."""
    port = free_port()
    process = subprocess.Popen(
        [CLI, "run", "--port", str(port), "--concurrency", "1"],
        env=clean_env(PUMP_INTERVAL_S="0.05", PUSHWOOSH_BATCH_FLUSH_DELAY_S="0.1",
                      METRICS_PORT=str(free_port()), WORKER_METRICS_PORT=str(free_port()),
                      FLEET_METRICS_PORT=str(free_port())),
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    deadline = time.monotonic() + 60
    lines = []
    while time.monotonic() < deadline and process.poll() is None:
        lines.append(process.stdout.readline())
        if "Ctrl-C stops everything" in lines[-1]:
            break
    assert "pushwoosh-fleet is running" in "".join(lines), "".join(lines)
    try:
        yield tmp_path, port, process, "".join(lines)
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=90)


@pytest.mark.integration
@pytest.mark.slow
def test_a_second_terminal_finds_the_fleet_that_run_started(running_fleet) -> None:
    directory, port, process, printed = running_fleet
    # Given the fleet `run` started with an embedded Redis, and one event sent to it
    key = (directory / ".pushwoosh-fleet" / "write-key").read_text().strip()
    response = requests.post(f"http://127.0.0.1:{port}/v1/track", json=TRACK, auth=(key, ""))
    assert response.status_code == 200
    recorded = json.loads((directory / ".pushwoosh-fleet" / "fleet.json").read_text())
    assert recorded["redis_url"].startswith("redis://127.0.0.1:")
    # When `status` runs in the same directory, REDIS_URL unset
    deadline = time.monotonic() + 30
    status = cli_in(directory, "status")
    while "1 live" not in status.stdout and time.monotonic() < deadline:
        time.sleep(0.5)
        status = cli_in(directory, "status")
    # Then it talks to the embedded Redis, says so, and sees the fleet's worker
    assert f"Redis {recorded['redis_url']} (from `pushwoosh-fleet run`" in status.stderr
    assert "workers       1 live: fleet-" in status.stdout, status.stdout + status.stderr
    assert status.returncode == 0, status.stdout
    # And `trace` knows the event it delivered (to the dry-run sink)
    trace = cli_in(directory, "trace", "op-1")
    while "delivered" not in trace.stdout and time.monotonic() < deadline:
        time.sleep(0.5)
        trace = cli_in(directory, "trace", "op-1")
    assert "received via v1/track" in trace.stdout and "-> delivered" in trace.stdout
    # And the delivery page `run` printed opens with the admin key it made, and shows the event
    found = re.search(r"delivery page: (\S+)  \(user admin, password (\S+) ", printed)
    assert found is not None, printed
    page, admin_key = found.groups()
    assert admin_key == (directory / ".pushwoosh-fleet" / "admin-key").read_text().strip()
    assert requests.get(page, timeout=10).status_code == 401
    overview = requests.get(f"{page}/default", auth=("admin", admin_key), timeout=10)
    assert 'id="total-delivered" data-count="1"' in overview.text, overview.text[-2000:]
    # And `replay` sends a gzipped stream from stdin to that fleet's ingest, with its local key
    lines = "\n".join(json.dumps({**TRACK, "messageId": f"op-r{i}"}) for i in range(5))
    archive = directory / "events.ndjson.gz"
    archive.write_bytes(gzip.compress(lines.encode()))
    replay = subprocess.run(
        f"cat {archive} | {CLI} replay - --no-progress", shell=True, capture_output=True,
        text=True, env=clean_env(), cwd=directory, timeout=60,
    )  # fmt: skip
    assert replay.returncode == 0, replay.stderr
    assert "5 lines read, 5 events accepted, 0 rejected" in replay.stdout
    # And a second `run` in the same directory refuses to share the fleet's Redis files
    second = cli_in(directory, "run", "--port", str(free_port()))
    assert second.returncode == 2 and "already running" in second.stderr
    # And once the fleet stops, its record goes with it
    process.send_signal(signal.SIGINT)
    process.wait(timeout=90)
    assert not (directory / ".pushwoosh-fleet" / "fleet.json").exists()


@pytest.mark.integration
@pytest.mark.parametrize(
    "args",
    [
        ("status",),
        ("dlq", "list"),
        ("trace", "some-message"),
        ("delete-user", "user-1"),
        ("metrics", "--port", "0"),
    ],
    ids=lambda a: " ".join(a),
)
def test_an_unreachable_redis_is_one_line_and_exit_code_2(args: tuple[str, ...]) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    result = cli(*args, REDIS_URL=url)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    problem = [line for line in result.stderr.splitlines() if "cannot reach" in line]
    assert len(problem) == 1 and f"Redis {url} (REDIS_URL)" in problem[0], result.stderr
    assert len(result.stderr.splitlines()) <= 2  # which Redis, and why it failed


@pytest.mark.integration
def test_status_json_says_unreachable_for_scripts() -> None:
    result = cli("status", "--json", REDIS_URL=f"redis://:pw@127.0.0.1:{free_port()}/0")
    assert result.returncode == 2
    report = json.loads(result.stdout)
    assert report["state"] == "unreachable" and report["destinations"] == []
    assert "****" in report["redis"] and "pw" not in result.stdout + result.stderr


@pytest.mark.integration
def test_status_is_degraded_without_a_worker(redis_url: str, key_prefix: str) -> None:
    result = cli("status", "--timeout", "0.2", REDIS_URL=redis_url, REDIS_KEY_PREFIX=key_prefix)
    assert result.returncode == 1
    assert "DEGRADED\n  - no live worker: nothing is delivering" in result.stdout


@pytest.mark.integration
def test_version_json_and_completion() -> None:
    version = cli("--version")
    assert version.returncode == 0 and re.fullmatch(r"pushwoosh-fleet \d+\.\d+\.\d+\S*\n",
                                                    version.stdout)  # fmt: skip
    check = cli("check-config", "--json", PORT="notaport")
    assert check.returncode == 2
    assert json.loads(check.stdout)["valid"] is False
    assert any("PORT" in p for p in json.loads(check.stdout)["problems"])
    bash = cli("completion", "bash")
    assert bash.returncode == 0
    for word in ("status", "trace", "replay", "delete-user", "--destination"):
        assert word in bash.stdout
    zsh = cli("completion", "zsh")
    assert zsh.returncode == 0 and "#compdef pushwoosh-fleet" in zsh.stdout
    # The script is valid bash: sourcing it defines the completion function
    sourced = subprocess.run(
        ["bash", "-c", 'source /dev/stdin && complete -p pushwoosh-fleet'], input=bash.stdout,
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert sourced.returncode == 0 and "pushwoosh-fleet" in sourced.stdout, sourced.stderr


@pytest.mark.integration
def test_redis_url_from_the_environment_wins_over_a_recorded_fleet(
    tmp_path: Path, redis_url: str, key_prefix: str
) -> None:
    # Given a record of a fleet on a Redis that is gone, and REDIS_URL set
    data = tmp_path / ".pushwoosh-fleet"
    data.mkdir()
    gone = f"redis://127.0.0.1:{free_port()}/0"
    record = {"redis_url": gone, "ingest_url": "http://x", "pid": os.getpid()}
    (data / "fleet.json").write_text(json.dumps(record))
    # Then REDIS_URL is used, and without it the record is (and its Redis does not answer)
    with_url = cli_in(tmp_path, "dlq", "list", REDIS_URL=redis_url, REDIS_KEY_PREFIX=key_prefix)
    assert with_url.returncode == 0 and "(REDIS_URL)" in with_url.stderr
    without = cli_in(tmp_path, "dlq", "list", REDIS_KEY_PREFIX=key_prefix)
    assert without.returncode == 2 and "from `pushwoosh-fleet run`" in without.stderr
