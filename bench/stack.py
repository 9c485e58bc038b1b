"""The processes under test, started on 127.0.0.1 as users start them, and the handles to read
them: Redis, the stand-in, ingest (fleet or baseline), Celery workers, the load generator.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import uuid
from array import array
from pathlib import Path
from typing import Any

import redis
import requests

from bench.events import WRITE_KEY
from bench.procs import BIN, Processes, wait_until
from config.redis_keys import RedisKeys
from fleet.embedded_redis import EmbeddedRedis


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def base_env(redis_url: str, prefix: str, standin_url: str) -> dict[str, str]:
    """The fleet's environment: fake credentials, batching on, everything else default."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(
            ("PUSHWOOSH_", "INGEST_", "REDIS_", "DEDUPE_", "RETRY_", "DRAIN_", "PUMP_", "WEB_")
        )
    }
    env.update(
        REDIS_URL=redis_url,
        REDIS_KEY_PREFIX=prefix,
        PUSHWOOSH_API_KEY="bench-fake-api-key",
        PUSHWOOSH_APPLICATION_CODE="BENCH-00000",
        PUSHWOOSH_BASE_URL=standin_url,
        PUSHWOOSH_ENABLE_BATCHING="true",
        # One shard per worker process (the Procfile's worker runs two), as the README advises
        # for throughput; the default of one shard keeps a destination strictly in order.
        PUSHWOOSH_SHARDS=os.environ.get("BENCH_SHARDS", "2"),
        INGEST_WRITE_KEYS=WRITE_KEY,
        PYTHONPATH=str(Path(__file__).resolve().parent.parent),
    )
    return env


class Stack:
    def __init__(self, work_dir: Path) -> None:
        self.work_dir = work_dir
        self.procs = Processes(work_dir)
        self.prefix = f"bench{uuid.uuid4().hex[:8]}"
        self.redis_server: EmbeddedRedis | None = None
        self.redis: redis.Redis | None = None
        self.standin_port = free_port()
        self.standin_url = f"http://127.0.0.1:{self.standin_port}"
        self._http = requests.Session()
        self.env: dict[str, str] = {}
        self.ports: dict[str, int] = {}

    # -- start ---------------------------------------------------------------------------------
    def start_redis(self) -> None:
        self.redis_server = EmbeddedRedis(self.work_dir / "redis", appendonly=False).start()
        self.redis = redis.Redis.from_url(self.redis_server.url, decode_responses=True)
        self.env = base_env(self.redis_server.url, self.prefix, self.standin_url)

    def start_standin(self) -> None:
        self.procs.spawn(
            "standin", [sys.executable, "-m", "bench.standin", str(self.standin_port)], self.env
        )
        wait_until(self._standin_up, 15, "the Pushwoosh stand-in")

    def _standin_up(self) -> bool:
        self.procs.check_alive("standin")
        try:
            self.standin_stats()
            return True
        except requests.RequestException:
            return False

    def start_ingest(self, name: str, app_spec: str, *options: str) -> int:
        """gunicorn with ingest's settings, serving `app_spec`; `options` override settings."""
        port = free_port()
        env = {**self.env, "PORT": str(port)}
        args = [str(BIN / "gunicorn"), "-c", "python:ingest.gunicorn_conf", *options, app_spec]
        self.procs.spawn(name, args, env)
        url = f"http://127.0.0.1:{port}/healthz"

        def up() -> bool:
            self.procs.check_alive(name)
            try:
                return self._http.get(url, timeout=1).status_code == 200
            except requests.RequestException:
                return False

        wait_until(up, 30, f"{name} on port {port}")
        self.ports[name] = port
        return port

    def start_worker(self, name: str, app_module: str, pool: str = "threads") -> int:
        # The Procfile's worker command, at a quieter log level.
        args = [str(BIN / "celery"), "-A", app_module, "worker", f"--pool={pool}",
                "--concurrency=2", "--loglevel=WARNING"]  # fmt: skip
        return self.procs.spawn(name, args, self.env).pid

    def main_pid(self, name: str) -> int:
        return self.procs.running[name].pid

    # -- the stand-in --------------------------------------------------------------------------
    def standin_stats(self) -> dict[str, Any]:
        return dict(self._http.get(f"{self.standin_url}/_bench/stats", timeout=5).json())

    def standin_reset(self) -> None:
        self._http.post(f"{self.standin_url}/_bench/reset", timeout=5)

    def standin_dump(self) -> dict[str, array[Any]]:
        directory = self.work_dir / f"dump-{time.monotonic_ns()}"
        self._http.post(f"{self.standin_url}/_bench/dump", data=str(directory), timeout=60)
        arrays = {}
        for name, code in (("req_times", "d"), ("req_sizes", "l"), ("seqs", "q"),
                           ("seq_times", "d")):  # fmt: skip
            values: array[Any] = array(code)
            path = directory / f"{name}.bin"
            values.frombytes(path.read_bytes())
            path.unlink()
            arrays[name] = values
        directory.rmdir()
        return arrays

    def wait_for_events(self, expected: int, stall_s: float = 30.0) -> int:
        """Wait until the stand-in holds `expected` events or nothing arrives for stall_s."""
        last_count, last_change = -1, time.monotonic()
        while True:
            count = int(self.standin_stats()["events"])
            if count >= expected:
                return count
            if count != last_count:
                last_count, last_change = count, time.monotonic()
            elif time.monotonic() - last_change > stall_s:
                return count
            time.sleep(0.05)

    # -- redis ---------------------------------------------------------------------------------
    def reset_keys(self) -> None:
        """Remove every key of this run's prefix (workers must be stopped)."""
        assert self.redis is not None
        batch: list[str] = []
        keys = self.redis.scan_iter(match=f"*{self.prefix}*", count=5000)  # {prefix:...} too
        for key in keys:
            batch.append(key)
            if len(batch) >= 5000:
                self.redis.unlink(*batch)
                batch.clear()
        if batch:
            self.redis.unlink(*batch)

    def used_memory_mb(self) -> float:
        """Redis' used memory, once what UNLINK gave back was really freed."""
        assert self.redis is not None
        deadline = time.monotonic() + 30
        while True:
            info = self.redis.info("memory")
            if not int(info.get("lazyfree_pending_objects", 0)) or time.monotonic() > deadline:
                return int(info["used_memory"]) / 2**20
            time.sleep(0.1)

    def stream_length(self) -> int:
        """Events queued on every shard."""
        assert self.redis is not None
        keys = RedisKeys(self.prefix, "default")
        shards = int(self.env.get("PUSHWOOSH_SHARDS") or 1)
        return sum(int(self.redis.xlen(keys.stream(shard))) for shard in range(shards))

    def history_bytes(self) -> int:
        """What the event history's keys take in Redis (measured whole, not sampled)."""
        assert self.redis is not None
        pattern = "{" + self.prefix + ":trace:*"
        return sum(
            int(self.redis.memory_usage(key, samples=0) or 0)
            for key in self.redis.scan_iter(match=pattern)
        )

    # -- load ----------------------------------------------------------------------------------
    def run_load(self, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        """Run the load generator in its own process; return its records."""
        spec_path = self.work_dir / f"{name}.spec.json"
        out_path = self.work_dir / f"{name}.out.json"
        spec = {**spec, "out": str(out_path)}
        spec_path.write_text(json.dumps(spec))
        process = self.procs.spawn(
            f"loadgen-{name}", [sys.executable, "-m", "bench.loadgen", str(spec_path)], self.env
        )
        process.wait()
        self.procs.running.pop(f"loadgen-{name}", None)
        if process.returncode != 0:
            raise RuntimeError(f"load generator failed:\n{self.procs.log_tail(f'loadgen-{name}')}")
        result = dict(json.loads(out_path.read_text()))
        out_path.unlink()
        return result

    def stop(self) -> None:
        self.procs.stop_all()
        if self.redis_server is not None:
            self.redis_server.stop(kill=True)
