"""Mapping-kit directives as Segment's mapping-kit reads them: literals, objects, arrays, every
directive, missing and falsy values, and the errors a bad mappings file gets at start-up.
tests/unit/test_segment_parity.py checks the same against Segment's own code, case by case."""

from __future__ import annotations

import copy
import pickle
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config.directives import (
    ABSENT,
    DirectiveError,
    MappingError,
    compile_field,
    compile_value,
    js_number,
    js_string,
    lookup,
    parse_path,
    validate_mapping,
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


def value_of(raw: object, event: Any = None) -> Any:
    """A field's value as Segment's transform() leaves it."""
    return compile_field(raw)(EVENT if event is None else event)


def refusal(raw: object) -> str:
    """Why a field value is refused at start-up ("" when it is accepted)."""
    problems = validate_mapping({"x": raw}, "fields")
    if problems:
        return "; ".join(problems)
    try:
        compile_value(raw, "fields.x")
    except DirectiveError as ex:
        assert str(ex).startswith(ex.where + ": ")
        return str(ex)
    return ""


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
    assert value_of(raw) == expected


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("$.userId", "user-123"),
        ("$.traits.name", "Jane"),
        ("$.traits.nick", None),  # present null stays null
        ("$.traits.missing", ABSENT),
        ("$.nothing.deeper.still", ABSENT),
        ("$.traits.nick.deeper", None),  # Segment's lookup stops at null: null, not missing
        ("$.traits.empty.deeper", ""),
        ("$.userId.length", 8),  # JavaScript's length of a string
        ("$.properties.items[0].sku", "A1"),
        ("$.properties.items[1].sku", "B2"),
        ("$.properties.items[2].sku", ABSENT),
        ("$.properties.items.1.sku", "B2"),
        ("$.properties.items.length", 2),
        ("$.list[1]", 20),
        ("$['context']['weird key']['a b']", ABSENT),  # quoted keys split at "[" only before
        ("$.context['weird key']['a b']", 7),
        ('$.context["weird key"]["a b"]', 7),
        ("traits.name", "Jane"),  # "$." is optional, as in Segment
        ("$.", EVENT),
        ("", EVENT),
        ("$", ABSENT),  # Segment looks for a key named "$"
        ("$.properties", EVENT["properties"]),
    ],
)
def test_path_reads_the_event(path: str, expected: object) -> None:
    assert value_of({"@path": path}) == expected


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
        ("$.a[0].b", ("a", "0", "b")),
        ("$['a b'].c", ("$", "a b", "c")),
        ("$.a['b c']", ("a", "b c")),
        ("a.b", ("a", "b")),
        ("a[b]", ("a[b]",)),
        ("$", ("$",)),
        ("$.", ()),
    ],
)
def test_parse_path_splits_as_segment_does(text: str, keys: tuple[object, ...]) -> None:
    assert parse_path(text) == keys


def test_lookup_through_lists_and_objects() -> None:
    assert lookup({"a": [{"b": 1}]}, ("a", "0", "b")) == 1
    assert lookup({"a": {"0": "zero"}}, ("a", "0")) == "zero"
    assert lookup({"a": [1]}, ("a", "x")) is ABSENT
    assert lookup({"a": 0}, ("a", "x")) == 0
    assert lookup({"a": "abc"}, ("a", "1")) == "b"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # exists: present and not null
        ({"@if": {"exists": {"@path": "$.event"}, "then": "T", "else": "E"}}, "T"),
        ({"@if": {"exists": {"@path": "$.traits.nick"}, "then": "T", "else": "E"}}, "E"),
        ({"@if": {"exists": {"@path": "$.nope"}, "then": "T", "else": "E"}}, "E"),
        ({"@if": {"exists": {"@path": "$.traits.empty"}, "then": "T", "else": "E"}}, "T"),
        # blank: then when the value is NOT blank (there, not null, not == "")
        ({"@if": {"blank": {"@path": "$.traits.empty"}, "then": "T", "else": "E"}}, "E"),
        ({"@if": {"blank": {"@path": "$.traits.nick"}, "then": "T", "else": "E"}}, "E"),
        ({"@if": {"blank": {"@path": "$.nope"}, "then": "T", "else": "E"}}, "E"),
        ({"@if": {"blank": {"@path": "$.traits.name"}, "then": "T", "else": "E"}}, "T"),
        ({"@if": {"blank": {"@path": "$.properties.zero"}, "then": "T", "else": "E"}}, "E"),
        ({"@if": {"blank": {"@path": "$.list"}, "then": "T", "else": "E"}}, "T"),
        # missing branches are absent; a falsy else is no else
        ({"@if": {"exists": {"@path": "$.nope"}, "then": "T"}}, ABSENT),
        ({"@if": {"exists": {"@path": "$.event"}, "else": "E"}}, ABSENT),
        ({"@if": {"exists": {"@path": "$.nope"}, "then": "T", "else": ""}}, ABSENT),
        ({"@if": {"exists": {"@path": "$.nope"}, "then": "T", "else": None}}, ABSENT),
        ({"@if": {"exists": {"@path": "$.event"}, "then": None}}, None),
        (
            {"@if": {"exists": {"@path": "$.event"}, "then": {"@path": "$.event"}}},
            "Order Completed",
        ),
    ],
)
def test_if(raw: object, expected: object) -> None:
    assert value_of(raw) == expected


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
        ("{{$.userId}}", ""),  # templates take no "$."
        ("{{list}}", "10,20"),  # String() of an array
        ("{{traits}}", "[object Object]"),
    ],
)
def test_template(template: str, expected: str) -> None:
    assert value_of({"@template": template}) == expected


def test_template_never_escapes() -> None:
    event = {"traits": {"name": "O'Brien <b>"}, "url": "https://ex.com/p?a=1&b=2"}
    assert value_of({"@template": "{{traits.name}}"}, event) == "O'Brien <b>"
    assert value_of({"@template": "{{{traits.name}}}"}, event) == "O'Brien <b>"
    assert value_of({"@template": "{{url}}"}, event) == "https://ex.com/p?a=1&b=2"


@pytest.mark.parametrize(
    ("inner", "expected"),
    [
        ({"@path": "$.userId"}, "user-123"),
        ({"a": {"@path": "$.nope"}, "b": 1}, {"b": 1}),
        ([{"@template": "{{traits.name}}"}], ["Jane"]),
        ("{{traits.name}}", "{{traits.name}}"),
    ],
)
def test_literal_resolves_what_is_inside(inner: object, expected: object) -> None:
    assert value_of({"@literal": inner}) == expected


@pytest.mark.parametrize(
    ("operator", "value", "expected"),
    [
        ("lower", {"@path": "$.traits.email"}, "jane@example.com"),
        ("upper", {"@path": "$.traits.email"}, "JANE@EXAMPLE.COM"),
        ("lower", {"@path": "$.traits.age"}, 41),  # non-strings pass through
        ("lower", {"@path": "$.traits.nick"}, None),
        ("upper", {"@path": "$.nope"}, ABSENT),
    ],
)
def test_case(operator: str, value: object, expected: object) -> None:
    assert value_of({"@case": {"operator": operator, "value": value}}) == expected


def test_case_with_another_operator_fails_the_event_only_for_strings() -> None:
    getter = compile_value({"@case": {"operator": "title", "value": {"@path": "$.v"}}})
    assert getter({"v": 5}) == 5
    with pytest.raises(MappingError):
        getter({"v": "x"})


@pytest.mark.parametrize(
    ("options", "value", "expected"),
    [
        ({"pattern": "-", "replacement": "_"}, "a-b-c", "a_b_c"),
        ({"pattern": "-", "replacement": "_", "global": False}, "a-b-c", "a_b-c"),
        ({"pattern": "A", "replacement": "x", "ignorecase": True}, "aAa", "xxx"),
        ({"pattern": "A", "replacement": "x"}, "aAa", "axa"),
        ({"pattern": ".", "replacement": "!"}, "a.b", "a!b"),  # plain text, not a regex
        ({"pattern": "+", "replacement": "[$&]"}, "1+1", "1[+]1"),  # JavaScript's $& and $$
        ({"pattern": "+", "replacement": "$$1"}, "1+1", "1$11"),
        ({"pattern": "x"}, "xax", "a"),  # no replacement: remove
        ({"pattern": "x", "replacement": None}, "xax", "a"),
        ({"pattern": "a", "replacement": "b", "pattern2": "b", "replacement2": "c"}, "ab", "cc"),
        ({"pattern": "1", "replacement": "9"}, 121, "929"),  # numbers are replaced as strings
        ({"pattern": "ru", "replacement": "xx"}, True, "txxe"),
        ({"pattern": "x", "replacement": "y"}, None, ""),  # anything else becomes ""
        ({"pattern": "x", "replacement": "y"}, {"x": 1}, ""),
    ],
)
def test_replace(options: dict[str, Any], value: object, expected: object) -> None:
    getter = compile_value({"@replace": {**options, "value": {"@path": "$.v"}}})
    assert getter({"v": value}) == expected


def test_replace_of_a_missing_value_is_empty_text() -> None:
    getter = compile_value({"@replace": {"pattern": "x", "value": {"@path": "$.v"}}})
    assert getter({}) == ""


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"@json": {"mode": "encode", "value": {"@path": "$.traits"}}},
         '{"name":"Jane","email":"JANE@Example.com","nick":null,"empty":"","age":41}'),
        ({"@json": {"mode": "decode", "value": '{"a":[1,2]}'}}, {"a": [1, 2]}),
        ({"@json": {"mode": "decode", "value": "{oops"}}, "{oops"),
        ({"@flatten": {"separator": ".", "value": {"@path": "$.properties.items"}}},
         {"0.sku": "A1", "1.sku": "B2"}),
        ({"@merge": {"direction": "right", "objects": [{"a": 1, "b": 1}, {"b": 2}]}},
         {"a": 1, "b": 2}),
        ({"@merge": {"direction": "left", "objects": [{"a": 1, "b": 1}, {"b": 2}]}},
         {"a": 1, "b": 1}),
        ({"@arrayPath": ["$.properties.items", {"id": {"@path": "$.sku"}}]},
         [{"id": "A1"}, {"id": "B2"}]),
        ({"@excludeWhenNull": {"@path": "$.traits"}},
         {"name": "Jane", "email": "JANE@Example.com", "empty": "", "age": 41}),
        ({"@excludeWhenNull": {"@path": "$.traits.nick"}}, ABSENT),
        ({"@transform": {"apply": {"n": {"@path": "$.traits.name"}},
                         "mapping": {"@template": "hi {{n}}"}}}, "hi Jane"),
        ({"@path": "$.traits.name", "_metadata": {"label": "Name"}}, "Jane"),
    ],
)  # fmt: skip
def test_the_other_directives(raw: object, expected: object) -> None:
    assert value_of(raw) == expected


def test_objects_drop_absent_members_and_arrays_keep_them() -> None:
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
                        "@case": {"operator": "upper", "value": {"@template": "hi {{traits.name}}"}}
                    },
                }
            },
        },
    }
    assert value_of(raw) == {
        "name": "Jane",
        "null": None,
        "deep": {"skus": ["A1", ABSENT, "lit"], "greeting": "HI JANE"},  # ABSENT: sent as null
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
    assert value_of(raw) == expected


def test_default_name_falls_back_to_page_name() -> None:
    getter = compile_value(TRACK_DEFAULTS["name"])
    assert getter({"type": "page", "name": "Pricing"}) == "Pricing"
    assert getter({"type": "page", "event": None, "name": "Pricing"}) == "Pricing"
    assert getter({"type": "page"}) is ABSENT


@pytest.mark.parametrize(
    ("raw", "fragments"),
    [
        ({"@paht": "$.a"}, ["invalid directive: @paht", "did you mean @path?"]),
        ({"@frobnicate": 1}, ["invalid directive: @frobnicate"]),
        ({"@path": 5}, ["should be a string or a mapping directive"]),
        ({"@path": "$.a", "b": 1}, ["should only have one @-prefixed key"]),
        ({"@path": "$.a", "@template": "b"}, ["should only have one @-prefixed key"]),
        ({"@template": ["x"]}, ["should be a string or a mapping directive"]),
        ({"@if": "x"}, ["should be an object"]),
        ({"@if": {"then": 1}}, ['requires an "exists" key or a "blank" key']),
        ({"@if": {"exists": 0, "then": 1}}, ['requires an "exists" key or a "blank" key']),
        ({"@if": {"exists": 1, "then": {"@pth": "$.a"}}}, ["did you mean @path?"]),
        ({"@case": {"operator": 5, "value": "x"}}, ["should be a string"]),
        ({"@case": {"mode": "lower", "value": "x"}}, ['requires a "operator" key']),
        ({"@replace": {"value": "x"}}, ['should have field "pattern"']),
        ({"@replace": {"pattern": "", "value": "x"}}, ["length 1 or greater"]),
        ({"@replace": {"pattern": "abcdefghijk", "value": "x"}}, ["length 10 or less"]),
        ({"@replace": {"pattern": "a", "replacement": 1, "value": "x"}}, ["should be a string"]),
        ({"@replace": {"pattern": "a", "global": "yes", "value": "x"}}, ["should be a boolean"]),
        ({"@json": {"mode": "zip", "value": "x"}}, ["should be one of encode, decode"]),
        ({"@json": {"mode": "encode", "value": 0}}, ['requires a "value" key']),
        ({"@merge": {"objects": [{"a": 1}]}}, ['requires a "direction" key']),
        ({"@flatten": {"value": 1}}, ['requires a "separator" key']),
        ({"a": [1, {"@nope": 1}]}, ["unknown directive @nope"]),  # Segment fails every event
        ({1: "x"}, ["keys must be strings"]),
        ({"a": {1, 2}}, ["set is not a JSON value"]),
    ],
)
def test_bad_directives_are_refused_naming_the_spot(raw: object, fragments: list[str]) -> None:
    reason = refusal(raw)
    assert reason.startswith("fields.x")
    for fragment in fragments:
        assert fragment in reason


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ userId | upcase }}", "USER-123"),
        ("{{ properties.total }}|{{ traits.missing }}|{{ list }}", "59.9||1020"),
        ("{% if traits.name == 'Jane' %}hi {{ traits.name }}{% endif %}", "hi Jane"),
        ("", ""),
    ],
)
def test_liquid_renders_as_segments_liquidjs(template: str, expected: str) -> None:
    assert value_of({"@liquid": template}) == expected


@pytest.mark.parametrize(
    ("template", "fragment"),
    [
        ("{% for t in list %}{{ t }}{% endfor %}", 'tag "for" is disabled in Segment'),
        ("{{ list | reverse }}", 'filter "reverse" is disabled in Segment'),
        ("{{ traits.age | plus: 1 }}", 'the filter "plus" is not supported here'),
        ("{% if traits.age > 3 %}x{% endif %}", "not supported here"),
        ("x" * 1001, "limited to 1000 characters"),
        ("{{ userId ", "not a valid Liquid template"),
    ],
)
def test_liquid_that_cannot_render_the_same_is_refused(template: str, fragment: str) -> None:
    assert fragment in refusal({"@liquid": template})


_JSON_LEAVES = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5), st.sampled_from([0.5, -0.0, 1e21]),
    st.sampled_from(["", "a", "$.userId", "$.traits", "{{userId}}", "lower", "encode", "left"]),
)  # fmt: skip
_KEYS = st.sampled_from(
    ["@path", "@if", "@template", "@literal", "@case", "@replace", "@arrayPath", "@json",
     "@flatten", "@merge", "@transform", "@excludeWhenNull", "exists", "blank", "then", "else",
     "operator", "value", "pattern", "replacement", "mode", "separator", "objects", "direction",
     "apply", "mapping", "_metadata", "a"]
)  # fmt: skip
_MAPPING_VALUES = st.recursive(
    _JSON_LEAVES,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_KEYS, inner, max_size=3)),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(_MAPPING_VALUES)
def test_any_value_is_refused_at_start_up_or_runs_with_mapping_errors_only(raw: object) -> None:
    if refusal(raw):
        return
    getter = compile_field(raw, "fields.x")
    for event in (EVENT, {}, {"userId": None, "traits": []}):
        try:
            value = getter(event)
        except MappingError as ex:
            assert str(ex)  # the event is rejected with a reason
            continue
        assert no_undefined_members(value)  # as transform() leaves it


def no_undefined_members(value: object) -> bool:
    if isinstance(value, dict):
        return all(v is not ABSENT and no_undefined_members(v) for v in value.values())
    if isinstance(value, list):
        return all(no_undefined_members(v) for v in value)
    return True


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
        (2**60, "1152921504606847000"),
    ],
)
def test_js_number_matches_javascript(value: float, text: str) -> None:
    assert js_number(value) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (True, "true"),
        (False, "false"),
        (None, "null"),
        ("s", "s"),
        ({"a": [1]}, "[object Object]"),
        ([1, None, [2, 3]], "1,,2,3"),
    ],
)
def test_js_string(value: object, text: str) -> None:
    assert js_string(value) == text
