"""Packing calls into requests: examples, then properties (nothing lost, nothing duplicated,
order kept, limits held, mappings never mixed), and halving a refused batch."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from config import fastjson
from worker.batching import PlannedRequest, plan_requests, select_request, split_request
from worker.mapping import Call


def track(mapping: str, message_id: str, batchable: bool = True) -> Call:
    return Call(mapping, "trackEvent", "post-events", message_id, {"name": message_id}, batchable)


def profile(message_id: str) -> Call:
    return Call("p", "updateUserProfile", "track-user", message_id, {"attributes": {}}, False)


def delete(message_id: str) -> Call:
    return Call("", "deleteUser", "delete-user", message_id, {"external_id": "u"}, False)


def shape(requests: list[PlannedRequest]) -> list[tuple[str, str, tuple[str, ...]]]:
    return [(r.path, r.mapping, r.message_ids) for r in requests]


@pytest.mark.parametrize(
    ("calls", "max_events", "expected"),
    [
        ([], 100, []),
        (
            [track("a", "1"), track("a", "2"), track("a", "3")],
            2,
            [("post-events", "a", ("1", "2")), ("post-events", "a", ("3",))],
        ),
        (
            [track("a", "1"), track("b", "2"), track("a", "3"), track("b", "4")],
            100,
            [("post-events", "a", ("1", "3")), ("post-events", "b", ("2", "4"))],
        ),
        (
            [track("a", "1", False), track("a", "2", False)],
            100,
            [("post-events", "a", ("1",)), ("post-events", "a", ("2",))],
        ),
        (
            [profile("1"), track("a", "2"), delete("3"), track("a", "4"), profile("5")],
            100,
            [
                ("track-user", "p", ("1",)),
                ("post-events", "a", ("2", "4")),
                ("delete-user", "", ("3",)),
                ("track-user", "p", ("5",)),
            ],
        ),
        (
            # a request is placed where its first call was: the second chunk after the profile
            [track("a", "1"), track("a", "2"), profile("3"), track("a", "4")],
            2,
            [
                ("post-events", "a", ("1", "2")),
                ("track-user", "p", ("3",)),
                ("post-events", "a", ("4",)),
            ],
        ),
    ],
)
def test_plan_requests_examples(
    calls: list[Call], max_events: int, expected: list[tuple[str, str, tuple[str, ...]]]
) -> None:
    assert shape(plan_requests(calls, max_events)) == expected


def test_bodies() -> None:
    requests = plan_requests([track("a", "1"), track("a", "2"), profile("3"), delete("4")])
    assert requests[0].body == {"events": [{"name": "1"}, {"name": "2"}]}
    assert requests[0].action == "trackEvent"
    assert requests[1].body == {"attributes": {}}
    assert requests[2].body == {"external_id": "u"}
    single = plan_requests([track("a", "9", False)])[0]
    assert single.body == {"events": [{"name": "9"}]}


def test_250_batched_events_make_100_100_50_in_order() -> None:
    calls = [track("a", str(i)) for i in range(250)]
    requests = plan_requests(calls)
    assert [len(r.body["events"]) for r in requests] == [100, 100, 50]
    assert [m for r in requests for m in r.message_ids] == [str(i) for i in range(250)]


@pytest.mark.parametrize("max_events", [0, -1, 101])
def test_max_events_must_respect_pushwoosh_limit(max_events: int) -> None:
    with pytest.raises(ValueError, match="max_events"):
        plan_requests([track("a", "1")], max_events)


calls_strategy = st.lists(
    st.one_of(
        st.builds(track, st.sampled_from(["a", "b", "c"]), st.just(""), st.booleans()),
        st.builds(profile, st.just("")),
        st.builds(delete, st.just("")),
    ),
    max_size=120,
).map(
    # unique message ids, so "lost" and "duplicated" can be told apart
    lambda calls: [
        Call(c.mapping, c.action, c.path, str(i), {"i": i}, c.batchable)
        for i, c in enumerate(calls)
    ]
)


@given(calls_strategy, st.integers(min_value=1, max_value=100))
def test_plan_requests_properties(calls: list[Call], max_events: int) -> None:
    requests = plan_requests(calls, max_events)
    by_id = {c.message_id: c for c in calls}
    sent = [m for r in requests for m in r.message_ids]
    # nothing lost, nothing duplicated
    assert sorted(sent, key=int) == [c.message_id for c in calls]
    firsts = []
    for request in requests:
        members = [by_id[m] for m in request.message_ids]
        # never mixes mappings, actions or paths
        assert {(c.mapping, c.action, c.path) for c in members} == {
            (request.mapping, request.action, request.path)
        }
        # no request over the limit; only batchable calls share a request
        assert 1 <= len(members) <= max_events
        assert len(members) == 1 or all(c.batchable for c in members)
        # order kept inside a request, and elements are the calls' bodies
        assert [int(m) for m in request.message_ids] == sorted(int(m) for m in request.message_ids)
        if request.path == "post-events":
            assert request.body == {"events": [c.body for c in members]}
        else:
            assert request.body == members[0].body
        firsts.append(int(request.message_ids[0]))
    # requests ordered by their first call
    assert firsts == sorted(firsts)
    # order kept within a mapping across requests
    for mapping in {"a", "b", "c"}:
        ids = [int(m) for m in sent if by_id[m].mapping == mapping and by_id[m].batchable]
        assert ids == sorted(ids)


@given(st.integers(min_value=2, max_value=100))
def test_split_request_halves_preserve_elements(size: int) -> None:
    (request,) = plan_requests([track("a", str(i)) for i in range(size)])
    left, right = split_request(request)
    assert left.body["events"] + right.body["events"] == request.body["events"]
    assert left.message_ids + right.message_ids == request.message_ids
    assert len(left.message_ids) == len(left.body["events"]) == size // 2
    assert len(right.message_ids) == len(right.body["events"]) == size - size // 2
    for half in (left, right):
        assert (half.path, half.mapping, half.action) == (request.path, "a", "trackEvent")


@pytest.mark.parametrize(
    "request_",
    [
        plan_requests([track("a", "1")])[0],
        plan_requests([profile("1")])[0],
        PlannedRequest("post-events", {"events": [{}, {}]}, ("1",), "a", "trackEvent"),
    ],
)
def test_split_request_refuses_what_cannot_be_halved(request_: PlannedRequest) -> None:
    with pytest.raises(ValueError):
        split_request(request_)


def test_planned_request_round_trips_through_json() -> None:
    (request,) = plan_requests([track("a", "1"), track("a", "2")])
    data = json.loads(json.dumps(request.to_dict()))
    assert PlannedRequest.from_dict(data) == request
    assert data["message_ids"] == ["1", "2"]


def test_planned_request_from_bad_dict() -> None:
    with pytest.raises(ValueError):
        PlannedRequest.from_dict(
            {"path": "x", "body": [], "message_ids": [], "mapping": "", "action": ""}
        )


def _sent_bytes_match_the_body(request: PlannedRequest) -> None:
    assert request.parts is not None
    assert request.encoded() == fastjson.dumps(request.body)


@given(st.integers(min_value=2, max_value=100), st.data())
def test_a_batch_sends_its_calls_own_encodings_whole_halved_or_in_part(
    size: int, data: st.DataObject
) -> None:
    calls = [
        Call("a", "trackEvent", "post-events", str(i), {"i": i, "text": "ünï\u2028"}, True)
        for i in range(size)
    ]
    (request,) = plan_requests(calls)
    # Each element is encoded once, when it is planned; the request joins those bytes.
    assert request.parts == tuple(call.encoded() for call in calls)
    assert all(part is call.encoded() for part, call in zip(request.parts, calls, strict=True))
    _sent_bytes_match_the_body(request)
    for half in split_request(request):
        _sent_bytes_match_the_body(half)
    indexes = sorted(data.draw(st.sets(st.integers(0, size - 1), min_size=1)))
    _sent_bytes_match_the_body(select_request(request, indexes))


@pytest.mark.parametrize("call", [profile("1"), delete("2")])
def test_a_single_call_sends_its_own_encoding(call: Call) -> None:
    (request,) = plan_requests([call])
    assert request.encoded() is call.encoded()
    assert request.encoded() == fastjson.dumps(call.body)


def test_an_unbatched_event_is_a_batch_of_one() -> None:
    call = track("a", "3", False)
    (request,) = plan_requests([call])
    assert request.encoded() == fastjson.dumps({"events": [call.body]})


def test_a_request_read_back_from_a_retry_record_is_encoded_when_sent() -> None:
    (request,) = plan_requests([track("a", "1"), track("a", "2")])
    again = PlannedRequest.from_dict(json.loads(json.dumps(request.to_dict())))
    assert again.parts is None
    assert again.encoded() == request.encoded()
