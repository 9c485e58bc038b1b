"""The stand-in for Pushwoosh records what a server would process, and only that."""

from __future__ import annotations

import socket
import time

import pytest

from tests.support.pushwoosh_stub import PushwooshStub

pytestmark = pytest.mark.integration


def _post(port: int, declared: int, body: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        head = (
            f"POST /json/1.3/postEvents HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: application/json\r\nContent-Length: {declared}\r\n\r\n"
        )
        sock.sendall(head.encode() + body)
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(5)
        while sock.recv(4096):  # until the stand-in answers and closes, or just closes
            pass


def _settled(stub: PushwooshStub, count: int) -> None:
    deadline = time.monotonic() + 5
    while len(stub.requests) + stub.abandoned < count and time.monotonic() < deadline:
        time.sleep(0.01)


def test_a_request_whose_client_left_mid_body_is_not_recorded() -> None:
    # Given a client that sends its head and part of its body, then goes (a killed worker)
    stub = PushwooshStub().start()
    try:
        port = int(stub.url.rsplit(":", 1)[1])
        _post(port, declared=100, body=b'{"events":[')
        # And one that sends the whole request
        _post(port, declared=2, body=b"{}")
        _settled(stub, 2)
        # Then only the whole one was received
        assert [request.json for request in stub.requests] == [{}]
        assert stub.abandoned == 1
    finally:
        stub.stop()
