"""`pushwoosh-fleet replay FILE`: NDJSON through ingest, every line accounted for."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.harness import BIN, ROOT, WRITE_KEY, FleetProcesses, fleet_env, running
from tests.support.pushwoosh_stub import PushwooshStub
from tests.support.replay import track, write_ndjson


# -- the real fleet --------------------------------------------------------------------------
@pytest.fixture
def fleet(
    redis_url: str, key_prefix: str, stub: PushwooshStub, tmp_path: Path
) -> Iterator[FleetProcesses]:
    env = fleet_env(
        redis_url,
        key_prefix,
        stub.url,
        PUSHWOOSH_ENABLE_BATCHING="true",
        PUSHWOOSH_SHARDS="2",
        INGEST_MAX_EVENT_BYTES="2048",
    )
    with running(env, tmp_path, web_workers=2) as processes:
        yield processes


def run_replay(fleet: FleetProcesses, path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    assert fleet.ingest_url
    return subprocess.run(
        [str(BIN / "pushwoosh-fleet"), "replay", str(path), "--url", fleet.ingest_url, *extra],
        env=fleet.env, cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.mark.integration
@pytest.mark.slow
def test_replaying_10000_lines_delivers_them_all(
    fleet: FleetProcesses, stub: PushwooshStub, tmp_path: Path
) -> None:
    # Given an export of 10,000 track events
    path = write_ndjson(tmp_path / "export.ndjson", [json.dumps(track(i)) for i in range(10_000)])
    # When it is replayed with the default write key (the first of INGEST_WRITE_KEYS)
    result = run_replay(fleet, path, "--batch-size", "500")
    # Then every line is accepted and every event reaches Pushwoosh exactly once
    assert result.returncode == 0, result.stdout + result.stderr
    assert "10000 lines read, 10000 events accepted, 0 rejected" in result.stdout
    received = stub.wait_for(
        lambda got: sum(len(r.json["events"]) for r in got) >= 10_000, timeout_s=60
    )
    delivered = sorted(e["attributes"]["i"] for r in received for e in r.json["events"])
    assert delivered == list(range(10_000))


@pytest.mark.integration
def test_replay_reports_each_bad_line_and_delivers_the_rest(
    fleet: FleetProcesses, stub: PushwooshStub, tmp_path: Path
) -> None:
    # Given a file with good lines and five kinds of bad ones
    lines = [json.dumps(track(i)) for i in range(20)]
    lines[2] = '{"type": "track", "event": '  # cut short
    lines[5] = "[1, 2, 3]"
    lines[8] = json.dumps({"type": "bogus", "messageId": "bad-type", "userId": "u"})
    lines[11] = json.dumps({**track(11), "properties": {"blob": "x" * 4000}})
    lines[14] = json.dumps({"type": "track", "messageId": "no-name", "userId": "u"})
    lines.insert(17, "")  # blank lines are skipped quietly
    path = write_ndjson(tmp_path / "mixed.ndjson", lines)
    # When it is replayed
    result = run_replay(fleet, path, "--rate", "1000", "--write-key", WRITE_KEY)
    # Then each bad line is reported by number with its reason, and the others are delivered
    assert result.returncode == 1
    out = result.stdout
    assert "21 lines read, 15 events accepted, 5 rejected" in out, out
    assert "  line 3: not valid JSON" in out
    assert "  line 6: not a JSON object" in out
    assert "  line 9: HTTP 400: validation_failed:" in out
    assert "  line 12: HTTP 400: too_large:" in out
    assert "  line 15: HTTP 400: validation_failed:" in out and "event" in out
    good = {i for i in range(20)} - {2, 5, 8, 11, 14}
    received = stub.wait_for(
        lambda got: sum(len(r.json["events"]) for r in got) >= len(good), timeout_s=30
    )
    assert {e["attributes"]["i"] for r in received for e in r.json["events"]} == good


@pytest.mark.integration
def test_replay_without_a_write_key_says_what_to_set(
    redis_url: str, key_prefix: str, tmp_path: Path
) -> None:
    env = fleet_env(redis_url, key_prefix, "http://127.0.0.1:9", INGEST_WRITE_KEYS="")
    path = write_ndjson(tmp_path / "e.ndjson", [json.dumps(track(1))])
    result = subprocess.run(
        [str(BIN / "pushwoosh-fleet"), "replay", str(path)],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 2
    assert "pass --write-key or set INGEST_WRITE_KEYS" in result.stderr
