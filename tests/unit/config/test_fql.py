"""Triggers: every operator, precedence, undefined paths, syntax errors with positions."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config.fql import MAX_NESTING, TriggerSyntaxError, compile_trigger

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
        "path": "a*b",
    },
    "context": {"device": {"type": "ios"}, "locale": "en-US"},
}


@pytest.mark.parametrize(
    ("trigger", "expected"),
    [
        # equality and inequality
        ('type = "track"', True),
        ('type = "identify"', False),
        ('type != "identify"', True),
        ('type != "track"', False),
        ('"track" = type', True),
        ("properties.total = 150", True),
        ("properties.total = 150.0", True),
        ("properties.price = 9.5", True),
        ("properties.count = 150", False),  # no conversions: "150" is a string
        ('properties.total = "150"', False),
        ("properties.vip = true", True),
        ("properties.vip = 1", False),  # a boolean is not a number
        ("properties.zero = false", False),
        ("properties.vip != false", True),
        ('context.device.type = "ios"', True),
        ('context.device.type.deeper = "ios"', False),
        ("userId = anonymousId", True),  # path against path
        ("userId = event", False),
        ("properties.items = properties.items", True),
        # undefined and null
        ("properties.coupon = null", True),
        ("properties.missing = null", True),
        ("missing.entirely = null", True),
        ("properties.tier = null", False),
        ("properties.coupon != null", False),
        ("properties.tier != null", True),
        ('properties.missing != "a"', True),
        ('properties.missing = "a"', False),
        ("properties.missing = properties.coupon", True),
        # ordering
        ("properties.total > 100", True),
        ("properties.total > 150", False),
        ("properties.total >= 150", True),
        ("properties.total < 150.5", True),
        ("properties.total <= 149", False),
        ("properties.price < properties.total", True),
        ("properties.count > 100", False),  # string against number: false
        ("properties.missing < 1", False),
        ("properties.missing >= 1", False),
        ("properties.coupon < 1", False),
        ("properties.vip > 0", False),
        ('properties.tier > "apple"', True),  # strings compare lexically
        ('properties.tier < "apple"', False),
        ('properties.tier >= "gold"', True),
        ("properties.total > -5", True),
        ("properties.total < 1.5e3", True),
        # contains and match
        ('contains(event, "Completed")', True),
        ('contains(event, "completed")', False),
        ('contains(properties.total, "1")', False),  # not a string
        ('contains(properties.missing, "a")', False),
        ("contains(userId, anonymousId)", True),
        ('match(event, "Order *")', True),
        ('match(event, "order *")', False),  # case-sensitive
        ('match(event, "Order")', False),  # the whole value must match
        ('match(properties.label, "Summer Sale ????")', True),
        ('match(properties.label, "Summer Sale ???")', False),
        ('match(properties.path, "a?b")', True),
        ('match(properties.label, "S*.2024")', False),  # "." is not a wildcard
        ('match(properties.total, "*")', False),
        ('contains(event, "Order") = true', True),
        ('match(event, "x*") = false', True),
        # logic
        ('type = "track" and event = "Order Completed"', True),
        ('type = "track" and event = "Signed Up"', False),
        ('type = "identify" or event = "Order Completed"', True),
        ('type = "identify" or type = "page"', False),
        ('!(type = "track")', False),
        ('not (type = "identify")', True),
        ('!type = "identify"', True),  # ! negates the comparison that follows
        ('not contains(event, "x")', True),
        ('!!(type = "track")', True),
        ("true", True),
        ("false", False),
        ("not false", True),
        # precedence: not > comparison > and > or
        ('type = "identify" and event = "x" or type = "track"', True),
        ('type = "track" or type = "identify" and event = "x"', True),
        ('(type = "track" or type = "identify") and event = "x"', False),
        ('not type = "track" or type = "track"', True),
        ('not (type = "track" or type = "page")', False),
        ('type = "track" and not event = "x" and properties.total > 100', True),
        ('type="track"and(event="Order Completed")', True),
        # string escapes
        ('event != "Order \\"Completed\\""', True),
        ('properties.label = "Summer\\u0020Sale 2024"', True),
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
        ('a = "x" and b = "x" and c = "x"', {"a": "x", "b": "x", "c": "x"}, True),
        ('a = "x" and b = "x" and c = "x"', {"a": "x", "b": "x", "c": "y"}, False),
        ('a = "1" or b = "1" or c = "1" or d = "1"', {"d": "1"}, True),
        ("a = b", {"a": [1, {"x": True}], "b": [1, {"x": True}]}, True),
        ("a = b", {"a": [1, {"x": True}], "b": [1, {"x": 1}]}, False),
        ("a = b", {"a": {"x": 1}, "b": {"x": 1, "y": 2}}, False),
        ("a = 1", {"a": True}, False),
        ("a = true", {"a": 1}, False),
        ('my-prop.sub_key = "v"', {"my-prop": {"sub_key": "v"}}, True),
    ],
)
def test_trigger_on_events(trigger: str, event: dict[str, Any], expected: bool) -> None:
    assert compile_trigger(trigger)(event) is expected


@pytest.mark.parametrize(
    ("trigger", "position", "reason"),
    [
        ("", 0, "the trigger is empty"),
        ("type = ", 7, "expected a value"),
        ('type = |"identify"', 7, "unexpected character '|'"),
        ('type == "track"', 6, "expected a value"),
        ('type = "track', 7, "unterminated string"),
        ('type = "a\\qb"', 9, "unknown escape"),
        ('type = "track" AND event = "x"', 15, "keywords are lowercase"),
        ('NOT type = "track"', 4, "keywords are lowercase"),
        ("type", 4, "expected a comparison operator after type"),
        ('"track"', 7, "expected a comparison operator"),
        ('(type = "track"', 15, 'expected a closing ")"'),
        ('type = "track")', 14, '"and", "or" or the end'),
        ("a = 1 = 2", 6, "comparisons cannot be chained"),
        ('contains(event "x")', 15, '"," between the arguments of contains()'),
        ("match(event, name)", 13, "quoted pattern"),
        ('contains(event, "x"', 19, 'closing ")" for contains()'),
        ('type = "track" and', 18, "expected a value"),
        ("or", 0, "expected a value"),
        ("a = -", 4, "unexpected character '-'"),
        ("a = 1" + "0" * 5000, 4, "number too long"),
        ("(" * (MAX_NESTING + 5), MAX_NESTING, "nested more than"),
        ("!" * (MAX_NESTING + 5), MAX_NESTING, "nested more than"),
        ("a. = 1", 1, "unexpected character '.'"),
    ],
)
def test_syntax_errors_give_position(trigger: str, position: int, reason: str) -> None:
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


def test_deep_but_allowed_nesting_compiles() -> None:
    depth = MAX_NESTING - 1
    trigger = "(" * depth + 'type = "track"' + ")" * depth
    assert compile_trigger(trigger)(EVENT) is True


def test_long_flat_chains_evaluate_without_recursion() -> None:
    trigger = " or ".join(f'event = "e{i}"' for i in range(400)) + ' or type = "track"'
    assert compile_trigger(trigger)(EVENT) is True


_FQL_ALPHABET = st.sampled_from(
    [*'abtypeventdor.="\\!()<>,-0123456789 ', "and", "or", "not", "null", "true", "contains("]
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
