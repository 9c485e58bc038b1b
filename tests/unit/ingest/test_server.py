"""Ingest's transport sends an answer's head and body in one write, in order, and holds nothing
longer than the answer it belongs to."""

from __future__ import annotations

from typing import Any

from ingest.server import _HeadWithBody

HEAD = b"HTTP/1.1 200 OK\r\ncontent-length: 17\r\n\r\n"
BODY = b'{"success": true}'


class Recording:
    """A transport that records what is done to it."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.calls.append(("write", data))

    def close(self) -> None:
        self.closing = True
        self.calls.append(("close", None))

    def abort(self) -> None:
        self.closing = True
        self.calls.append(("abort", None))

    def is_closing(self) -> bool:
        return self.closing

    def pause_reading(self) -> None:
        self.calls.append(("pause_reading", None))


def test_head_and_body_leave_in_one_write() -> None:
    transport = Recording()
    out = _HeadWithBody(transport)  # type: ignore[arg-type]
    out.write(HEAD)
    assert transport.calls == []
    out.write(BODY)
    out.answered()
    assert transport.calls == [("write", HEAD + BODY)]


def test_each_answer_on_a_kept_alive_connection_is_one_write() -> None:
    transport = Recording()
    out = _HeadWithBody(transport)  # type: ignore[arg-type]
    for _ in range(3):
        out.write(HEAD)
        out.write(BODY)
        out.answered()
    assert transport.calls == [("write", HEAD + BODY)] * 3


def test_an_answer_without_a_body_leaves_when_it_is_complete() -> None:
    transport = Recording()
    out = _HeadWithBody(transport)  # type: ignore[arg-type]
    out.write(b"HTTP/1.1 204 No Content\r\n\r\n")
    out.answered()
    out.answered()
    assert transport.calls == [("write", b"HTTP/1.1 204 No Content\r\n\r\n")]


def test_later_pieces_of_a_streamed_body_go_straight_through() -> None:
    transport = Recording()
    out = _HeadWithBody(transport)  # type: ignore[arg-type]
    for piece in (HEAD, b"one", b"two"):
        out.write(piece)
    assert transport.calls == [("write", HEAD + b"one"), ("write", b"two")]


def test_100_continue_and_whole_answers_are_never_held() -> None:
    transport = Recording()
    out = _HeadWithBody(transport)  # type: ignore[arg-type]
    out.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    # uvicorn's own 400 for a request it cannot parse: head and body in one piece
    out.write(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 3\r\n\r\nbad")
    assert transport.calls == [
        ("write", b"HTTP/1.1 100 Continue\r\n\r\n"),
        ("write", b"HTTP/1.1 400 Bad Request\r\ncontent-length: 3\r\n\r\nbad"),
    ]


def test_closing_sends_what_is_held_first_and_aborting_drops_it() -> None:
    closed, aborted = Recording(), Recording()
    for transport, end in ((closed, "close"), (aborted, "abort")):
        out = _HeadWithBody(transport)  # type: ignore[arg-type]
        out.write(HEAD)
        getattr(out, end)()
    assert closed.calls == [("write", HEAD), ("close", None)]
    assert aborted.calls == [("abort", None)]


def test_everything_else_is_the_transport_s_own() -> None:
    transport = Recording()
    out = _HeadWithBody(transport)  # type: ignore[arg-type]
    out.pause_reading()
    assert transport.calls == [("pause_reading", None)]
    assert out.is_closing() is False
