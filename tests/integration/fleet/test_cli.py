"""The `pushwoosh-fleet` command as users type it: preview, ping, check-config, dlq and run."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import redis
import requests

from fleet.embedded_redis import EmbeddedRedis, free_port
from tests.support.drain import enqueue, make_runtime, track
from tests.support.harness import API_KEY, APP_CODE, CLI, clean_env, cli
from tests.support.pushwoosh_stub import PushwooshStub, Reply
from worker.drain import ShardDrainer

TRACK = {
    "type": "track",
    "event": "Order Completed",
    "userId": "user-123",
    "messageId": "m1",
    "timestamp": "2024-05-01T12:05:00.000Z",
    "properties": {"total": 59.9},
}
IDENTIFY = {"type": "identify", "userId": "user-123", "messageId": "m2", "traits": {"plan": "pro"}}
CREDS = {"PUSHWOOSH_API_KEY": API_KEY, "PUSHWOOSH_APPLICATION_CODE": APP_CODE}


def test_preview_prints_the_requests_with_the_key_masked() -> None:
    result = cli("preview", stdin=json.dumps([TRACK, IDENTIFY]), **CREDS)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert set(out) == {"requests", "rejected", "skipped"}
    paths = [r["url"].rsplit("/", 1)[1] for r in out["requests"]]
    assert paths == ["post-events", "track-user"]
    assert out["requests"][0]["headers"]["Authorization"] == "Token ****"
    assert API_KEY not in result.stdout
    assert out["requests"][0]["json"]["events"][0]["app_code"] == APP_CODE
    assert out["requests"][1]["json"] == {"attributes": {"plan": "pro"}, "user_id": "user-123"}


def test_preview_show_secrets_reveals_the_key() -> None:
    result = cli("preview", "--show-secrets", stdin=json.dumps(TRACK), **CREDS)
    assert (
        json.loads(result.stdout)["requests"][0]["headers"]["Authorization"] == f"Token {API_KEY}"
    )


def test_preview_packs_a_window_of_tracks_like_the_worker() -> None:
    events = "\n".join(json.dumps({**TRACK, "messageId": f"m{i}"}) for i in range(150))  # NDJSON
    result = cli("preview", stdin=events, PUSHWOOSH_ENABLE_BATCHING="true", **CREDS)
    sizes = [len(r["json"]["events"]) for r in json.loads(result.stdout)["requests"]]
    assert sizes == [100, 50]
    unbatched = cli("preview", stdin=events, **CREDS)
    assert len(json.loads(unbatched.stdout)["requests"]) == 150


def test_preview_reports_rejected_and_skipped_events(tmp_path: Path) -> None:
    path = tmp_path / "events.json"
    bad = {**TRACK, "timestamp": "yesterday-ish"}
    path.write_text(json.dumps([bad, {"type": "group", "userId": "u", "groupId": "g"}, 7]))
    out = json.loads(cli("preview", str(path), **CREDS).stdout)
    assert out["requests"] == []
    assert out["rejected"] == [
        {
            "index": 0,
            "messageId": "m1",
            "action": "trackEvent",
            "reason": out["rejected"][0]["reason"],
        }
    ]
    assert "timestamp" in out["rejected"][0]["reason"]
    assert [s["index"] for s in out["skipped"]] == [1, 2]


def test_preview_refuses_input_that_is_not_json() -> None:
    result = cli("preview", stdin='{"type": "track"}\nnot json\n', **CREDS)
    assert result.returncode == 2 and "line 2" in result.stderr


def test_ping_says_whether_the_credentials_work(stub: PushwooshStub) -> None:
    ok = cli("ping", PUSHWOOSH_BASE_URL=stub.url, **CREDS)
    assert ok.returncode == 0 and "credentials OK" in ok.stdout
    (request,) = stub.snapshot()
    assert request.path == "/integration-segment/v1/ping"
    assert request.json == {"body": {"name": "test_segment_auth"}}
    assert request.headers["Authorization"] == f"Token {API_KEY}"
    stub.set_default(Reply(401, {"message": "unauthorized"}))
    bad = cli("ping", PUSHWOOSH_BASE_URL=stub.url, **CREDS)
    assert bad.returncode == 1 and "REJECTED" in bad.stdout and API_KEY not in bad.stdout


def test_check_config_names_every_problem(tmp_path: Path) -> None:
    mappings = tmp_path / "m.yaml"
    mappings.write_text(
        "mappings:\n"
        "  - name: VIP\n"
        "    action: trackEvent\n"
        "    trigger: 'type = '\n"
        "    fields: {nmae: x}\n"
    )
    result = cli("check-config", PUSHWOOSH_MAPPINGS_FILE=str(mappings), PORT="notaport")
    assert result.returncode == 2
    assert "PORT" in result.stdout and "nmae" in result.stdout and "position" in result.stdout
    good = cli("check-config", **CREDS)
    assert good.returncode == 0 and "track-user" in good.stdout and "post-events" in good.stdout


@pytest.mark.integration
def test_dlq_list_replay_purge(redis_url: str, key_prefix: str, stub: PushwooshStub) -> None:
    runtime = make_runtime(redis_url, key_prefix, stub)
    stub.respond_with(Reply(400, {"message": "bad one"}), Reply(400, {"message": "bad two"}))
    enqueue(runtime, [track(1)])
    ShardDrainer(runtime, 0).run()
    enqueue(runtime, [track(2)])
    ShardDrainer(runtime, 0).run()
    env = {"REDIS_URL": redis_url, "REDIS_KEY_PREFIX": key_prefix}
    listed = cli("dlq", "list", **env)
    assert "2 dead-lettered entries" in listed.stdout and "bad one" in listed.stdout
    as_json = [json.loads(line) for line in cli("dlq", "list", "--json", **env).stdout.splitlines()]
    assert [entry["message_ids"] for entry in as_json] == [["m-1"], ["m-2"]]
    replayed = cli("dlq", "replay", "--message-id", "m-1", **env)
    assert "replayed 1 entry" in replayed.stdout
    again = cli("dlq", "replay", as_json[0]["id"], **env)
    assert "no entry" in again.stderr and "nothing to replay" in again.stdout
    purged = cli("dlq", "purge", "--status", "400", "--yes", **env)
    assert "purged 1 entries" in purged.stdout
    assert redis.Redis.from_url(redis_url).xlen(runtime.keys.shard(0).dlq) == 0


@pytest.mark.integration
@pytest.mark.slow
def test_run_starts_a_dry_run_fleet_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    # Given no REDIS_URL and no credentials
    port = free_port()
    process = subprocess.Popen(
        [
            CLI,
            "run",
            "--port",
            str(port),
            "--data-dir",
            str(tmp_path / "data"),
            "--concurrency",
            "1",
        ],
        env=clean_env(PUMP_INTERVAL_S="0.05", PUSHWOOSH_BATCH_FLUSH_DELAY_S="0.1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    try:
        # When it starts, it says it runs dry and how to send to it
        deadline = time.monotonic() + 60
        assert process.stdout is not None
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            output.append(line)
            if "pushwoosh-fleet is running" in line or process.poll() is not None:
                break
        text = "".join(output)
        assert "DRY RUN" in text and "embedded Redis" in text, text
        write_key = re.search(r"local write key: (\S+)", process.stdout.readline()).group(1)  # type: ignore[union-attr]
        # And an event posted with the printed write key flows to the dry-run sink
        response = requests.post(
            f"http://127.0.0.1:{port}/v1/track", json=TRACK, auth=(write_key, ""), timeout=10
        )
        assert response.status_code == 200, response.text
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            output.append(line)
            if "DRY RUN: would POST" in line:
                break
        assert "post-events" in output[-1] and "Order Completed" in output[-1]
    finally:
        # Then Ctrl-C stops ingest, worker and Redis, and the command exits 0
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=60)
    rest = process.stdout.read() if process.stdout else ""
    assert code == 0, rest
    assert "stopped." in rest
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2)


@pytest.mark.integration
def test_embedded_redis_works_with_a_relative_data_dir(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    server = EmbeddedRedis(Path("relative/redis")).start()
    try:
        assert redis.Redis.from_url(server.url).ping()
        assert (tmp_path / "relative/redis/redis.log").exists()
    finally:
        server.stop()
