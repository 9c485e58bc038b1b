"""Real fleet processes for integration tests: the gunicorn ingest server and Celery workers,
started as users start them (the Procfile's commands), on free ports, with fail-loud start-up.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import requests

from fleet.embedded_redis import free_port

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
API_KEY = "PW_API_TOKEN_abc123"
APP_CODE = "ABCDE-12345"
WRITE_KEY = "test-write-key"
ADMIN_KEY = "test-admin-key"


CLI = str(BIN / "pushwoosh-fleet")
# Variables of the fleet, left out of the environment a test starts a process with.
OWN_VARIABLES = (
    "PUSHWOOSH_", "INGEST_", "REDIS_", "DEDUPE_", "RETRY_", "DRAIN_", "DESTINATIONS_", "PORT",
    "WEB_CONCURRENCY", "GUNICORN_", "LOG_", "TRACE_", "METRICS_", "WORKER_", "FLEET_",
    "PROMETHEUS_MULTIPROC_DIR", "CELERY_",
)  # fmt: skip


def clean_env(**extra: str) -> dict[str, str]:
    """The test's environment without the fleet's variables, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(OWN_VARIABLES)}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def cli(*args: str, stdin: str = "", **env: str) -> subprocess.CompletedProcess[str]:
    """Run `pushwoosh-fleet` as a user would, with only `env` set."""
    return subprocess.run(
        [CLI, *args], input=stdin, capture_output=True, text=True, env=clean_env(**env), timeout=60
    )


def fleet_env(
    redis_url: str, key_prefix: str, pushwoosh_url: str, **overrides: str
) -> dict[str, str]:
    env = clean_env()
    env.update(
        {
            "REDIS_URL": redis_url,
            "REDIS_KEY_PREFIX": key_prefix,
            "PUSHWOOSH_API_KEY": API_KEY,
            "PUSHWOOSH_APPLICATION_CODE": APP_CODE,
            "PUSHWOOSH_BASE_URL": pushwoosh_url,
            "INGEST_WRITE_KEYS": WRITE_KEY,
            "INGEST_ADMIN_KEYS": ADMIN_KEY,
            "PUMP_INTERVAL_S": "0.05",
            "PUSHWOOSH_TIMEOUT_S": "3",
            "DRAIN_LEASE_S": "8",
            "DRAIN_SLICE_S": "5",
            # Metrics listeners off unless a test asks for one on a free port: fixed default
            # ports would collide between fleets started at once on one machine.
            "METRICS_PORT": "0",
            "WORKER_METRICS_PORT": "0",
            "PYTHONPATH": str(ROOT),
        }
    )
    env.update(overrides)
    return env


class FleetProcesses:
    def __init__(self, env: Mapping[str, str], log_dir: Path) -> None:
        self.env = dict(env)
        self.log_dir = log_dir
        self.processes: list[subprocess.Popen[bytes]] = []
        self.ingest_url: str | None = None

    def _spawn(self, name: str, args: list[str], env: Mapping[str, str]) -> subprocess.Popen[bytes]:
        log = open(self.log_dir / f"{name}-{len(self.processes)}.log", "wb")  # noqa: SIM115
        process = subprocess.Popen(
            args,
            env=dict(env),
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes.append(process)
        return process

    def start_ingest(self, web_workers: int = 1, port: int | None = None) -> str:
        port = port or free_port()
        env = {**self.env, "PORT": str(port), "WEB_CONCURRENCY": str(web_workers)}
        process = self._spawn(
            "ingest",
            [str(BIN / "gunicorn"), "-c", "python:ingest.gunicorn_conf", "ingest.app:get_app()"],
            env,
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(
                    f"ingest exited with {process.returncode}: {self.logs('ingest')}"
                )
            try:
                if requests.get(f"{url}/healthz", timeout=1).status_code == 200:
                    self.ingest_url = url
                    return url
            except requests.RequestException:
                time.sleep(0.05)
        raise RuntimeError(f"ingest did not come up on {url}: {self.logs('ingest')}")

    def start_worker(
        self,
        concurrency: int = 2,
        extra: list[str] | None = None,
        pool: str = "threads",
        env: Mapping[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        # The Procfile's worker (threads pool) unless a test asks for another pool.
        args = [
            str(BIN / "celery"), "-A", "worker", "worker", "--loglevel=INFO",
            f"--pool={pool}", f"--concurrency={concurrency}",
            f"--hostname=w{len(self.processes)}-{os.getpid()}@%h",
            "--without-gossip", "--without-mingle",
        ] + (extra or [])  # fmt: skip
        return self._spawn("worker", args, {**self.env, **(env or {})})

    def start_fleet_listener(self, port: int | None = None) -> str:
        """`pushwoosh-fleet metrics`: the fleet-wide gauges and the delivery page. Returns its
        base URL once /metrics answers."""
        port = port or free_port()
        env = {**self.env, "FLEET_METRICS_PORT": str(port)}
        process = self._spawn("fleet", [str(BIN / "pushwoosh-fleet"), "metrics"], env)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"the fleet listener exited: {self.logs('fleet')}")
            try:
                if requests.get(f"{url}/metrics", timeout=1).status_code == 200:
                    return url
            except requests.RequestException:
                time.sleep(0.05)
        raise RuntimeError(f"the fleet listener did not come up on {url}: {self.logs('fleet')}")

    def logs(self, name: str) -> str:
        texts = []
        for path in sorted(self.log_dir.glob(f"{name}-*.log")):
            texts.append(f"--- {path.name}\n" + path.read_text(errors="replace")[-4000:])
        return "\n".join(texts)

    def stop(
        self, process: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout_s: float = 30
    ) -> None:
        if process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def stop_all(self) -> None:
        for process in reversed(self.processes):
            self.stop(process)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)  # leftover pool children


@contextlib.contextmanager
def running(
    env: Mapping[str, str],
    log_dir: Path,
    *,
    web_workers: int = 1,
    worker_concurrency: int | None = 2,
) -> Iterator[FleetProcesses]:
    """Ingest and one worker (none when `worker_concurrency` is None), started; every process
    stopped on the way out, also when one of them failed to start."""
    processes = FleetProcesses(env, log_dir)
    try:
        processes.start_ingest(web_workers=web_workers)
        if worker_concurrency is not None:
            processes.start_worker(concurrency=worker_concurrency)
        yield processes
    finally:
        processes.stop_all()
