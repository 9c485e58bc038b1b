"""`pushwoosh-fleet run`: the whole fleet for one machine in one command.

Starts (as child processes) an embedded Redis when REDIS_URL is not set, the ingest web server
(gunicorn) and one Celery worker, and serves the fleet-wide gauges itself (FLEET_METRICS_PORT);
Ctrl-C or SIGTERM stops them in reverse order, each with a warm shutdown, so in-flight batches
finish or stay pending in Redis. Where its Redis and ingest are is recorded in the data
directory (fleet/locate.py), so other commands run in the same directory find them.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from types import FrameType

import requests

from config.settings import Settings, load_settings
from fleet import locate
from fleet.embedded_redis import EmbeddedRedis
from fleet.exporter import page_url, serve_fleet
from store.client import redis_for
from telemetry import exposition
from worker.heartbeat import pid_alive
from worker.pushwoosh import DRY_RUN_BANNER

logger = logging.getLogger(__name__)

DEFAULT_DATA_DIR = locate.DEFAULT_DATA_DIR


def _bin(name: str) -> str:
    candidate = Path(sys.executable).with_name(name)
    return str(candidate) if candidate.exists() else name


def _local_key(data_dir: Path, name: str = "write-key", prefix: str = "local-") -> str:
    """A key kept in the data directory, so senders (and the page) keep working across
    restarts: the write key, and the admin key that opens the delivery page."""
    path = data_dir / name
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = prefix + secrets.token_urlsafe(18)
    path.write_text(key + "\n")
    path.chmod(0o600)
    return key


def _wait_healthy(url: str, process: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the ingest server exited at start (code {process.returncode})")
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the ingest server did not answer {url} within {timeout_s} s")


class Fleet:
    def __init__(
        self,
        env: Mapping[str, str],
        *,
        data_dir: Path,
        port: int | None = None,
        concurrency: int = 2,
        web_workers: int = 2,
    ) -> None:
        self.env = dict(env)
        self.data_dir = data_dir
        self.port = port
        self.concurrency = concurrency
        self.web_workers = web_workers
        self.redis: EmbeddedRedis | None = None
        self.children: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.write_key: str | None = None
        self.admin_key: str | None = None
        self.settings: Settings | None = None
        self.listener: exposition.Listener | None = None

    def _refuse_a_second_fleet(self) -> None:
        """Two fleets on one data directory would share (and corrupt) one Redis' files."""
        running = locate.recorded(self.data_dir)
        if running is not None and running.pid != os.getpid() and pid_alive(running.pid):
            raise RuntimeError(
                f"a fleet started from {self.data_dir} is already running (pid {running.pid}, "
                f"ingest {running.ingest_url}); stop it first, or use another --data-dir"
            )

    def start(self) -> None:
        settings = load_settings(self.env)  # fail before starting anything
        self._refuse_a_second_fleet()
        if settings.redis_url is None:
            self.redis = EmbeddedRedis(self.data_dir / "redis").start()
            self.env["REDIS_URL"] = self.redis.url
            print(f"embedded Redis on {self.redis.url} (data in {self.redis.data_dir})", flush=True)
        if (
            not settings.ingest_write_keys
            and settings.ingest_shared_secret is None
            and not settings.ingest_allow_unauthenticated
        ):
            self.write_key = _local_key(self.data_dir)
            self.env["INGEST_WRITE_KEYS"] = self.write_key
        if not settings.ingest_admin_keys:
            self.admin_key = _local_key(self.data_dir, "admin-key", "local-admin-")
            self.env["INGEST_ADMIN_KEYS"] = self.admin_key
        if self.port is not None:
            self.env["PORT"] = str(self.port)
        self.settings = settings = load_settings(self.env)
        if settings.dry_run:
            print(DRY_RUN_BANNER, flush=True)
        web_env = {**self.env, "WEB_CONCURRENCY": str(self.web_workers)}
        web = subprocess.Popen(
            [_bin("gunicorn"), "-c", "python:ingest.gunicorn_conf", "ingest.app:get_app()"],
            env=web_env,
            start_new_session=True,  # signals reach children only through stop()
        )
        self.children.append(("ingest", web))
        worker = subprocess.Popen(
            [
                _bin("celery"), "-A", "worker", "worker",
                "--loglevel", settings.log_level,
                "--pool", "threads", "--concurrency", str(self.concurrency),
                "--hostname", f"fleet-{os.getpid()}@%h",
            ],
            env=self.env,
            start_new_session=True,
        )  # fmt: skip
        self.children.append(("worker", worker))
        _wait_healthy(f"http://127.0.0.1:{settings.port}/healthz", web, timeout_s=30)
        self.listener = serve_fleet(
            settings,
            self.env,
            redis_for(settings, decode_responses=True, socket_timeout=5),
            settings.metrics_address,
            settings.fleet_metrics_port,
        )
        locate.record(
            self.data_dir,
            locate.RunningFleet(
                redis_url=settings.effective_redis_url,
                ingest_url=f"http://127.0.0.1:{settings.port}",
                pid=os.getpid(),
                write_key_file=str(self.data_dir / "write-key") if self.write_key else None,
                metrics=self._metrics_urls(settings),
                broker_url=settings.celery_broker_url,
            ),
        )
        self._print_howto(settings)

    def _metrics_urls(self, settings: Settings) -> dict[str, str]:
        ports = {
            "ingest": settings.metrics_port,
            "worker": settings.worker_metrics_port,
            "fleet": settings.fleet_metrics_port if self.listener else 0,
        }
        host = settings.metrics_address
        return {role: f"http://{host}:{port}/metrics" for role, port in ports.items() if port}

    def _print_howto(self, settings: Settings) -> None:
        base = f"http://127.0.0.1:{settings.port}"
        auth = f" -u '{self.write_key}:'" if self.write_key else ""
        print(
            "\n"
            f"pushwoosh-fleet is running: ingest on {base}\n"
            + (
                f"  local write key: {self.write_key} (kept in {self.data_dir}/write-key)\n"
                if self.write_key
                else ""
            )
            + "  metrics: "
            + ", ".join(f"{role} {url}" for role, url in self._metrics_urls(settings).items())
            + self._page_howto()
            + "\n  watch it from another terminal, in this directory:\n"
            "    pushwoosh-fleet status   (and trace, dlq, replay...: they find this fleet)\n"
            "  try:\n"
            f"    curl{auth} -H 'Content-Type: application/json' {base}/v1/track \\\n"
            '      -d \'{"userId":"user-1","event":"Order Completed",'
            '"properties":{"total":59.9}}\'\n'
            "  Ctrl-C stops everything.\n",
            flush=True,
        )

    def _page_howto(self) -> str:
        if self.listener is None:
            return ""
        if self.admin_key:
            who = f"user admin, password {self.admin_key} (kept in {self.data_dir}/admin-key)"
        else:
            who = "user admin, password: an admin key (INGEST_ADMIN_KEYS)"
        return f"\n  delivery page: {page_url(self.listener)}  ({who})"

    def wait(self) -> int:
        """Block until a child exits or a signal arrives; returns the exit code to use."""
        while True:
            for name, child in self.children:
                code = child.poll()
                if code is not None:
                    print(f"{name} exited with code {code}; stopping the fleet", flush=True)
                    return code or 1
            time.sleep(0.2)

    def stop(self) -> None:
        locate.forget(self.data_dir, os.getpid())
        if self.listener is not None:
            self.listener.stop()
        for _name, child in reversed(self.children):
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)  # warm shutdown for both gunicorn and celery
        for _name, child in reversed(self.children):
            try:
                child.wait(timeout=60)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        if self.redis is not None:
            self.redis.stop()


def run_fleet(port: int | None, concurrency: int, data_dir: str) -> int:
    fleet = Fleet(os.environ, data_dir=Path(data_dir), port=port, concurrency=concurrency)

    def _stop(signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    try:
        fleet.start()
        return fleet.wait()
    except RuntimeError as ex:
        print(f"pushwoosh-fleet run: {ex}", file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt:
        print("\nstopping: finishing in-flight batches…", flush=True)
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the shutdown
        fleet.stop()
        print("stopped.", flush=True)
