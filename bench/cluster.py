"""A real Redis Cluster on this machine: N primaries (no replicas, one is enough) on loopback
ports, in a directory of the caller's (the scaling bench and the tests).

The slots are split evenly with CLUSTER ADDSLOTSRANGE and the nodes introduced with CLUSTER
MEET, as `redis-cli --cluster create` does (which refuses fewer than three primaries). Each
node's cluster bus gets its own free port (`cluster-port`), so nothing depends on port + 10000
being free. Needs Redis 7 or newer on PATH (Debian's redis-server; `make test` installs it).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

import redis

from fleet.embedded_redis import free_port

MISSING = "a Redis Cluster needs redis-server 7 or newer on PATH (Debian's redis-server)"
SLOTS = 16384


def cluster_tools() -> str | None:
    """The redis-server on PATH, when it is Redis 7 or newer."""
    server = shutil.which("redis-server")
    if server is None:
        return None
    version = subprocess.run([server, "--version"], capture_output=True, text=True).stdout
    found = re.search(r"v=(\d+)\.", version)
    return server if found and int(found.group(1)) >= 7 else None


class LocalCluster:
    def __init__(self, base: Path, primaries: int = 3) -> None:
        server = cluster_tools()
        if server is None:
            raise RuntimeError(MISSING)
        self.base = base
        self.server = server
        self.ports = [free_port() for _ in range(primaries)]
        self.bus_ports = {port: free_port() for port in self.ports}
        self.processes: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports) + "/"

    def _start_node(self, port: int) -> None:
        conf = self.base / f"node-{port}.conf"
        if not conf.exists():
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {self.base}\ncluster-enabled yes\n"
                f"cluster-config-file nodes-{port}.conf\ncluster-port {self.bus_ports[port]}\n"
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
        self.base.mkdir(parents=True, exist_ok=True)
        for port in self.ports:
            self._start_node(port)
        count = len(self.ports)
        for i, port in enumerate(self.ports):
            node = redis.Redis(port=port)
            node.execute_command("CLUSTER", "SET-CONFIG-EPOCH", i + 1)
            first, last = SLOTS * i // count, SLOTS * (i + 1) // count - 1
            node.execute_command("CLUSTER", "ADDSLOTSRANGE", first, last)
        for port in self.ports[1:]:
            redis.Redis(port=self.ports[0]).execute_command(
                "CLUSTER", "MEET", "127.0.0.1", port, self.bus_ports[port]
            )
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
