"""The batcher packs calls into requests as they come due; time is handed in."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from worker.batcher import Batcher
from worker.mapping import POST_EVENTS_PATH, TRACK_USER_PATH, Call


def track(i: int, mapping: str = "m", batchable: bool = True) -> Call:
    return Call(mapping, "trackEvent", POST_EVENTS_PATH, f"e{i}", {"i": i}, batchable)


def profile(i: int) -> Call:
    return Call("p", "updateUserProfile", TRACK_USER_PATH, f"p{i}", {"i": i}, False)


def test_a_call_that_is_not_batchable_goes_at_once_alone() -> None:
    batcher = Batcher(100, 1000)
    (out,) = batcher.add(profile(1), "1-0", 1000)
    assert out.request.path == TRACK_USER_PATH and out.entry_ids == ("1-0",)
    assert len(batcher) == 0


def test_a_full_buffer_goes_at_once() -> None:
    batcher = Batcher(3, 1000)
    assert batcher.add(track(1), "1-0", 1000) == []
    assert batcher.add(track(2), "2-0", 1001) == []
    (out,) = batcher.add(track(3), "3-0", 1002)
    assert out.request.message_ids == ("e1", "e2", "e3")
    assert out.entry_ids == ("1-0", "2-0", "3-0")
    assert out.accepted_ms == (1000, 1001, 1002)
    assert out.request.body == {"events": [{"i": 1}, {"i": 2}, {"i": 3}]}


def test_a_partial_batch_is_due_once_its_oldest_call_waited_the_delay() -> None:
    batcher = Batcher(100, 1000)
    batcher.add(track(1), "1-0", 5_000)
    batcher.add(track(2), "2-0", 5_400)
    assert batcher.wait_ms(5_500) == 500
    assert batcher.due(5_999) == []
    (out,) = batcher.due(6_000)
    assert out.size == 2
    assert batcher.wait_ms(6_000) is None


def test_mappings_are_never_mixed() -> None:
    batcher = Batcher(100, 1000)
    batcher.add(track(1, "a"), "1-0", 0)
    batcher.add(track(2, "b"), "2-0", 0)
    batcher.add(track(3, "a"), "3-0", 0)
    outs = batcher.flush()
    assert sorted(o.request.message_ids for o in outs) == [("e1", "e3"), ("e2",)]


def test_a_split_batch_keeps_each_half_with_its_own_entries() -> None:
    batcher = Batcher(4, 1000)
    for i in range(4):
        outs = batcher.add(track(i), f"{i}-0", 100 + i)
    left, right = outs[0].split()
    assert left.entry_ids == ("0-0", "1-0") and right.entry_ids == ("2-0", "3-0")
    assert left.accepted_ms == (100, 101) and right.first_accepted_ms == 102
    assert left.request.message_ids == ("e0", "e1")


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from("abc"), st.booleans()), max_size=300),
    st.integers(1, 100),
)
def test_every_call_comes_out_once_in_order_within_the_limit(
    calls: list[tuple[str, bool]], max_events: int
) -> None:
    batcher = Batcher(max_events, 1000)
    outs = []
    for i, (mapping, batchable) in enumerate(calls):
        outs += batcher.add(track(i, mapping, batchable), f"{i}-0", i)
    outs += batcher.flush()
    ids = [m for out in outs for m in out.request.message_ids]
    assert sorted(ids) == sorted(f"e{i}" for i in range(len(calls)))
    assert all(out.size <= max_events for out in outs)
    for out in outs:  # within a request, arrival order
        positions = [int(m[1:]) for m in out.request.message_ids]
        assert positions == sorted(positions)
        assert out.entry_ids == tuple(f"{p}-0" for p in positions)
