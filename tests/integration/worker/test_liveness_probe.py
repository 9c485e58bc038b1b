"""`pushwoosh-fleet probe worker`, the workers' liveness probe, against real workers: it passes
while a worker drains, fails when the worker stops (frozen), and keeps passing while Pushwoosh
never finishes its answer, because the send's deadline ends that request (what the probe
concludes from a task that runs too long is table-tested in tests/unit/worker/test_heartbeat.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from tests.support.harness import WRITE_KEY, FleetProcesses, cli, fleet_env

pytestmark = pytest.mark.integration


def probe(heartbeat: Path, *extra: str) -> tuple[int, dict[str, object]]:
    result = cli("probe", "worker", "--json", *extra, WORKER_HEARTBEAT_PATH=str(heartbeat))
    return result.returncode, json.loads(result.stdout)


def wait_for_probe(heartbeat: Path, code: int, *extra: str, timeout_s: float = 30) -> dict:  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout_s
    got: tuple[int, dict[str, object]] = (-1, {})
    while time.monotonic() < deadline:
        got = probe(heartbeat, *extra)
        if got[0] == code:
            return got[1]
        time.sleep(0.3)
    raise AssertionError(f"the probe never exited {code}: {got}")


class DripServer:
    """Answers 200 with a body it sends one byte every half second: a request that never
    times out (each read gets a byte in time) and never ends."""

    def __init__(self) -> None:
        self.stopping = threading.Event()
        self.connections: list[socket.socket] = []
        # (when the request came, when the client left it), per request
        self.requests: list[list[float]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: object) -> None:
                return

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.connections.append(self.connection)
                times = [time.monotonic()]
                outer.requests.append(times)
                # HTTP/1.0: the connection closes after this answer, so it is not kept alive
                self.send_response(200)
                self.send_header("Content-Length", "100000")
                self.end_headers()
                while not outer.stopping.wait(0.5):
                    try:
                        self.wfile.write(b" ")
                        self.wfile.flush()
                    except OSError:
                        times.append(time.monotonic())
                        return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.stopping.set()
        for connection in self.connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def drip() -> Iterator[DripServer]:
    server = DripServer()
    yield server
    server.stop()


def test_the_probe_fails_while_the_worker_is_frozen_and_passes_again_after(
    redis_url: str, key_prefix: str, tmp_path: Path
) -> None:
    # Given a running worker writing its heartbeat
    heartbeat = tmp_path / "heartbeat.json"
    env = fleet_env(redis_url, key_prefix, "http://127.0.0.1:9",
                    WORKER_HEARTBEAT_PATH=str(heartbeat))  # fmt: skip
    fleet = FleetProcesses(env, tmp_path)
    try:
        worker = fleet.start_worker(concurrency=1)
        alive = wait_for_probe(heartbeat, 0, "--max-age", "3")
        assert alive["alive"] is True and alive["problems"] == []
        # When the worker process stops running (as a deadlocked process would)
        os.kill(worker.pid, signal.SIGSTOP)
        try:
            # Then the probe fails, naming the stale pump
            dead = wait_for_probe(heartbeat, 1, "--max-age", "3")
            assert "the pump last ran" in dead["problems"][0]  # type: ignore[index]
        finally:
            os.kill(worker.pid, signal.SIGCONT)
        # And passes again once it runs
        wait_for_probe(heartbeat, 0, "--max-age", "3")
    finally:
        fleet.stop_all()
    # And a clean shutdown removes the heartbeat: a stopped worker is never "alive"
    assert not heartbeat.exists()
    code, report = probe(heartbeat)
    assert code == 1 and "no heartbeat" in report["problems"][0]  # type: ignore[index]


@pytest.mark.slow
def test_an_answer_that_never_ends_is_cut_at_the_deadline_and_the_probe_keeps_passing(
    redis_url: str, key_prefix: str, tmp_path: Path, drip: DripServer
) -> None:
    # Given a worker whose drains can last at most 1 s slice + 1 s request + 2 s lease
    heartbeat = tmp_path / "heartbeat.json"
    env = fleet_env(redis_url, key_prefix, drip.url, WORKER_HEARTBEAT_PATH=str(heartbeat),
                    DRAIN_SLICE_S="1", PUSHWOOSH_TIMEOUT_S="1", DRAIN_LEASE_S="2")  # fmt: skip
    fleet = FleetProcesses(env, tmp_path)
    try:
        url = fleet.start_ingest()
        fleet.start_worker(concurrency=1)
        wait_for_probe(heartbeat, 0)
        # When an event goes to a Pushwoosh that never finishes its answer (a byte every
        # half second, on a connection that closes after it: no socket timeout ever trips)
        event = {"type": "track", "event": "E", "userId": "u", "messageId": "stuck-1"}
        assert requests.post(f"{url}/v1/track", json=event, auth=(WRITE_KEY, "")).ok
        # Then for longer than a drain may last, the probe passes: no task runs on
        ends = time.monotonic() + 6
        while time.monotonic() < ends:
            code, report = probe(heartbeat)
            assert code == 0, report
            time.sleep(0.5)
        # because the worker left each such answer at its 1 s deadline
        left = [times for times in drip.requests if len(times) == 2]
        assert left, drip.requests
        assert all(end - start < 2.5 for start, end in left), drip.requests
    finally:
        drip.stop()
        fleet.stop_all()
