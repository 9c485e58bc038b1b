"""Triggers: Segment's reading of every operator, missing values, and the refusals (with
positions and Segment's reading) of triggers Segment reads otherwise than written."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config.fql import TriggerSyntaxError, compile_trigger, segment_reading

EVENT: dict[str, Any] = {
    "type": "track",
    "event": "Order Completed",
    "userId": "u1",
    "anonymousId": "u1",
    "properties": {
        "total": 150,
        "price": 9.5,
        "zero": 0,
        "coupon": None,
        "tier": "gold",
        "vip": True,
        "count": "150",
        "items": [1, 2],
        "label": "Summer Sale 2024",
        "product 1": "x",
        "a": {"b": 3},
        "path": "a*b",
    },
    "context": {"device": {"type": "ios"}, "locale": "en-US"},
}


@pytest.mark.parametrize(
    ("trigger", "expected"),
    [
        # equality and inequality: texts compare with texts only
        ('type = "track"', True),
        ('type = "identify"', False),
        ('type != "identify"', True),
        ('type != "track"', False),
        ('type="track"', True),
        ("properties.total = 150", True),
        ("properties.total = 150.0", True),
        ("properties.price = 9.5", True),
        ("properties.count = 150", False),  # "150" is a text: a number test needs a number
        ('properties.total = "150"', False),
        ('properties.count = "150"', True),
        ("properties.vip = true", True),
        ("properties.zero = false", False),
        ('context.device.type = "ios"', True),
        ('context.device.type.deeper = "ios"', False),
        # missing and null
        ("properties.coupon = null", True),
        ("properties.missing = null", True),
        ("properties.tier = null", False),
        ("properties.coupon != null", False),
        ("properties.tier != null", True),
        ('properties.missing != "a"', True),  # a text inequality holds when it is missing
        ('properties.missing = "a"', False),
        ("properties.missing != 5", False),  # a number inequality needs a number
        ("properties.tier != 5", False),
        ("properties.total != 5", True),
        ("name = null", True),
        ("userId != null", True),
        ("properties.zero.deeper = 0", True),  # Segment's lookup stops at a falsy value
        ("properties.items.length = 2", True),
        # ordering: numbers only
        ("properties.total > 100", True),
        ("properties.total > 150", False),
        ("properties.total >= 150", True),
        ("properties.total < 150.5", True),
        ("properties.total <= 149", False),
        ("properties.count > 100", False),  # a text is never ordered
        ("properties.missing < 1", False),
        ("properties.missing >= 1", False),
        ("properties.coupon < 1", False),
        ("properties.vip > 0", False),
        ("properties.total > -5", True),
        # contains and match: texts only, case-sensitive; match is a prefix or a suffix
        ('contains(event, "Completed")', True),
        ('contains(event, "completed")', False),
        ('contains(properties.total, "1")', False),
        ('contains(properties.missing, "a")', False),
        ('!contains(properties.missing, "a")', False),  # "does not contain" needs a text too
        ('!contains(event, "x")', True),
        ('match(event, "Order *")', True),
        ('match(event, "order *")', False),
        ('match(event, "*Completed")', True),
        ('match(properties.label, "Summer Sale ????*")', False),  # ? is a literal character
        ('match(properties.path, "a*")', True),
        ('!match(properties.missing, "a*")', False),
        ('match(properties.total, "*")', False),
        # logic
        ('type = "track" and event = "Order Completed"', True),
        ('type = "track" and event = "Signed Up"', False),
        ('type = "identify" or event = "Order Completed"', True),
        ('type = "identify" or type = "page"', False),
        ('(type = "track" or type = "identify") and event = "x"', False),
        ('(type = "identify" and event = "x") or type = "track"', True),
        ('type = "track" and (event = "x" or contains(event, "Order"))', True),
        # names with escaped characters, as Segment's trigger builder writes them
        ('properties.product\\ 1 = "x"', True),
        ("properties.a\\.b = 3", True),  # an escaped dot is still a separator for Segment
    ],
)
def test_trigger_evaluates(trigger: str, expected: bool) -> None:
    assert compile_trigger(trigger)(EVENT) is expected


@pytest.mark.parametrize(
    ("trigger", "event", "expected"),
    [
        ('type = "track" or type = "page" or type = "screen"', {"type": "screen"}, True),
        ('type = "track" or type = "page" or type = "screen"', {"type": "identify"}, False),
        ('type = "track" or type = "page" or type = "screen"', {}, False),
        ('type = "identify"', {"type": "identify"}, True),
        ('properties.x = "a"', {"properties": "not an object"}, False),
        ('properties.x = "a"', {"properties": None}, False),
        ("properties.x = null", {"properties": None}, True),
        ('userId = "5"', {"userId": 5}, False),
        ("properties.a = 1", {"properties": {"a": True}}, False),
        ("properties.a = true", {"properties": {"a": 1}}, False),
        ('properties.my-prop.sub_key = "v"', {"properties": {"my-prop": {"sub_key": "v"}}}, True),
    ],
)
def test_trigger_on_events(trigger: str, event: dict[str, Any], expected: bool) -> None:
    assert compile_trigger(trigger)(event) is expected


@pytest.mark.parametrize(
    ("trigger", "position", "reason"),
    [
        ("", 0, "the trigger is empty"),
        ("type = ", 7, "expected a value"),
        ('type = |"identify"', 7, 'invalid character "|"'),
        ('type = "track', 7, "unterminated string"),
        ('type = "track" AND event = "x"', 15, "keywords are lowercase"),
        ("type", 4, "expected a comparison operator"),
        ('(type = "track"', 15, 'expected a closing ")"'),
        ('type = "track")', 14, 'a ")" without its "("'),
        ('contains(event "x")', 15, '"," between the arguments of contains()'),
        ("match(event, name)", 13, "takes a text in double quotes"),
        ('type = "track" and', 18, "expected a condition"),
        # read otherwise by Segment: refused, saying how Segment reads it
        ('type = "a" and event = "b" or event = "c"', 11, 'applies the last one ("or")'),
        ('!(type = "track")', 0, 'Segment drops a "!"'),
        ('!type = "track"', 0, 'Segment drops a "!"'),
        ('anonymousId = "x"', 0, "it skips a condition on 'anonymousId'"),
        ("properties.vip != true", 18, 'compares != true with the text "true"'),
        ('match(event, "Order")', 13, 'reads "Order" as "ends with rder"'),
        ('((type = "track"))', 1, "parentheses inside parentheses"),
        ('(contains(event, "a") or type = "b") and userId = "u"', 1, "the group's last condition"),
        ("type = 'track'", 7, "single quotes"),
        ("true", 0, "Segment skips a bare true"),
        ("type = 5", 7, 'compares type with the text "5"'),
        ("type = null", 7, 'compares type with the text "null"'),
        ('properties.total > "100"', 19, "compares > with numbers only"),
        ("properties.a = properties.b", 15, "comparing two fields is not possible"),
        ("properties.total>100", 16, "Segment cannot read this trigger"),
        ('contains(type, "x")', 9, "Segment skips contains() on type"),
    ],
)
def test_refusals_give_position_and_reason(trigger: str, position: int, reason: str) -> None:
    with pytest.raises(TriggerSyntaxError) as caught:
        compile_trigger(trigger)
    assert caught.value.position == position
    assert reason in str(caught.value)
    assert caught.value.source == trigger
    assert f"at position {position}: " in str(caught.value)


def test_error_message_marks_the_spot() -> None:
    with pytest.raises(TriggerSyntaxError, match=r'at position 7: type = \|\|"identify"$'):
        compile_trigger('type = |"identify"')


def test_error_is_a_value_error() -> None:
    assert issubclass(TriggerSyntaxError, ValueError)


def test_long_flat_chains_evaluate_without_recursion() -> None:
    trigger = " or ".join(f'event = "e{i}"' for i in range(400)) + ' or type = "track"'
    assert compile_trigger(trigger)(EVENT) is True


def test_every_accepted_trigger_is_segments_reading() -> None:
    # The predicate evaluates Segment's own parse of the text; the checker only refuses.
    trigger = '(type = "track" or type = "page") and properties.total > 100'
    assert segment_reading(trigger) == (
        "group",
        "and",
        (
            ("group", "or", (("type", "", "=", "track"), ("type", "", "=", "page"))),
            ("properties", "total", ">", 100.0),
        ),
    )


_FQL_ALPHABET = st.sampled_from(
    [
        *'abtypeventdor.="\\!()<>,-0123456789 ',
        "and",
        "or",
        "not",
        "null",
        "true",
        "contains(",
        "properties.",
        "type",
        "event",
        "match(",
        "'",
        "\r",
    ]
)


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(), st.lists(_FQL_ALPHABET, max_size=40).map("".join)))
def test_any_string_compiles_or_fails_with_a_position(source: str) -> None:
    try:
        predicate = compile_trigger(source)
    except TriggerSyntaxError as ex:
        assert 0 <= ex.position <= len(source)
        assert ex.source == source
        return
    assert predicate(EVENT) in (True, False)
    assert predicate({}) in (True, False)
