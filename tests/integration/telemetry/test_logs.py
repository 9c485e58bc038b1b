"""Logs: one line per record, JSON objects with LOG_FORMAT=json, and never a secret."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import requests

from tests.support.harness import API_KEY, WRITE_KEY, FleetProcesses, fleet_env
from tests.support.pushwoosh_stub import PushwooshStub


def _text(log_dir: Path, name: str) -> str:
    return "".join(p.read_text(errors="replace") for p in sorted(log_dir.glob(f"{name}-*.log")))


def _lines(log_dir: Path, name: str) -> list[str]:
    return _text(log_dir, name).splitlines()


@pytest.mark.integration
def test_ingest_and_worker_write_json_lines_without_secrets(
    redis_url: str, key_prefix: str, stub: PushwooshStub, tmp_path: Path
) -> None:
    # Given the ingest server and a worker started with LOG_FORMAT=json
    env = fleet_env(redis_url, key_prefix, stub.url, LOG_FORMAT="json")
    fleet = FleetProcesses(env, tmp_path)
    try:
        url = fleet.start_ingest()
        fleet.start_worker(concurrency=1)
        # When events flow, and a request with a wrong key is refused
        event = {"type": "track", "event": "Logged", "userId": "u1", "messageId": "log-1"}
        assert requests.post(f"{url}/v1/track", json=event, auth=(WRITE_KEY, "")).status_code == 200
        assert requests.post(f"{url}/v1/track", json=event, auth=("nope", "")).status_code == 401
        stub.wait_for(lambda got: len(got) >= 1, timeout_s=20)
        deadline = time.monotonic() + 10
        while "drained shard" not in fleet.logs("worker") and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        fleet.stop_all()
    # Then every ingest line is a JSON object, the worker's log lines too, and no secret shows
    ingest_lines = [line for line in _lines(tmp_path, "ingest") if line.strip()]
    assert ingest_lines
    records = [json.loads(line) for line in ingest_lines]
    assert any(r["logger"].startswith("gunicorn") for r in records)
    assert any("401 unauthorized" in r["message"] for r in records)
    worker_records = [json.loads(line) for line in _lines(tmp_path, "worker") if line[:1] == "{"]
    messages = [r["message"] for r in worker_records]
    assert any(m.startswith("worker ready") for m in messages), messages
    assert any(m.startswith("drained shard 0") for m in messages), messages
    for text in (_text(tmp_path, "ingest"), _text(tmp_path, "worker")):
        assert API_KEY not in text
        assert WRITE_KEY not in text
