"""A fast recording Pushwoosh stand-in, run in its own process: `python -m bench.standin PORT`.

asyncio with a hand-rolled HTTP/1.1 keep-alive parser, so it costs far less CPU per request than
the fleet spends making one. Every request is answered 200 with an empty body (Pushwoosh's usual
success). It records the receipt time of every request, how many events it carried, and for
every event its `bench_seq` (found with one regex over the raw body, no JSON decoding).

Control routes on the same port: GET /_bench/stats (JSON counters), POST /_bench/reset, and
POST /_bench/dump with a directory path as body (writes the recorded arrays there as binary).
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from array import array
from pathlib import Path

_SEQ = re.compile(rb'"bench_seq": ?(\d+)')
_OK_EMPTY = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 0\r\n\r\n"


class Recorder:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.req_times = array("d")
        self.req_sizes = array("l")
        self.seqs = array("q")
        self.seq_times = array("d")
        self.by_path: dict[str, int] = {}

    def record(self, path: str, body: bytes) -> None:
        now = time.time()
        found = _SEQ.findall(body)
        self.req_times.append(now)
        self.req_sizes.append(len(found))
        self.seqs.extend(map(int, found))
        self.seq_times.extend([now] * len(found))
        self.by_path[path] = self.by_path.get(path, 0) + 1

    def stats(self) -> dict[str, object]:
        return {
            "requests": len(self.req_times),
            "events": len(self.seqs),
            "first": self.req_times[0] if self.req_times else None,
            "last": self.req_times[-1] if self.req_times else None,
            "by_path": self.by_path,
        }

    def dump(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        for name in ("req_times", "req_sizes", "seqs", "seq_times"):
            with open(directory / f"{name}.bin", "wb") as out:
                getattr(self, name).tofile(out)


class _Http(asyncio.Protocol):
    def __init__(self, recorder: Recorder) -> None:
        self._recorder = recorder
        self._buf = bytearray()
        self._need: int | None = None
        self._method = b""
        self._path = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._buf += data
        while True:
            if self._need is None:
                end = self._buf.find(b"\r\n\r\n")
                if end < 0:
                    return
                head = bytes(self._buf[:end])
                del self._buf[: end + 4]
                line, _, headers = head.partition(b"\r\n")
                parts = line.split(b" ")
                self._method, self._path = parts[0], parts[1] if len(parts) > 1 else b"/"
                self._need = 0
                for header in headers.split(b"\r\n"):
                    name, _, value = header.partition(b":")
                    if name.strip().lower() == b"content-length":
                        self._need = int(value)
            if len(self._buf) < self._need:
                return
            body = bytes(self._buf[: self._need])
            del self._buf[: self._need]
            self._need = None
            self._answer(self._method, self._path.decode("latin-1"), body)

    def _answer(self, method: bytes, path: str, body: bytes) -> None:
        assert self._transport is not None
        if not path.startswith("/_bench/"):
            self._recorder.record(path, body)
            self._transport.write(_OK_EMPTY)
            return
        reply: object = {"ok": True}
        if path == "/_bench/stats":
            reply = self._recorder.stats()
        elif path == "/_bench/reset":
            self._recorder.reset()
        elif path == "/_bench/dump":
            self._recorder.dump(Path(body.decode()))
        payload = json.dumps(reply).encode()
        self._transport.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
            % (len(payload), payload)
        )


async def serve(port: int) -> None:
    recorder = Recorder()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Http(recorder), "127.0.0.1", port, backlog=1024)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1])))
