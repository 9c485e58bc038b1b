"""The ingest worker's socket sends a response's head and body in one write, in order."""

from __future__ import annotations

from typing import Any

import pytest

from ingest.gunicorn_worker import _HeadWithBody


class Recording:
    """A socket that records what is done to it."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.fail = fail

    def sendall(self, data: bytes) -> None:
        if self.fail:
            raise BrokenPipeError
        self.calls.append(("sendall", data))

    def send(self, data: bytes) -> int:
        self.calls.append(("send", data))
        return len(data)

    def close(self) -> None:
        self.calls.append(("close", None))


def test_head_and_body_leave_in_one_write() -> None:
    sock = Recording()
    out = _HeadWithBody(sock)
    out.sendall(b"HTTP/1.1 200 OK\r\n\r\n")
    assert sock.calls == []
    out.sendall(b'{"success": true}')
    out.send_held()
    assert sock.calls == [("sendall", b'HTTP/1.1 200 OK\r\n\r\n{"success": true}')]


def test_later_pieces_go_straight_through() -> None:
    sock = Recording()
    out = _HeadWithBody(sock)
    for piece in (b"head", b"one", b"two"):
        out.sendall(piece)
    assert sock.calls == [("sendall", b"headone"), ("sendall", b"two")]


def test_an_answer_without_a_body_is_sent_when_the_request_is_done() -> None:
    sock = Recording()
    out = _HeadWithBody(sock)
    out.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")
    out.send_held()
    out.send_held()
    assert sock.calls == [("sendall", b"HTTP/1.1 204 No Content\r\n\r\n")]


def test_anything_else_on_the_socket_comes_after_what_is_held() -> None:
    sock = Recording()
    out = _HeadWithBody(sock)
    out.send(b"HTTP/1.1 100 Continue\r\n\r\n")  # nothing held: straight through
    out.sendall(b"head")
    out.close()
    assert sock.calls == [
        ("send", b"HTTP/1.1 100 Continue\r\n\r\n"),
        ("sendall", b"head"),
        ("close", None),
    ]


def test_a_failed_send_raises_unless_the_connection_is_closing_anyway() -> None:
    closing = _HeadWithBody(Recording(fail=True))
    closing.sendall(b"head")
    closing.send_held(quietly=True)
    done = _HeadWithBody(Recording(fail=True))
    done.sendall(b"head")
    with pytest.raises(BrokenPipeError):
        done.send_held()
