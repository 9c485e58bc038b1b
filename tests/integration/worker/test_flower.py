"""Flower against a real worker: it shows the worker and the drain tasks (state, runtime), and
nothing it returns holds the Pushwoosh API key."""

from __future__ import annotations

import ast
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from fleet.embedded_redis import free_port
from tests.support.harness import API_KEY, BIN, WRITE_KEY, FleetProcesses, fleet_env
from tests.support.pushwoosh_stub import PushwooshStub

pytestmark = pytest.mark.integration

BASIC_AUTH = ("ops", "flower-pass")


def wait_until(check: Callable[[], Any], what: str, fleet: FleetProcesses, timeout_s: float = 20):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            result = check()
        except requests.RequestException:
            result = None
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"{what} within {timeout_s}s\n{fleet.logs('flower')}\n{fleet.logs('w')}")


class Flower:
    def __init__(self, fleet: FleetProcesses, *, basic_auth: bool) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.auth = BASIC_AUTH if basic_auth else None
        env = dict(fleet.env)
        args = [
            str(BIN / "celery"), "-A", "worker", "flower",
            f"--port={self.port}", "--address=127.0.0.1",
        ]  # fmt: skip
        if basic_auth:
            args.append(f"--basic-auth={BASIC_AUTH[0]}:{BASIC_AUTH[1]}")
        else:
            env["FLOWER_UNAUTHENTICATED_API"] = "true"
        self.process = fleet._spawn("flower", args, env)

    def get(self, path: str, **params: Any) -> requests.Response:
        return requests.get(f"{self.url}{path}", params=params, auth=self.auth, timeout=10)


@pytest.fixture
def fleet(
    redis_url: str, key_prefix: str, stub: PushwooshStub, tmp_path: Path
) -> Iterator[FleetProcesses]:
    processes = FleetProcesses(fleet_env(redis_url, key_prefix, stub.url), tmp_path)
    try:
        processes.start_ingest()
        yield processes
    finally:
        processes.stop_all()


def deliver_through_flower(fleet: FleetProcesses, stub: PushwooshStub, flower: Flower) -> str:
    """Start a worker, wait until Flower sees it by its events, then deliver three events."""
    worker_process = fleet.start_worker(concurrency=1)
    worker_prefix = f"w{len(fleet.processes) - 1}-"
    assert flower.process.poll() is None, fleet.logs("flower")
    worker = wait_until(
        lambda: next(
            (
                name
                for name, online in flower.get("/api/workers", status="true").json().items()
                if name.startswith(worker_prefix) and online
            ),
            None,
        ),
        "Flower never saw the worker's events",
        fleet,
    )
    assert worker_process.poll() is None
    for i in range(3):
        response = requests.post(
            f"{fleet.ingest_url}/v1/track",
            json={"type": "track", "event": "Flower", "userId": f"u{i}", "messageId": f"f-{i}"},
            auth=(WRITE_KEY, ""),
            timeout=10,
        )
        assert response.status_code == 200, response.text
    stub.wait_for(lambda got: len(got) >= 3, timeout_s=20)
    return str(worker)


def test_flower_shows_the_worker_and_its_drain_tasks_without_the_api_key(
    fleet: FleetProcesses, stub: PushwooshStub
) -> None:
    # Given Flower running against the fleet, its API open (FLOWER_UNAUTHENTICATED_API)
    flower = Flower(fleet, basic_auth=False)
    wait_until(lambda: flower.get("/healthcheck").status_code == 200, "Flower did not start", fleet)
    # When a worker delivers events
    worker = deliver_through_flower(fleet, stub, flower)
    # Then /api/workers has the worker, with its queue and the drain task registered
    # (asked again until it answers: an inspect broadcast in the worker's first seconds can
    # miss Flower's one-second reply window)
    info = wait_until(
        lambda: flower.get("/api/workers", refresh="true").json().get(worker),
        "Flower's refresh never reached the worker",
        fleet,
    )
    assert any(q["name"].endswith(".drain") for q in info["active_queues"])
    assert "pushwoosh_fleet.drain" in info["registered"]
    # And /api/tasks has the drain tasks that ran, succeeded, with their runtime
    tasks = wait_until(
        lambda: [
            task
            for task in flower.get("/api/tasks").json().values()
            if task["name"] == "pushwoosh_fleet.drain" and task["state"] == "SUCCESS"
        ],
        "Flower never showed a succeeded drain task",
        fleet,
    )
    for task in tasks:
        assert task["worker"] == worker
        assert task["runtime"] is not None and task["runtime"] >= 0
        assert task["args"].startswith("('default', 0") or task["args"].startswith("['default', 0")
    delivered = sum(ast.literal_eval(task["result"]).get("delivered", 0) for task in tasks)
    assert delivered == 3
    # And the API key appears nowhere in what Flower returns
    pages = [
        flower.get("/api/workers", refresh="true"),
        flower.get("/api/tasks"),
        flower.get("/api/task/info/" + tasks[0]["uuid"]),
        flower.get("/api/workers", status="true"),
        flower.get("/"),
        flower.get("/tasks"),
        flower.get("/task/" + tasks[0]["uuid"]),
        flower.get("/worker/" + worker),
    ]
    for page in pages:
        assert page.status_code == 200, page.url
        assert API_KEY not in page.text, page.url


def test_flower_with_basic_auth_from_the_procfile_refuses_strangers(
    fleet: FleetProcesses, stub: PushwooshStub
) -> None:
    # Given Flower started as the Procfile does, with --basic-auth
    flower = Flower(fleet, basic_auth=True)
    wait_until(lambda: flower.get("/healthcheck").status_code == 200, "Flower did not start", fleet)
    # Then a request without the credentials is refused
    stranger = requests.get(f"{flower.url}/api/workers", timeout=10)
    assert stranger.status_code == 401
    # And with them, the worker and its tasks show, without the API key
    worker = deliver_through_flower(fleet, stub, flower)
    tasks = wait_until(
        lambda: [t for t in flower.get("/api/tasks").json().values() if t["state"] == "SUCCESS"],
        "Flower never showed a succeeded task",
        fleet,
    )
    assert {task["worker"] for task in tasks} == {worker}
    workers = flower.get("/api/workers", refresh="true")
    assert worker in workers.json()
    assert API_KEY not in workers.text
    assert API_KEY not in flower.get("/api/tasks").text
