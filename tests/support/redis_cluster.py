"""A real Redis Cluster for tests: N primaries (no replicas) on loopback ports, made with
`redis-cli --cluster create`, in a directory the test owns.

Each node's cluster bus gets its own free port (`cluster-port`), so nothing depends on
port + 10000 being free. Needs Redis 7 (`redis-server` and `redis-cli` on PATH: Debian's
redis-server and redis-tools, which `make test` installs when missing).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import redis

from fleet.embedded_redis import free_port


def cluster_tools() -> tuple[str, str] | None:
    """redis-server and redis-cli on PATH, when both are there."""
    server, client = shutil.which("redis-server"), shutil.which("redis-cli")
    return (server, client) if server and client else None


def require_cluster_tools() -> tuple[str, str]:
    """The tools, or skip saying what is missing (fail under CI=true)."""
    tools = cluster_tools()
    if tools is None:
        why = "redis-server and redis-cli (Debian's redis-server, redis-tools) are needed"
        if os.environ.get("CI"):
            pytest.fail(f"{why} in CI")
        pytest.skip(why)
    return tools


class LocalCluster:
    def __init__(self, base: Path, primaries: int = 3) -> None:
        self.base = base
        self.server, self.client = require_cluster_tools()
        self.ports = [free_port() for _ in range(primaries)]
        self.processes: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports) + "/"

    def _start_node(self, port: int) -> None:
        conf = self.base / f"node-{port}.conf"
        if not conf.exists():
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {self.base}\ncluster-enabled yes\n"
                f"cluster-config-file nodes-{port}.conf\ncluster-port {free_port()}\n"
                'cluster-node-timeout 5000\nsave ""\nappendonly no\n'
                f"logfile {self.base}/node-{port}.log\n"
            )
        self.processes[port] = subprocess.Popen(
            [self.server, str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis(port=port).ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def start(self) -> LocalCluster:
        for port in self.ports:
            self._start_node(port)
        subprocess.run(
            [self.client, "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports),
             "--cluster-replicas", "0", "--cluster-yes"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        self.wait_ok()
        return self

    def wait_ok(self, timeout_s: float = 30) -> None:
        """Until every node says the cluster is ok (all slots served, every node known)."""
        deadline = time.monotonic() + timeout_s
        for port in self.ports:
            node = redis.Redis(port=port, decode_responses=True)
            while "cluster_state:ok" not in node.execute_command("CLUSTER", "INFO") or len(
                node.execute_command("CLUSTER", "NODES").splitlines()
            ) < len(self.ports):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"cluster not ok on port {port}")
                time.sleep(0.1)

    def node_of(self, key: str) -> int:
        """The port of the primary that serves `key`'s slot."""
        slot = int(redis.Redis(port=self.ports[0]).execute_command("CLUSTER", "KEYSLOT", key))
        for start, end, primary, *_ in redis.Redis(port=self.ports[0]).execute_command(
            "CLUSTER", "SLOTS"
        ):
            if start <= slot <= end:
                return int(primary[1])
        raise RuntimeError(f"no node serves slot {slot}")

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
