"""Serving a process's metrics on a listener of its own (never ingest's public port).

- One process: its registry (`telemetry.metrics.PROCESS_REGISTRY`).
- A process that forks the processes that count (the gunicorn master, a Celery worker with the
  prefork pool): prometheus-client's multiprocess mode. The parent makes a fresh directory,
  each child switches to it before it makes its metrics (`use_multiprocess`), and the parent
  serves the sum over the directory's files; a child that exits keeps its counts there.

Every listener also serves `pushwoosh_fleet_build_info` and the standard `process_*` metrics,
summed over the process and its children (a gunicorn master and its workers are one ingest
server to whoever sizes it).
"""

from __future__ import annotations

import dataclasses
import glob
import logging
import os
import platform
import resource
import socket
import socketserver
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from importlib import metadata
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app, multiprocess, values
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from telemetry.metrics import NAMESPACE, PROCESS_REGISTRY

logger = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Summed over a process tree; the others (start time, fd limit) are the serving process's own.
_SUMMED = (
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "process_virtual_memory_bytes",
    "process_open_fds",
)


def page_size() -> int:
    return resource.getpagesize()


def version() -> str:
    try:
        return metadata.version("pushwoosh-fleet")
    except metadata.PackageNotFoundError:
        return "unknown"


class BuildInfo(Collector):
    """`pushwoosh_fleet_build_info{version, python, role} 1`: what runs where."""

    def __init__(self, role: str) -> None:
        self._labels = [version(), platform.python_version(), role]

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            f"{NAMESPACE}_build_info",
            "the fleet's version, Python's, and the process's role (ingest, worker, fleet)",
            labels=["version", "python", "role"],
        )
        family.add_metric(self._labels, 1.0)
        yield family


def _children(pid: int, proc: str = "/proc") -> list[int]:
    found = []
    for path in glob.glob(os.path.join(proc, "[0-9]*", "stat")):
        try:
            with open(path, "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        if int(fields[1]) == pid:
            found.append(int(path.split(os.sep)[-2]))
    return found


def _fixed(pid: int) -> Callable[[], int]:
    return lambda: pid


class ProcessTree(Collector):
    """The standard process metrics, CPU, memory and open files summed over this process and
    its children (memory shared between them is counted in each)."""

    def __init__(self, proc: str = "/proc", pid: Callable[[], int] = os.getpid) -> None:
        self._proc = proc
        self._pid = pid

    def collect(self) -> Iterator[Metric]:
        me = self._pid()
        families: dict[str, Metric] = {}
        for pid in [me, *_children(me, self._proc)]:
            collector = ProcessCollector(pid=_fixed(pid), proc=self._proc, registry=None)
            for family in collector.collect():
                name = family.name + ("_total" if family.type == "counter" else "")
                if name not in families:
                    if pid != me:
                        continue  # only summed families may come from children
                    families[name] = family
                elif name in _SUMMED:
                    families[name].samples[0] = (
                        families[name]
                        .samples[0]
                        ._replace(value=families[name].samples[0].value + family.samples[0].value)
                    )
        yield from families.values()


def use_multiprocess(directory: str) -> None:
    """From now on this process's metrics go to `directory` (call it before they are made).

    prometheus-client picks its value class when first imported; a child forked from a parent
    that imported it first switches here, explicitly.
    """
    os.environ[MULTIPROC_ENV] = directory
    values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]


def fresh_multiprocess_dir(role: str) -> str:
    """A new, empty directory for one parent's children, inside PROMETHEUS_MULTIPROC_DIR when
    set (a tmpfs in a container), else in the system's temporary directory. One per parent, so
    an ingest server and a worker on one machine never read each other's files; the parent
    removes it when it stops."""
    parent = os.environ.get(MULTIPROC_ENV) or None
    if parent is not None:
        os.makedirs(parent, exist_ok=True)
    return tempfile.mkdtemp(prefix=f"pushwoosh-fleet-{role}-metrics-", dir=parent)


def mark_process_dead(pid: int, directory: str) -> None:
    """A child exited: its live gauges go; its counters stay in the sums."""
    multiprocess.mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]


class _Registered(Collector):
    """Another registry's metrics, as one collector."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterable[Metric]:
        return self._registry.collect()


def serving_registry(role: str, multiprocess_dir: str | None = None) -> CollectorRegistry:
    """What a listener serves: this process's metrics, or its children's sum, with the build
    and process metrics."""
    registry = CollectorRegistry(auto_describe=False)
    if multiprocess_dir is None:
        registry.register(_Registered(PROCESS_REGISTRY))
    else:
        multiprocess.MultiProcessCollector(registry, path=multiprocess_dir)  # type: ignore[no-untyped-call]
    registry.register(BuildInfo(role))
    registry.register(ProcessTree())
    return registry


@dataclasses.dataclass(frozen=True)
class Listener:
    address: str
    port: int
    stop: Callable[[], None]

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}/metrics"


WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class _ThreadingServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return


def _family(address: str, port: int) -> socket.AddressFamily:
    """IPv6 for an IPv6 address (`::`), else IPv4, as prometheus-client picks."""
    infos = socket.getaddrinfo(address, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    return infos[0][0] if infos else socket.AF_INET


def serve_app(app: WsgiApp, address: str, port: int, what: str) -> Listener | None:
    """Serve a WSGI app on address:port from daemon threads (one per request); None when off
    (port 0) or when the port is taken (logged: delivery matters more than its metrics)."""
    if port == 0:
        return None
    try:
        server_class = type(
            "Server", (_ThreadingServer,), {"address_family": _family(address, port)}
        )
        server: WSGIServer = make_server(
            address, port, app, server_class, handler_class=_QuietHandler
        )
    except OSError as ex:
        logger.error(
            "%s metrics: cannot listen on %s:%d (%s); set its port setting to a free one, or 0",
            what, address, port, ex.strerror or ex,
        )  # fmt: skip
        return None
    thread = threading.Thread(target=server.serve_forever, name=f"{what}-listener", daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    logger.info("%s metrics on http://%s:%d/metrics", what, address, port)
    return Listener(address, port, stop)


def registry_of(registry: CollectorRegistry | Iterable[Collector]) -> CollectorRegistry:
    if isinstance(registry, CollectorRegistry):
        return registry
    collected = CollectorRegistry(auto_describe=False)
    for collector in registry:
        collected.register(collector)
    return collected


def serve(
    registry: CollectorRegistry | Iterable[Collector], address: str, port: int, what: str
) -> Listener | None:
    """Serve /metrics on address:port (see serve_app)."""
    return serve_app(make_wsgi_app(registry_of(registry)), address, port, what)
