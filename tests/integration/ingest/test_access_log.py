"""Ingest's access log is off unless GUNICORN_ACCESS_LOG asks for it: the real server, its
real output. Lines are uvicorn's (client, request line, status), through gunicorn's access
logger, so they go where GUNICORN_ACCESS_LOG says, secrets masked."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from tests.support.harness import WRITE_KEY, FleetProcesses, fleet_env

pytestmark = pytest.mark.integration

AGENT = "access-log-probe/1.0"


def _serve_two_requests(env: dict[str, str], log_dir: Path) -> str:
    """Start ingest, ask /healthz and post an event, stop it; return everything it printed."""
    fleet = FleetProcesses(env, log_dir)
    try:
        url = fleet.start_ingest()
        headers = {"User-Agent": AGENT}
        assert requests.get(f"{url}/healthz", headers=headers, timeout=10).status_code == 200
        event = {"type": "track", "event": "E", "userId": "u1"}
        response = requests.post(
            f"{url}/v1/track", json=event, auth=(WRITE_KEY, ""), headers=headers, timeout=10
        )
        assert response.status_code == 200
        # a path holding the write key (the SDK settings route) is logged masked, if at all
        requests.get(f"{url}/v1/projects/{WRITE_KEY}/settings", headers=headers, timeout=10)
    finally:
        fleet.stop_all()
    return "".join(p.read_text(errors="replace") for p in sorted(log_dir.glob("ingest-*.log")))


def test_no_access_lines_by_default(redis_url: str, key_prefix: str, tmp_path: Path) -> None:
    output = _serve_two_requests(fleet_env(redis_url, key_prefix, "http://127.0.0.1:9"), tmp_path)
    assert "Booting worker" in output  # gunicorn's own lines are there
    assert AGENT not in output
    assert "GET /healthz" not in output and "POST /v1/track" not in output


def test_access_lines_on_stderr_when_asked_for_with_secrets_masked(
    redis_url: str, key_prefix: str, tmp_path: Path
) -> None:
    env = fleet_env(redis_url, key_prefix, "http://127.0.0.1:9", GUNICORN_ACCESS_LOG="-")
    output = _serve_two_requests(env, tmp_path)
    lines = [line for line in output.splitlines() if "uvicorn.access" in line]
    assert any('"GET /healthz HTTP/1.1" 200' in line for line in lines), output
    assert any('"POST /v1/track HTTP/1.1" 200' in line for line in lines), output
    assert any("/v1/projects/****/settings" in line for line in lines), output
    assert WRITE_KEY not in output


def test_access_lines_in_a_file_when_asked_for(
    redis_url: str, key_prefix: str, tmp_path: Path
) -> None:
    access = tmp_path / "access.log"
    env = fleet_env(redis_url, key_prefix, "http://127.0.0.1:9", GUNICORN_ACCESS_LOG=str(access))
    output = _serve_two_requests(env, tmp_path)
    assert "GET /healthz" not in output
    text = access.read_text()
    assert '"GET /healthz HTTP/1.1" 200' in text and '"POST /v1/track HTTP/1.1" 200' in text
    assert WRITE_KEY not in text
