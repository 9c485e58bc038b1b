"""`pushwoosh-fleet replay FILE`: send an NDJSON file of Segment events through the fleet.

FILE may be gzipped (recognised by its content, whatever its name) and `-` reads standard
input, so `zcat`, `aws s3 cp ... -` and friends can pipe an archive straight in.

Events go to ingest's `/v1/batch` over HTTP like from any Segment library, so they pass the same
validation, dedupe and limits. Lines are sent in batches (and under the request size limit);
a batch ingest refuses as invalid is resent one event at a time, so each bad line is reported
with ingest's own reason. 429 and 503 are retried after their Retry-After. Lines that are not
JSON objects are reported by line number and skipped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import io
import json
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import requests
from tqdm import tqdm

# Ingest refuses requests over 500 KB (Segment's limit); stay under it with room to spare.
MAX_REQUEST_BYTES = 450 * 1024
MAX_BUSY_RETRIES = 30
MAX_RETRY_AFTER_S = 60.0


class ReplayError(Exception):
    """Raised when the replay cannot go on at all (ingest unreachable, write key refused)."""


@dataclasses.dataclass
class ReplaySummary:
    lines: int = 0
    accepted: int = 0
    rejected: list[tuple[int, str]] = dataclasses.field(default_factory=list)
    busy_retries: int = 0

    @property
    def ok(self) -> bool:
        return not self.rejected

    def format(self) -> str:
        lines = [
            f"{self.lines} lines read, {self.accepted} events accepted, "
            f"{len(self.rejected)} rejected"
            + (f", {self.busy_retries} requests retried (ingest busy)" if self.busy_retries else "")
        ]
        lines.append(
            "(ingest drops repeats of a messageId it saw within DEDUPE_WINDOW_S; they count as "
            "accepted here)"
        )
        for line_no, reason in sorted(self.rejected):
            lines.append(f"  line {line_no}: {reason}")
        return "\n".join(lines)


Item = tuple[int, dict[str, Any], int]  # line number, event, size in bytes


GZIP_MAGIC = b"\x1f\x8b"


def _is_gzip(raw: IO[bytes]) -> bool:
    if isinstance(raw, io.BufferedReader):
        return raw.peek(2)[:2] == GZIP_MAGIC
    if raw.seekable():
        head = raw.read(2)
        raw.seek(-len(head), io.SEEK_CUR)
        return head == GZIP_MAGIC
    return False


@contextlib.contextmanager
def open_lines(source: str | Path, stdin: IO[bytes] | None = None) -> Iterator[Iterable[bytes]]:
    """The NDJSON lines of a file or of stdin (`-`), gunzipped when they are gzip."""
    with contextlib.ExitStack() as stack:
        if str(source) == "-":
            raw: IO[bytes] = stdin if stdin is not None else sys.stdin.buffer
        else:
            raw = stack.enter_context(open(source, "rb"))
        if _is_gzip(raw):
            yield stack.enter_context(gzip.GzipFile(fileobj=raw))
        else:
            yield raw


def read_events(handle: Iterable[bytes], summary: ReplaySummary) -> Iterator[Item]:
    """Events of NDJSON lines; bad lines go to summary.rejected and are skipped."""
    try:
        for line_no, raw in enumerate(handle, start=1):
            summary.lines += 1
            if not raw.strip():
                continue
            try:
                event = json.loads(raw)
            except ValueError as ex:
                summary.rejected.append((line_no, f"not valid JSON: {ex}"))
                continue
            if not isinstance(event, dict):
                summary.rejected.append((line_no, "not a JSON object"))
                continue
            yield line_no, event, len(raw)
    except (OSError, EOFError) as ex:  # a truncated or corrupt gzip stream
        raise ReplayError(f"cannot read past line {summary.lines}: {ex}") from ex


def batches(items: Iterator[Item], batch_size: int) -> Iterator[list[Item]]:
    batch: list[Item] = []
    size = 0
    for item in items:
        if batch and (len(batch) >= batch_size or size + item[2] > MAX_REQUEST_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(item)
        size += item[2] + 1
    if batch:
        yield batch


class RateLimit:
    """At most `per_s` events per second on average (None: as fast as ingest takes them)."""

    def __init__(
        self,
        per_s: float | None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._per_s = per_s
        self._clock = clock
        self._sleep = sleep
        self._next = clock()

    def take(self, events: int) -> None:
        if not self._per_s:
            return
        wait_s = self._next - self._clock()
        if wait_s > 0:
            self._sleep(wait_s)
        self._next = max(self._next, self._clock()) + events / self._per_s


class Replayer:
    def __init__(
        self,
        url: str,
        write_key: str,
        *,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        timeout_s: float = 30.0,
    ) -> None:
        self._endpoint = url.rstrip("/") + "/v1/batch"
        self._auth = (write_key, "")
        self._session = session or requests.Session()
        self._sleep = sleep
        self._timeout_s = timeout_s

    def _post(self, events: list[dict[str, Any]], summary: ReplaySummary) -> requests.Response:
        body = json.dumps({"batch": events}, separators=(",", ":"), ensure_ascii=False)
        for attempt in range(MAX_BUSY_RETRIES + 1):
            try:
                response = self._session.post(
                    self._endpoint,
                    data=body.encode("utf-8"),
                    headers={"Content-Type": "application/json"},
                    auth=self._auth,
                    timeout=self._timeout_s,
                )
            except requests.RequestException as ex:
                if attempt >= 3:
                    raise ReplayError(f"cannot reach {self._endpoint}: {type(ex).__name__}") from ex
                self._sleep(2.0**attempt)
                continue
            if response.status_code not in (429, 503) or attempt == MAX_BUSY_RETRIES:
                return response
            summary.busy_retries += 1
            self._sleep(_retry_after_s(response))
        raise AssertionError("unreachable")

    def send(self, batch: list[Item], summary: ReplaySummary) -> None:
        response = self._post([event for _, event, _ in batch], summary)
        if response.status_code == 200:
            summary.accepted += len(batch)
            return
        if response.status_code == 401:
            raise ReplayError(f"ingest refused the write key: {_reason(response)}")
        if len(batch) > 1 and response.status_code in (400, 413):
            for item in batch:  # find the bad lines: each alone, with ingest's own reason
                self.send([item], summary)
            return
        reason = f"HTTP {response.status_code}: {_reason(response)}"
        summary.rejected.extend((line_no, reason) for line_no, _, _ in batch)


def _retry_after_s(response: requests.Response) -> float:
    try:
        return min(MAX_RETRY_AFTER_S, max(0.0, float(response.headers.get("Retry-After", "1"))))
    except ValueError:
        return 1.0


def _reason(response: requests.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text[:300]
    if isinstance(data, dict) and data.get("message"):
        return f"{data.get('code', 'error')}: {data['message']}"
    return response.text[:300]


def count_lines(source: str | Path) -> int | None:
    """Lines of a plain file, for the progress bar; None for stdin or gzip (read once only)."""
    if str(source) == "-":
        return None
    with open(source, "rb") as handle:
        if handle.read(2) == GZIP_MAGIC:
            return None
        handle.seek(0)
        return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))


def replay_file(
    source: str | Path,
    url: str,
    write_key: str,
    *,
    batch_size: int = 100,
    rate_per_s: float | None = None,
    progress: bool | None = None,
    session: requests.Session | None = None,
    sleep: Callable[[float], None] = time.sleep,
    stdin: IO[bytes] | None = None,
) -> ReplaySummary:
    """Send every event of an NDJSON file (gzipped or not; `-` = stdin) to ingest; the summary
    says what became of each line.

    progress: True shows a bar, False hides it, None shows it on a terminal only.
    """
    summary = ReplaySummary()
    replayer = Replayer(url, write_key, session=session, sleep=sleep)
    limit = RateLimit(rate_per_s, sleep=sleep)
    total = count_lines(source)
    with (
        open_lines(source, stdin) as handle,
        tqdm(
            total=total,
            unit="line",
            desc="replaying",
            disable=None if progress is None else not progress,
        ) as bar,
    ):
        done = 0
        for batch in batches(read_events(handle, summary), batch_size):
            limit.take(len(batch))
            replayer.send(batch, summary)
            bar.update(summary.lines - done)
            done = summary.lines
        bar.update(summary.lines - done)
    return summary
