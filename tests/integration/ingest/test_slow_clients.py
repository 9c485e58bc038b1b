"""Slow and abusive clients cannot take ingest down: the real gunicorn server, real Redis.

Slow connections hold a parked coroutine each (one event loop per process), never a thread the
next request needs; every wait on a client ends at a deadline. The benchmark runs the same
slow-client load (`bench/slow_clients.py`) for 30 s and reports how long the probes waited.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from bench import slow_clients
from config.redis_keys import RedisKeys
from tests.support.harness import WRITE_KEY, FleetProcesses, fleet_env

pytestmark = pytest.mark.integration

SLOW_CONNECTIONS = 64
# Under the 5 s header deadline, so every slow connection is still mid-request at the end.
SLOW_SECONDS = 3.0


@pytest.fixture
def ingest(redis_url: str, key_prefix: str, tmp_path: Path) -> Iterator[tuple[str, int]]:
    fleet = FleetProcesses(
        fleet_env(redis_url, key_prefix, "http://127.0.0.1:9", INGEST_BODY_TIMEOUT_S="1"),
        tmp_path,
    )
    try:
        url = fleet.start_ingest()
        yield url, int(url.rsplit(":", 1)[1])
    finally:
        fleet.stop_all()


def test_64_slow_connections_leave_health_and_batches_answering(
    redis_url: str, key_prefix: str, tmp_path: Path
) -> None:
    # Given ingest as deployed (two processes) and 64 connections trickling a byte a second,
    # half of them in their headers, half in their bodies
    fleet = FleetProcesses(fleet_env(redis_url, key_prefix, "http://127.0.0.1:9"), tmp_path)
    try:
        url = fleet.start_ingest(web_workers=2)
        port = int(url.rsplit(":", 1)[1])
        # When /healthz and an ordinary /v1/batch are asked meanwhile, on new connections
        result = slow_clients.run(
            "127.0.0.1", port, WRITE_KEY, connections=SLOW_CONNECTIONS, seconds=SLOW_SECONDS
        )
    finally:
        fleet.stop_all()
    # Then every probe was answered 200 while all 64 slow requests were still in flight (with
    # gthread workers, eight of them held every thread and the probes waited for ever)
    assert result["failures"] == [], result
    assert result["probes"] >= 4, result
    assert result["still_open"] == SLOW_CONNECTIONS and result["reopened"] == 0, result
    # and each probe's event was stored
    stored = redis.Redis.from_url(redis_url).xlen(RedisKeys(key_prefix, "default").stream(0))
    assert stored == result["probes"] // 2
    print(f"slow clients: probes waited at most {result['max_ms']:.1f} ms")


def _read_until_closed(sock: socket.socket, trickle: bytes, limit_s: float) -> tuple[bytes, int]:
    """Send one byte of `trickle` a second, collecting what the server says, until it closes
    the connection (or limit_s passes); returns the answer and how many bytes were sent."""
    sock.settimeout(1.0)
    answer = b""
    sent = 0
    ends = time.monotonic() + limit_s
    while time.monotonic() < ends:
        try:
            sock.sendall(trickle[sent : sent + 1])
            sent += 1
        except OSError:
            break
        try:
            chunk = sock.recv(4096)
        except TimeoutError:
            continue
        except OSError:
            break
        if not chunk:
            break
        answer += chunk
    return answer, sent


def test_headers_sent_too_slowly_are_cut_off(ingest: tuple[str, int]) -> None:
    _, port = ingest
    headers = b"POST /v1/batch HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"x" * 1000 + b"\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        answer, sent = _read_until_closed(sock, headers, limit_s=30)
    # The server closed the connection without an answer long before the headers were in
    assert answer == b""
    assert sent < len(headers) // 10


def test_a_body_sent_too_slowly_gets_408_and_the_connection_closes(
    ingest: tuple[str, int], redis_url: str, key_prefix: str
) -> None:
    _, port = ingest
    body = json.dumps({"batch": [{"type": "track", "event": "E", "userId": "u"}]}).encode()
    body += b" " * 200
    head = (
        b"POST /v1/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer " + WRITE_KEY.encode() + b"\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(head)
        answer, sent = _read_until_closed(sock, body, limit_s=30)
    status, _, rest = answer.partition(b"\r\n")
    assert status == b"HTTP/1.1 408 Request Timeout", answer
    assert b"connection: close" in rest.lower()
    assert json.loads(rest.split(b"\r\n\r\n", 1)[1])["code"] == "request_timeout"
    assert sent < len(body)
    # and nothing of it was stored
    stored = redis.Redis.from_url(redis_url).xlen(RedisKeys(key_prefix, "default").stream(0))
    assert stored == 0


def test_headers_over_64_kb_get_431_and_the_connection_closes(ingest: tuple[str, int]) -> None:
    _, port = ingest
    head = b"POST /v1/batch HTTP/1.1\r\nHost: x\r\n" + b"X-Big: " + b"x" * 70_000 + b"\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        with contextlib.suppress(OSError):  # the server may close before reading it all
            sock.sendall(head)
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    status, _, rest = answer.partition(b"\r\n")
    assert status == b"HTTP/1.1 431 Request Header Fields Too Large", answer
    assert json.loads(rest.split(b"\r\n\r\n", 1)[1])["code"] == "headers_too_large"


def test_an_idle_connection_closes_at_the_keep_alive_deadline(ingest: tuple[str, int]) -> None:
    _, port = ingest
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        opened = time.monotonic()
        assert sock.recv(1) == b""  # the server closed it, saying nothing
        waited = time.monotonic() - opened
    # gunicorn's keepalive (5 s), kept by a sweep every 0.25 s
    assert 4.5 <= waited <= 8.0, waited


def test_pipelined_requests_are_answered_in_order_on_one_connection(
    ingest: tuple[str, int],
) -> None:
    _, port = ingest
    probe = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    missing = b"GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(probe + missing + probe)
        answer = b""
        while answer.count(b"HTTP/1.1 ") < 3 or not answer.endswith(b"}"):
            chunk = sock.recv(65536)
            assert chunk, answer
            answer += chunk
        statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", answer)
        assert statuses == [b"200", b"404", b"200"]
        # and the connection stays open for the next request
        sock.sendall(probe)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
