"""Slow clients against ingest: many connections trickle one byte a second while ordinary
requests are timed.

Half the slow connections trickle a request's headers, half send complete headers and then
trickle the body; one whose connection the server closes (a deadline passed) opens another, so
`connections` slow requests are in flight the whole time, as an attacker would keep them. A
probe asks `GET /healthz`, then posts an ordinary one-event `/v1/batch`, on a new connection
each, every `probe_interval_s`. The suite runs this for a few seconds
(tests/integration/ingest/test_slow_clients.py); the benchmark for 30 s.

    python -m bench.slow_clients PORT WRITE_KEY [CONNECTIONS] [SECONDS]
"""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import threading
import time
import uuid
from typing import Any

import requests

_HEADERS_PREFIX = b"POST /v1/batch HTTP/1.1\r\nHost: ingest\r\nX-Slow: "
_BODY_LENGTH = 100_000


class _Slow:
    """One slow request on one connection."""

    def __init__(self, host: str, port: int, body_mode: bool) -> None:
        self.sock = socket.create_connection((host, port), timeout=10)
        self.body_mode = body_mode
        if body_mode:
            self.sock.sendall(
                b"POST /v1/batch HTTP/1.1\r\nHost: ingest\r\nContent-Type: application/json\r\n"
                b"Content-Length: " + str(_BODY_LENGTH).encode() + b"\r\n\r\n"
            )
            self.data = b" " * _BODY_LENGTH
        else:
            self.data = _HEADERS_PREFIX + b"x" * _BODY_LENGTH
        self.sent = 0

    def send_one(self) -> bool:
        """Send the next byte; False once the server closed the connection."""
        try:
            self.sock.sendall(self.data[self.sent : self.sent + 1])
        except OSError:
            return False
        self.sent += 1
        return self.is_open()

    def is_open(self) -> bool:
        """Still open, and the server has not answered (it is mid-request)."""
        self.sock.setblocking(False)
        try:
            self.sock.recv(1, socket.MSG_PEEK)  # an answer, or b"" once the server closed
        except BlockingIOError:
            return True
        except OSError:
            return False
        finally:
            self.sock.setblocking(True)
        return False

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


def run(
    host: str,
    port: int,
    write_key: str,
    *,
    connections: int = 64,
    seconds: float = 30.0,
    probe_interval_s: float = 0.25,
) -> dict[str, Any]:
    """Measure; return the probes' latencies (ms), failures and what the slow connections saw."""
    slow = [_Slow(host, port, body_mode=i % 2 == 1) for i in range(connections)]
    stop = threading.Event()
    counts = {"reopened": 0}

    def trickle() -> None:
        while not stop.wait(1.0):
            for index, each in enumerate(slow):
                if not each.send_one():
                    each.close()
                    counts["reopened"] += 1
                    with contextlib.suppress(OSError):
                        slow[index] = _Slow(host, port, each.body_mode)

    for each in slow:
        each.send_one()
    trickler = threading.Thread(target=trickle, name="slow-clients", daemon=True)
    trickler.start()
    base = f"http://{host}:{port}"
    latencies: dict[str, list[float]] = {"healthz": [], "batch": []}
    failures: list[str] = []
    ends = time.monotonic() + seconds
    try:
        while time.monotonic() < ends:
            _probe(base, write_key, latencies, failures)
            time.sleep(probe_interval_s)
        still_open = sum(1 for each in slow if each.is_open())
    finally:
        stop.set()
        trickler.join(timeout=5)
        for each in slow:
            each.close()
    return {
        "connections": connections,
        "seconds": seconds,
        "probes": sum(len(v) for v in latencies.values()),
        "failures": failures,
        "healthz_max_ms": max(latencies["healthz"], default=float("nan")),
        "batch_max_ms": max(latencies["batch"], default=float("nan")),
        "max_ms": max(latencies["healthz"] + latencies["batch"], default=float("nan")),
        "still_open": still_open,
        "reopened": counts["reopened"],
    }


def _probe(
    base: str, write_key: str, latencies: dict[str, list[float]], failures: list[str]
) -> None:
    event = {"type": "track", "event": "Probe", "userId": "probe", "messageId": uuid.uuid4().hex}
    for name, call in (
        ("healthz", lambda: requests.get(f"{base}/healthz", timeout=30)),
        (
            "batch",
            lambda: requests.post(
                f"{base}/v1/batch",
                json={"batch": [event]},
                headers={"Authorization": f"Bearer {write_key}"},
                timeout=30,
            ),
        ),
    ):
        started = time.monotonic()
        try:
            status = call().status_code
        except requests.RequestException as ex:
            status, detail = 0, type(ex).__name__
        else:
            detail = str(status)
        latencies[name].append((time.monotonic() - started) * 1000)
        if status != 200:
            failures.append(f"{name}: {detail}")


if __name__ == "__main__":
    args = sys.argv[1:]
    result = run(
        "127.0.0.1",
        int(args[0]),
        args[1],
        connections=int(args[2]) if len(args) > 2 else 64,
        seconds=float(args[3]) if len(args) > 3 else 30.0,
    )
    print(json.dumps(result))
