"""gunicorn's gevent worker, sending a response's head and body in one write.

gunicorn sends a response's head (status line and headers) as soon as the body's first piece
is written, then that piece, in a second `sendall`: two system calls and two passes through
gevent's socket layer for every answer, where ingest's answers are one short piece each. This
worker hands gunicorn the client's socket behind `_HeadWithBody`, which holds the first write
until the next one and sends both together; whatever is still held when the request is done
(an answer without a body, or one cut short) is sent then. Everything else on the socket goes
straight through, once the held bytes are out.
"""

from __future__ import annotations

from typing import Any

from gunicorn.workers.ggevent import GeventWorker


class IngestWorker(GeventWorker):  # type: ignore[misc]
    def handle_request(self, listener_name: Any, req: Any, sock: Any, addr: Any) -> None:
        out = _HeadWithBody(sock)
        try:
            super().handle_request(listener_name, req, out, addr)
        except BaseException:
            out.send_held(quietly=True)  # the connection is closing: the answer, if it can
            raise
        out.send_held()


class _HeadWithBody:
    """A client socket whose first `sendall` waits for the second, to go out with it."""

    __slots__ = ("_first", "_held", "_sock")

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._held = b""
        self._first = True

    def sendall(self, data: bytes) -> None:
        if self._first:
            self._first = False
            if data:
                self._held = bytes(data)
                return
        if self._held:
            data, self._held = self._held + data, b""
        self._sock.sendall(data)

    def send_held(self, *, quietly: bool = False) -> None:
        if not self._held:
            return
        held, self._held = self._held, b""
        try:
            self._sock.sendall(held)
        except OSError:
            if not quietly:
                raise

    def __getattr__(self, name: str) -> Any:
        # Anything else may write (send, sendfile), close or hand out the socket: what is held
        # goes first, so bytes never leave out of order.
        self.send_held()
        return getattr(self._sock, name)
