"""The load generator, run in its own process: `python -m bench.loadgen SPEC.json`.

All request bytes are rendered before the clock starts. Then either
- closed loop: `connections` keep-alive connections each send the next request as soon as the
  previous one is answered (saturation), or
- open loop: requests are due at a fixed rate whatever the server does; latency is measured from
  the moment a request was due, so a slow server cannot hide its queueing (no coordinated
  omission).
It writes one record per request (due, sent, answered, status) to the spec's `out` file.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

from bench.events import SENT_PLACEHOLDER, batch_body, http_request, webhook_body


class Connection:
    def __init__(self, port: int) -> None:
        self._port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _connect(self) -> None:
        self._reader, self._writer = await asyncio.open_connection("127.0.0.1", self._port)

    async def send(self, data: bytes) -> int:
        for attempt in range(3):
            try:
                if self._writer is None:
                    await self._connect()
                assert self._reader is not None and self._writer is not None
                self._writer.write(data)
                head = await self._reader.readuntil(b"\r\n\r\n")
                status = int(head[9:12])
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                if length:
                    await self._reader.readexactly(length)
                if b"connection: close" in head.lower():
                    self.close()
                return status
            except (OSError, asyncio.IncompleteReadError):
                # The server closed an idle keep-alive connection: reconnect and send again
                # (every event has its messageId, so a repeat is deduplicated, not doubled).
                self.close()
                if attempt == 2:
                    return 0
        return 0

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None


def build_requests(spec: dict[str, Any]) -> list[bytes]:
    route, tag, per = spec["route"], spec["tag"], spec["batch"]
    path = "/webhook" if route == "webhook" else "/v1/batch"
    out = []
    for i in range(spec["requests"]):
        first = spec["seq_start"] + i * per
        body = webhook_body(tag, first) if route == "webhook" else batch_body(tag, first, per)
        out.append(http_request(path, route, body))
    return out


def stamp(data: bytes) -> bytes:
    """Splice the send time into every event's `sent` property (same width, same length)."""
    return data.replace(SENT_PLACEHOLDER, b'"sent":%.6f' % time.time())


async def run_closed(
    spec: dict[str, Any], requests: list[bytes], records: list[list[float]]
) -> None:
    deadline = time.time() + spec["duration_s"] if spec.get("duration_s") else None
    next_index = 0

    async def client() -> None:
        nonlocal next_index
        conn = Connection(spec["port"])
        while next_index < len(requests):
            if deadline is not None and time.time() >= deadline:
                break
            i = next_index
            next_index += 1
            sent = time.time()
            status = await conn.send(stamp(requests[i]))
            records.append([i, sent, sent, time.time(), status])
        conn.close()

    await asyncio.gather(*(client() for _ in range(spec["connections"])))


async def run_open(spec: dict[str, Any], requests: list[bytes], records: list[list[float]]) -> None:
    loop = asyncio.get_running_loop()
    pool: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(spec["connections"]):
        pool.put_nowait(Connection(spec["port"]))
    interval = 1.0 / spec["rate_rps"]
    mono0 = loop.time() + 0.05
    wall0 = time.time() + 0.05
    end = mono0 + spec["duration_s"] if spec.get("duration_s") else None
    tasks = set()

    async def one(i: int, due: float, conn: Connection) -> None:
        sent = time.time()
        status = await conn.send(stamp(requests[i]))
        records.append([i, due, sent, time.time(), status])
        pool.put_nowait(conn)

    for i in range(len(requests)):
        due_mono = mono0 + i * interval
        if end is not None and due_mono >= end:
            break
        delay = due_mono - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        conn = await pool.get()
        task = asyncio.create_task(one(i, wall0 + i * interval, conn))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    while tasks:
        await asyncio.gather(*list(tasks))


def main(spec_path: str) -> None:
    with open(spec_path) as spec_file:
        spec = json.load(spec_file)
    requests = build_requests(spec)
    records: list[list[float]] = []
    started = time.time()
    runner = run_open if spec["mode"] == "open" else run_closed
    asyncio.run(runner(spec, requests, records))
    result = {"started": started, "finished": time.time(), "records": records}
    with open(spec["out"], "w") as out:
        json.dump(result, out)


if __name__ == "__main__":
    main(sys.argv[1])
