"""The drain reads its stream unparsed through a lane: the reply becomes (id, fields) pairs."""

from __future__ import annotations

from typing import Any

import pytest

from worker.drain import stream_entries


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (None, []),
        ([], []),
        (
            [["s", [["1-0", ["e", "{}", "src", "v1/batch"]], ["2-0", None]]]],
            [("1-0", {"e": "{}", "src": "v1/batch"}), ("2-0", None)],
        ),
        ({"s": [["1-0", ["e", "{}"]]]}, [("1-0", {"e": "{}"})]),  # RESP3: a map by stream
    ],
)
def test_a_read_becomes_ids_and_fields(reply: Any, expected: list[Any]) -> None:
    assert stream_entries(reply) == expected
