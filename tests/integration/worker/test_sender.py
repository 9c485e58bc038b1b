"""The Pushwoosh sender against real local servers: what goes on the wire, every shape of reply
(length, chunks, read to the close, too large, garbage, none), keep-alive reuse and its loss,
deadlines, and TLS."""

from __future__ import annotations

import contextlib
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from config.settings import load_settings
from tests.support.harness import API_KEY, APP_CODE
from worker.pushwoosh import MAX_REPLY_BODY_CHARS, PushwooshClient

pytestmark = pytest.mark.integration

# What the server does with one request's bytes on one connection: answer bytes (a list: pieces
# sent 50 ms apart), or None to close.
Script = Callable[[bytes], bytes | list[bytes] | None]


def _ok(body: bytes = b'{"status_code":200}', *extra: bytes) -> bytes:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + b"".join(extra)
    return head + b"Content-Length: %d\r\n\r\n%s" % (len(body), body)


class ScriptedServer:
    """Reads each request whole (by its Content-Length) and answers what the script says;
    records every request with the port of the connection it came on."""

    def __init__(
        self, script: Script, wrap: ssl.SSLContext | None = None, idle_close_s: float | None = None
    ) -> None:
        self.script = script
        self._idle_close_s = idle_close_s
        self.requests: list[tuple[int, bytes]] = []
        self._wrap = wrap
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, (_, port) = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn, port), daemon=True).start()

    def _serve(self, conn: socket.socket, port: int) -> None:
        with contextlib.suppress(OSError, ssl.SSLError):
            if self._wrap is not None:
                conn = self._wrap.wrap_socket(conn, server_side=True)
            buffered = b""
            conn.settimeout(self._idle_close_s)
            while True:
                while b"\r\n\r\n" not in buffered:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buffered += chunk
                head, _, rest = buffered.partition(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                while len(rest) < length:
                    rest += conn.recv(65536)
                request, buffered = head + b"\r\n\r\n" + rest[:length], rest[length:]
                self.requests.append((port, request))
                answer = self.script(request)
                if answer is None:
                    conn.close()
                    return
                for piece in answer if isinstance(answer, list) else [answer]:
                    conn.sendall(piece)
                    time.sleep(0.05)
        conn.close()

    def close(self) -> None:
        self._listener.close()


@pytest.fixture
def serve() -> Iterator[Callable[..., ScriptedServer]]:
    servers: list[ScriptedServer] = []

    def start(
        script: Script, wrap: ssl.SSLContext | None = None, idle_close_s: float | None = None
    ) -> ScriptedServer:
        servers.append(ScriptedServer(script, wrap, idle_close_s))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def _client(base_url: str, timeout_s: float = 5.0) -> PushwooshClient:
    settings = load_settings(
        {
            "PUSHWOOSH_API_KEY": API_KEY,
            "PUSHWOOSH_APPLICATION_CODE": APP_CODE,
            "PUSHWOOSH_BASE_URL": base_url,
            "PUSHWOOSH_TIMEOUT_S": str(timeout_s),
        }
    )
    return PushwooshClient(settings)


def test_the_request_is_a_whole_http_post_and_keep_alive_carries_the_next(serve) -> None:
    server = serve(lambda _: _ok(b'{"ok":1}', b"Retry-After: 7\r\n"))
    client = _client(f"http://127.0.0.1:{server.port}")
    first = client.send("/postEvents", {}, data=b'{"events":[]}')
    second = client.send("/registerUser", {"a": 1})
    assert (first.status, first.body, first.headers["Retry-After"]) == (200, '{"ok":1}', "7")
    assert second.status == 200 and second.transport_error is None
    (port_1, raw_1), (port_2, raw_2) = server.requests
    assert port_1 == port_2  # one connection for both
    head, _, body = raw_1.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /integration-segment/v1/postEvents HTTP/1.1"
    headers = dict(line.split(": ", 1) for line in lines[1:])
    assert headers["Host"] == f"127.0.0.1:{server.port}"
    assert headers["Authorization"] == f"Token {API_KEY}"
    assert headers["X-PW-Appcode"] == APP_CODE
    assert headers["Content-Type"] == "application/json"
    assert headers["Content-Length"] == "13" and body == b'{"events":[]}'
    assert raw_2.endswith(b'\r\n\r\n{"a":1}')


def test_chunked_and_close_delimited_replies_are_read_whole(serve) -> None:
    replies = iter(
        [
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
            b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\r\nbusy, read to the end",
            _ok(b"again"),
        ]
    )
    server = serve(lambda _: next(replies))
    client = _client(f"http://127.0.0.1:{server.port}")
    chunked = client.send("/postEvents", {})
    to_close = client.send("/postEvents", {})
    after = client.send("/postEvents", {})
    assert (chunked.status, chunked.body) == (200, "hello world")
    assert (to_close.status, to_close.body) == (503, "busy, read to the end")
    assert (after.status, after.body) == (200, "again")
    ports = [port for port, _ in server.requests]
    assert ports[0] == ports[1] != ports[2]  # the closed connection was not reused


def test_an_interim_answer_is_skipped_for_the_reply_after_it(serve) -> None:
    server = serve(lambda _: [b"HTTP/1.1 100 Continue\r\n\r\n", _ok(b"final", b"X-N: 2\r\n")])
    client = _client(f"http://127.0.0.1:{server.port}")
    replies = [client.send("/postEvents", {}) for _ in range(2)]
    assert [(r.status, r.body, r.headers.get("X-N")) for r in replies] == [(200, "final", "2")] * 2
    assert len({port for port, _ in server.requests}) == 1


def test_a_reply_over_64_kb_is_cut_and_its_connection_dropped(serve) -> None:
    server = serve(lambda _: _ok(b"x" * 200_000))
    client = _client(f"http://127.0.0.1:{server.port}")
    replies = [client.send("/postEvents", {}) for _ in range(2)]
    assert [r.status for r in replies] == [200, 200]
    assert all(len(r.body) == MAX_REPLY_BODY_CHARS for r in replies)
    first_port, second_port = (port for port, _ in server.requests)
    assert first_port != second_port


def test_a_connection_the_server_closed_while_idle_is_replaced(serve) -> None:
    # A server (or proxy) that closes keep-alive connections idle for 0.2 s
    answers = iter([_ok(b"1"), _ok(b"2")])
    server = serve(lambda _: next(answers), idle_close_s=0.2)
    client = _client(f"http://127.0.0.1:{server.port}")
    assert client.send("/postEvents", {}).body == "1"
    time.sleep(0.5)
    # the closed connection is noticed before sending, and a new one carries the request
    reply = client.send("/postEvents", {})
    assert (reply.status, reply.body, reply.transport_error) == (200, "2", None)
    first_port, second_port = (port for port, _ in server.requests)
    assert first_port != second_port


def test_no_answer_garbage_and_refusal_are_connection_errors(serve) -> None:
    closing = serve(lambda _: None)
    garbage = serve(lambda _: b"this is not HTTP\r\n\r\n")
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        refused_port = unused.getsockname()[1]
    errors = [
        _client(f"http://127.0.0.1:{port}").send("/postEvents", {}).transport_error
        for port in (closing.port, garbage.port, refused_port)
    ]
    assert errors[0] == "connection error (RemoteDisconnected)"
    assert (errors[1] or "").startswith("connection error (HttpParser")  # httptools' error
    assert errors[2] == "connection error (ConnectionRefusedError)"


def test_a_trickled_reply_is_cut_off_at_the_deadline(serve) -> None:
    def trickle(_: bytes) -> bytes | None:
        time.sleep(5)  # the reply never comes in time
        return _ok()

    server = serve(trickle)
    client = _client(f"http://127.0.0.1:{server.port}", timeout_s=10)
    started = time.monotonic()
    reply = client.send("/postEvents", {}, deadline_s=0.5)
    assert reply.transport_error == "timed out" and reply.status is None
    assert time.monotonic() - started < 2.5


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def test_https_verifies_the_server_and_reuses_the_connection(
    serve, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = _self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server = serve(lambda _: _ok(b"secure"), wrap=context)
    url = f"https://localhost:{server.port}"
    # Not trusted: the certificate is refused
    refused = _client(url).send("/postEvents", {})
    assert refused.status is None and "SSL" in (refused.transport_error or "")
    # Trusted (as a private CA would be, through OpenSSL's SSL_CERT_FILE)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    client = _client(url)
    replies = [client.send("/postEvents", {}) for _ in range(2)]
    assert [(r.status, r.body) for r in replies] == [(200, "secure"), (200, "secure")]
    assert len({port for port, _ in server.requests}) == 1
