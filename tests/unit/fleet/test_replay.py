"""`pushwoosh-fleet replay FILE`: NDJSON through ingest, every line accounted for."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path
from typing import Any

import pytest

from fleet.replay import RateLimit, ReplayError, replay_file
from tests.support.replay import track, write_ndjson


class FakeResponse:
    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None):
        self.status_code = status
        self._body = body
        self.headers = headers or {}
        self.text = json.dumps(body)

    def json(self) -> dict[str, Any]:
        return self._body


class FakeSession:
    """Answers from a script of (status, body, headers), then 200; records each batch sent."""

    def __init__(self, script: list[FakeResponse], refuse_type: str | None = None) -> None:
        self.script = list(script)
        self.refuse_type = refuse_type
        self.batches: list[list[dict[str, Any]]] = []

    def post(self, url: str, data: bytes, **_: Any) -> FakeResponse:
        batch = json.loads(data)["batch"]
        self.batches.append(batch)
        if self.script:
            return self.script.pop(0)
        if self.refuse_type and any(e.get("type") == self.refuse_type for e in batch):
            return FakeResponse(400, {"code": "validation_failed", "message": "bad type"})
        return FakeResponse(200, {"success": True})


# -- the real fleet --------------------------------------------------------------------------


def test_busy_ingest_is_retried_after_its_retry_after(tmp_path: Path) -> None:
    # Given ingest that sheds load twice (429, then 503) before accepting
    path = write_ndjson(tmp_path / "e.ndjson", [json.dumps(track(i)) for i in range(3)])
    session = FakeSession(
        [
            FakeResponse(429, {"code": "queue_full"}, {"Retry-After": "7"}),
            FakeResponse(503, {"code": "store_unavailable"}, {"Retry-After": "2"}),
        ]
    )
    slept: list[float] = []
    # When the file is replayed
    summary = replay_file(
        path, "http://ingest", "k", session=session, sleep=slept.append, progress=False
    )  # type: ignore[arg-type]
    # Then the same batch is sent three times, after the waits ingest asked for
    assert len(session.batches) == 3
    assert slept == [7.0, 2.0]
    assert (summary.accepted, summary.rejected, summary.busy_retries) == (3, [], 2)


def test_a_refused_batch_is_resent_line_by_line_to_name_the_bad_lines(tmp_path: Path) -> None:
    lines = [json.dumps(track(i)) for i in range(5)]
    lines[3] = json.dumps({"type": "bogus", "messageId": "x"})
    path = write_ndjson(tmp_path / "e.ndjson", lines)
    session = FakeSession([], refuse_type="bogus")
    summary = replay_file(path, "http://ingest", "k", session=session, progress=False)  # type: ignore[arg-type]
    assert summary.accepted == 4
    assert summary.rejected == [(4, "HTTP 400: validation_failed: bad type")]
    assert [len(b) for b in session.batches] == [5, 1, 1, 1, 1, 1]


def test_a_refused_write_key_stops_the_replay(tmp_path: Path) -> None:
    path = write_ndjson(tmp_path / "e.ndjson", [json.dumps(track(1))])
    session = FakeSession([FakeResponse(401, {"code": "unauthorized", "message": "no key"})])
    with pytest.raises(ReplayError, match="refused the write key"):
        replay_file(path, "http://ingest", "k", session=session, progress=False)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("per_s", "batches", "expected_sleeps"),
    [
        (None, [100, 100], []),
        (100.0, [100, 100, 50], [1.0, 1.0]),
        (1000.0, [10, 10], [0.01]),
    ],
)
def test_rate_limit_spaces_batches(per_s, batches, expected_sleeps) -> None:
    now = [0.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(round(seconds, 6))
        now[0] += seconds

    limit = RateLimit(per_s, clock=lambda: now[0], sleep=sleep)
    for size in batches:
        limit.take(size)
    assert sleeps == expected_sleeps


def test_batches_stay_under_the_request_size_limit(tmp_path: Path) -> None:
    big = [json.dumps({**track(i), "properties": {"blob": "x" * 20_000}}) for i in range(60)]
    path = write_ndjson(tmp_path / "big.ndjson", big)
    session = FakeSession([])
    summary = replay_file(path, "http://ingest", "k", session=session, progress=False)  # type: ignore[arg-type]
    assert summary.accepted == 60
    assert all(len(json.dumps({"batch": b})) < 450 * 1024 for b in session.batches)
    assert sum(len(b) for b in session.batches) == 60


@pytest.mark.parametrize("name", ["events.ndjson.gz", "export-without-suffix"])
def test_a_gzipped_file_is_read_whatever_its_name(tmp_path: Path, name: str) -> None:
    # Given three events gzipped (recognised by content: archives are not always named .gz)
    path = tmp_path / name
    path.write_bytes(
        gzip.compress(("\n".join(json.dumps(track(i)) for i in range(3)) + "\n").encode())
    )
    session = FakeSession([])
    # When it is replayed
    summary = replay_file(path, "http://ingest", "k", session=session, progress=False)  # type: ignore[arg-type]
    # Then every event went out, in order
    assert summary.accepted == 3 and summary.lines == 3
    assert [e["messageId"] for e in session.batches[0]] == [f"replay-{i}" for i in range(3)]


@pytest.mark.parametrize("zipped", [False, True])
def test_dash_reads_stdin_plain_or_gzipped(zipped: bool) -> None:
    text = ("\n".join(json.dumps(track(i)) for i in range(4)) + "\nnot json\n").encode()
    stdin = io.BufferedReader(io.BytesIO(gzip.compress(text) if zipped else text))  # type: ignore[arg-type]
    session = FakeSession([])
    summary = replay_file("-", "http://ingest", "k", session=session, progress=False, stdin=stdin)  # type: ignore[arg-type]
    assert summary.accepted == 4
    assert summary.rejected[0][0] == 5 and "not valid JSON" in summary.rejected[0][1]


def test_a_truncated_gzip_stops_the_replay_with_a_reason(tmp_path: Path) -> None:
    whole = gzip.compress(("\n".join(json.dumps(track(i)) for i in range(500)) + "\n").encode())
    path = tmp_path / "cut.gz"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ReplayError, match="cannot read past line"):
        replay_file(path, "http://ingest", "k", session=FakeSession([]), progress=False)  # type: ignore[arg-type]
