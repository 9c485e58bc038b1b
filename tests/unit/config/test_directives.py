"""Mapping-kit directives: literals, objects, arrays, @path, @if, @template, @literal, @case,
@replace, nesting, missing paths, and the errors a bad mappings file gets at start-up."""

from __future__ import annotations

import copy
import pickle
from typing import Any

import pytest

from config.directives import (
    ABSENT,
    DirectiveError,
    compile_value,
    js_number,
    js_string,
    lookup,
    parse_path,
)
from config.mappings import PROFILE_DEFAULTS, TRACK_DEFAULTS

EVENT: dict[str, Any] = {
    "type": "track",
    "event": "Order Completed",
    "userId": "user-123",
    "traits": {"name": "Jane", "email": "JANE@Example.com", "nick": None, "empty": "", "age": 41},
    "properties": {"items": [{"sku": "A1"}, {"sku": "B2"}], "total": 59.9, "ok": True},
    "context": {"device": {"id": "D1"}, "weird key": {"a b": 7}},
    "list": [10, 20],
}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("plain", "plain"),
        (42, 42),
        (1.5, 1.5),
        (True, True),
        (False, False),
        (None, None),
        ("", ""),
        ({"a": 1, "b": "x"}, {"a": 1, "b": "x"}),
        ([1, "two", None], [1, "two", None]),
        ({}, {}),
        ([], []),
    ],
)
def test_literals_and_plain_values_come_back_as_they_are(raw: object, expected: object) -> None:
    assert compile_value(raw)(EVENT) == expected


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("$.userId", "user-123"),
        ("$.traits.name", "Jane"),
        ("$.traits.nick", None),  # present null stays null
        ("$.traits.missing", ABSENT),
        ("$.nothing.deeper.still", ABSENT),
        ("$.userId.length", ABSENT),  # a string has no keys
        ("$.properties.items[0].sku", "A1"),
        ("$.properties.items[1].sku", "B2"),
        ("$.properties.items[2].sku", ABSENT),
        ("$.properties.items.1.sku", "B2"),
        ("$.list[1]", 20),
        ("$['context']['weird key']['a b']", 7),
        ('$.context["weird key"]["a b"]', 7),
        ("traits.name", "Jane"),  # "$." is optional, as in Segment
        ("$", EVENT),
        ("$.properties", EVENT["properties"]),
    ],
)
def test_path_reads_the_event(path: str, expected: object) -> None:
    assert compile_value({"@path": path})(EVENT) == expected


def test_missing_path_is_the_absent_sentinel() -> None:
    value = compile_value({"@path": "$.nope"})(EVENT)
    assert value is ABSENT
    assert repr(value) == "ABSENT"
    assert not value
    assert copy.deepcopy(ABSENT) is ABSENT
    assert pickle.loads(pickle.dumps(ABSENT)) is ABSENT


@pytest.mark.parametrize(
    ("text", "keys"),
    [
        ("$.a.b", ("a", "b")),
        ("$.a[0].b", ("a", 0, "b")),
        ("$['a b'].c", ("a b", "c")),
        ("a.b", ("a", "b")),
        ("$", ()),
    ],
)
def test_parse_path_splits_once(text: str, keys: tuple[object, ...]) -> None:
    assert parse_path(text) == keys


def test_lookup_through_lists_and_objects() -> None:
    assert lookup({"a": [{"b": 1}]}, ("a", 0, "b")) == 1
    assert lookup({"a": {"0": "zero"}}, ("a", 0)) == "zero"
    assert lookup({"a": [1]}, ("a", "x")) is ABSENT


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # exists: present and not null
        ({"@if": {"exists": {"@path": "$.event"}, "then": "T", "else": "E"}}, "T"),
        ({"@if": {"exists": {"@path": "$.traits.nick"}, "then": "T", "else": "E"}}, "E"),
        ({"@if": {"exists": {"@path": "$.nope"}, "then": "T", "else": "E"}}, "E"),
        ({"@if": {"exists": {"@path": "$.traits.empty"}, "then": "T", "else": "E"}}, "T"),
        # blank: absent, null or ""
        ({"@if": {"blank": {"@path": "$.traits.empty"}, "then": "T", "else": "E"}}, "T"),
        ({"@if": {"blank": {"@path": "$.traits.nick"}, "then": "T", "else": "E"}}, "T"),
        ({"@if": {"blank": {"@path": "$.nope"}, "then": "T", "else": "E"}}, "T"),
        ({"@if": {"blank": {"@path": "$.traits.name"}, "then": "T", "else": "E"}}, "E"),
        # missing branches are absent
        ({"@if": {"exists": {"@path": "$.nope"}, "then": "T"}}, ABSENT),
        ({"@if": {"exists": {"@path": "$.event"}, "else": "E"}}, ABSENT),
        # branches are values like any other
        (
            {"@if": {"exists": {"@path": "$.event"}, "then": {"@path": "$.event"}}},
            "Order Completed",
        ),
    ],
)
def test_if(raw: object, expected: object) -> None:
    assert compile_value(raw)(EVENT) == expected


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("Hi {{traits.name}}", "Hi Jane"),
        ("Hi {{ traits.name }}!", "Hi Jane!"),
        ("{{traits.missing}}|{{traits.nick}}", "|"),
        (
            "age {{traits.age}} total {{properties.total}} ok {{properties.ok}}",
            "age 41 total 59.9 ok true",
        ),
        ("{{properties.items[0].sku}}", "A1"),
        ("no tags at all", "no tags at all"),
        ("{{$.userId}}", "user-123"),
        ("{{list}}", "[10,20]"),
    ],
)
def test_template(template: str, expected: str) -> None:
    assert compile_value({"@template": template})(EVENT) == expected


def test_template_escapes_like_mustache_unless_triple_braced() -> None:
    event = {"traits": {"name": "O'Brien <b>"}}
    assert compile_value({"@template": "{{traits.name}}"})(event) == "O&#39;Brien &lt;b&gt;"
    assert compile_value({"@template": "{{{traits.name}}}"})(event) == "O'Brien <b>"


@pytest.mark.parametrize(
    "inner",
    [{"@path": "$.userId"}, {"a": {"@path": "$.x"}}, [{"@template": "{{a}}"}], "{{traits.name}}"],
)
def test_literal_is_not_processed(inner: object) -> None:
    assert compile_value({"@literal": inner})(EVENT) == inner


@pytest.mark.parametrize(
    ("mode", "value", "expected"),
    [
        ("lower", {"@path": "$.traits.email"}, "jane@example.com"),
        ("upper", {"@path": "$.traits.email"}, "JANE@EXAMPLE.COM"),
        ("lower", {"@path": "$.traits.age"}, 41),  # non-strings pass through
        ("lower", {"@path": "$.traits.nick"}, None),
        ("upper", {"@path": "$.nope"}, ABSENT),
    ],
)
def test_case(mode: str, value: object, expected: object) -> None:
    assert compile_value({"@case": {"mode": mode, "value": value}})(EVENT) == expected


@pytest.mark.parametrize(
    ("options", "value", "expected"),
    [
        ({"pattern": "-", "replacement": "_"}, "a-b-c", "a_b_c"),
        ({"pattern": "-", "replacement": "_", "global": False}, "a-b-c", "a_b-c"),
        ({"pattern": "A", "replacement": "x", "ignorecase": True}, "aAa", "xxx"),
        ({"pattern": "A", "replacement": "x"}, "aAa", "axa"),
        ({"pattern": ".", "replacement": "!"}, "a.b", "a!b"),  # plain text, not a regex
        ({"pattern": "+", "replacement": "\\1$&"}, "1+1", "1\\1$&1"),  # replacement is plain too
        ({"pattern": "x"}, "xax", "a"),  # no replacement: remove
        ({"pattern": "x", "replacement": None}, "xax", "a"),
        ({"pattern": "a", "replacement": "b", "pattern2": "b", "replacement2": "c"}, "ab", "cc"),
        ({"pattern": "1", "replacement": "9"}, 121, "929"),  # numbers are replaced as strings
        ({"pattern": "ru", "replacement": "xx"}, True, "txxe"),
        ({"pattern": "x", "replacement": "y"}, None, None),
        ({"pattern": "x", "replacement": "y"}, {"x": 1}, {"x": 1}),
    ],
)
def test_replace(options: dict[str, Any], value: object, expected: object) -> None:
    getter = compile_value({"@replace": {**options, "value": {"@path": "$.v"}}})
    assert getter({"v": value}) == expected


def test_replace_of_absent_value_is_absent() -> None:
    getter = compile_value({"@replace": {"pattern": "x", "value": {"@path": "$.v"}}})
    assert getter({}) is ABSENT


def test_objects_and_arrays_drop_absent_members_and_nest_directives() -> None:
    raw = {
        "name": {"@path": "$.traits.name"},
        "gone": {"@path": "$.nope"},
        "null": {"@path": "$.traits.nick"},
        "deep": {
            "skus": [{"@path": "$.properties.items[0].sku"}, {"@path": "$.nope"}, "lit"],
            "greeting": {
                "@if": {
                    "exists": {"@path": "$.traits.name"},
                    "then": {
                        "@case": {"mode": "upper", "value": {"@template": "hi {{traits.name}}"}}
                    },
                }
            },
        },
    }
    assert compile_value(raw)(EVENT) == {
        "name": "Jane",
        "null": None,
        "deep": {"skus": ["A1", "lit"], "greeting": "HI JANE"},
    }


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (PROFILE_DEFAULTS["current_location"], {}),
        (TRACK_DEFAULTS["name"], "Order Completed"),
        (TRACK_DEFAULTS["enable_batching"], False),
    ],
)
def test_segment_defaults_compile(raw: object, expected: object) -> None:
    assert compile_value(raw)(EVENT) == expected


def test_default_name_falls_back_to_page_name() -> None:
    getter = compile_value(TRACK_DEFAULTS["name"])
    assert getter({"type": "page", "name": "Pricing"}) == "Pricing"
    assert getter({"type": "page", "event": None, "name": "Pricing"}) == "Pricing"
    assert getter({"type": "page"}) is ABSENT


@pytest.mark.parametrize(
    ("raw", "where", "fragments"),
    [
        ({"@paht": "$.a"}, "fields.x.@paht", ["unknown directive @paht", "did you mean @path?"]),
        ({"@frobnicate": 1}, "fields.x.@frobnicate", ["unknown directive @frobnicate"]),
        ({"@path": 5}, "fields.x.@path", ["@path expects a string"]),
        ({"@path": "$.a["}, "fields.x.@path", ["cannot read the path"]),
        ({"@path": "$.a", "b": 1}, "fields.x", ["exactly one key"]),
        ({"@template": ["x"]}, "fields.x.@template", ["@template expects a string"]),
        ({"@if": "x"}, "fields.x.@if", ["@if expects an object"]),
        ({"@if": {"then": 1}}, "fields.x.@if", ['exactly one of "exists" or "blank"']),
        (
            {"@if": {"exists": 1, "blank": 2}},
            "fields.x.@if",
            ['exactly one of "exists" or "blank"'],
        ),
        (
            {"@if": {"exists": 1, "than": 2}},
            "fields.x.@if",
            ["unknown key 'than'", "did you mean 'then'"],
        ),
        (
            {"@if": {"exists": 1, "then": {"@pth": "$.a"}}},
            "fields.x.@if.then.@pth",
            ["did you mean @path?"],
        ),
        ({"@case": {"mode": "title", "value": "x"}}, "fields.x.@case", ['"lower" or "upper"']),
        ({"@case": {"mode": "lower"}}, "fields.x.@case", ["missing 'value'"]),
        ({"@replace": {"value": "x"}}, "fields.x.@replace", ["missing 'pattern'"]),
        ({"@replace": {"pattern": "", "value": "x"}}, "fields.x.@replace", ["non-empty string"]),
        (
            {"@replace": {"pattern": "a", "replacement": 1, "value": "x"}},
            "fields.x.@replace",
            ["to be a string"],
        ),
        (
            {"@replace": {"pattern": "a", "global": "yes", "value": "x"}},
            "fields.x.@replace",
            ["true or false"],
        ),
        ({"a": [1, {"@nope": 1}]}, "fields.x.a[1].@nope", ["unknown directive @nope"]),
        ({1: "x"}, "fields.x", ["keys must be strings"]),
        ({"a": {1, 2}}, "fields.x.a", ["set is not a JSON value"]),
    ],
)
def test_bad_directives_are_reported_with_where(
    raw: object, where: str, fragments: list[str]
) -> None:
    with pytest.raises(DirectiveError) as caught:
        compile_value(raw, "fields.x")
    assert caught.value.where == where
    assert isinstance(caught.value, ValueError)
    for fragment in fragments:
        assert fragment in str(caught.value)
    assert str(caught.value).startswith(where + ": ")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (52.0, "52"),
        (52.5, "52.5"),
        (-0.0, "0"),
        (0.1, "0.1"),
        (1e21, "1e+21"),
        (1.5e17, "150000000000000000"),
        (1e-7, "1e-7"),
        (1.25e-7, "1.25e-7"),
        (0.000001, "0.000001"),
        (123456789.125, "123456789.125"),
        (-3.5, "-3.5"),
        (float("inf"), "Infinity"),
        (float("nan"), "NaN"),
        (42, "42"),
    ],
)
def test_js_number_matches_javascript(value: float, text: str) -> None:
    assert js_number(value) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [(True, "true"), (False, "false"), (None, "null"), ("s", "s"), ({"a": [1]}, '{"a":[1]}')],
)
def test_js_string(value: object, text: str) -> None:
    assert js_string(value) == text
