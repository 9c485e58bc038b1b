"""The inputs of the Segment parity corpus: mappings, triggers, actions, timestamps, deletes.

Each case says what goes in; Segment's own code (run by evaluate.ts) says what comes out. Cases
the fleet refuses on purpose are marked `"fleet": "refuses"` (triggers: `"accept": false`), with
the reason in docs/mappings.md.
"""

from __future__ import annotations

import random
from typing import Any

RICH_EVENT: dict[str, Any] = {
    "type": "track",
    "event": "Order Completed",
    "userId": "user-123",
    "anonymousId": "anon-1",
    "messageId": "m1",
    "timestamp": "2024-05-01T12:05:00.000Z",
    "properties": {
        "total": 59.9, "count": 0, "free": False, "coupon": None, "note": "", "blank": " ",
        "tags": ["a", "b", None], "empty_list": [], "empty_obj": {},
        "items": [{"sku": "A1", "price": 10}, {"sku": "B2", "price": 0, "extra": None}],
        "nested": {"a": {"b": 1}, "c": None, "d": "", "e": [1, {"f": None}]},
        "url": "https://ex.com/p?a=1&b=2", "name": "O'Brien <b>&\"x\"", "float": 1.5,
        "int_float": 52.0, "numstr": "52.5", "boolstr": "true", "json": '{"x":1,"y":[1,2]}',
        "badjson": "{x", "email": "JANE@Example.COM", "product 1": "x", "10": "ten", "2": "two",
        "emoji": "😀ab", "big": 1e21, "small": 1e-7, "neg_zero": -0.0, "dollar": "a$b",
        "template": "{{properties.url}}", "dotted.key": "dk", "sigma": "ΣΑΣ ß",
    },
    "traits": {"email": "jane@example.com", "name": "Jane", "age": 41, "plan": None},
    "context": {
        "device": {"id": "D1", "type": "ios"},
        "location": {"latitude": 52.52, "longitude": 0},
        "page": {"url": "https://ex.com/a"},
    },
}  # fmt: skip
SPARSE_EVENT: dict[str, Any] = {
    "type": "identify", "userId": "u2", "traits": {}, "properties": None, "event": "",
}  # fmt: skip
ODD_EVENT: dict[str, Any] = {
    "type": "track",
    "event": None,
    "userId": 5,
    "name": 0,
    "properties": {
        "total": "59.9", "count": "0", "tags": "a,b", "items": {"sku": "X"}, "nested": 0,
        "note": " ", "free": "false", "url": 42, "name": True, "email": ["A@B.C"], "json": 7,
        "emoji": "", "numstr": [], "coupon": "c", "boolstr": False, "float": None,
    },
    "traits": None,
    "context": {"device": None, "location": {"latitude": "52.5", "longitude": ""}},
}  # fmt: skip
PAGE_EVENT: dict[str, Any] = {
    "type": "page",
    "name": "Home",
    "properties": {"total": -1, "nested": {"a": []}, "items": [], "tags": [[1, 2], [3]]},
    "context": {},
}
MAPPING_EVENTS = [RICH_EVENT, SPARSE_EVENT, ODD_EVENT, PAGE_EVENT, {}]


def _mapping_values() -> list[Any]:
    p = "$.properties"
    values: list[Any] = [
        # literals and plain structures
        "text", 0, 1.5, True, False, None, "", [], {}, [1, "a", None], {"a": 1, "b": None},
        {"a": {"@path": f"{p}.missing"}, "b": 1}, [{"@path": f"{p}.missing"}, 1],
        [{"@path": f"{p}.total"}, {"@path": f"{p}.nothing"}],
        {"x": [{"y": {"@path": f"{p}.nothing"}}]},
        {"_metadata": {"a": 1}, "k": 1},
        # @path
        {"@path": "$.userId"}, {"@path": "$.properties"}, {"@path": f"{p}.total"},
        {"@path": f"{p}.missing"}, {"@path": f"{p}.coupon"}, {"@path": f"{p}.coupon.x"},
        {"@path": f"{p}.count.x"}, {"@path": f"{p}.free.x"}, {"@path": f"{p}.note.x"},
        {"@path": f"{p}.nested.c.x"}, {"@path": f"{p}.items[0].sku"},
        {"@path": f"{p}.items[1].extra"}, {"@path": f"{p}.items.1.sku"},
        {"@path": f"{p}.items[5].sku"}, {"@path": f"{p}.items.length"},
        {"@path": f"{p}.url.length"}, {"@path": f"{p}.url.0"}, {"@path": f"{p}.emoji.0"},
        {"@path": "$.properties['product 1']"}, {"@path": '$.properties["product 1"]'},
        {"@path": f"{p}.10"}, {"@path": f"{p}[10]"}, {"@path": f"{p}.dotted.key"},
        {"@path": "$.properties['dotted.key']"}, {"@path": "properties.total"},
        {"@path": "$"}, {"@path": "$."}, {"@path": ""}, {"@path": "$.traits.email"},
        {"@path": "$.context.location"}, {"@path": f"{p}.tags[2]"},
        {"@path": {"@path": f"{p}.template"}}, {"@path": {"@template": "$.{{type}}"}},
        {"@path": {"@path": f"{p}.total"}}, {"@path": 5},
        {"@path": "$.properties.total", "_metadata": {"label": "Total"}},
        # @template
        {"@template": "{{properties.url}}"}, {"@template": "{{{properties.url}}}"},
        {"@template": "{{properties.name}}"}, {"@template": "Hi {{traits.name}}!"},
        {"@template": "{{ traits.name }}"}, {"@template": "{{properties.missing}}|"},
        {"@template": "{{properties.coupon}}|{{properties.count}}|{{properties.free}}"},
        {"@template": "{{properties.tags}}"}, {"@template": "{{properties.nested}}"},
        {"@template": "{{properties.items}}"}, {"@template": "{{properties.float}}"},
        {"@template": "{{properties.int_float}}"}, {"@template": "{{properties.big}}"},
        {"@template": "{{properties.small}}"}, {"@template": "{{$.userId}}"},
        {"@template": "{{{properties.template}}}"}, {"@template": "{{userId}} {{{userId}}}"},
        {"@template": "{{ }}x"}, {"@template": "{{properties.items[0].sku}}"},
        {"@template": "{{properties['product 1']}}"}, {"@template": "no tags"},
        {"@template": "{{properties.neg_zero}}"}, {"@template": {"@path": f"{p}.template"}},
        {"@template": 5},
        # @literal
        {"@literal": "x"}, {"@literal": {"@path": "$.userId"}},
        {"@literal": {"a": {"@path": "$.userId"}}}, {"@literal": [{"@path": "$.userId"}]},
        {"@literal": None}, {"@literal": {"@pth": "x"}},
        # @if
        {"@if": {"exists": {"@path": "$.event"}, "then": {"@path": "$.event"},
                 "else": {"@path": "$.name"}}},
        {"@if": {"exists": {"@path": f"{p}.coupon"}, "then": "yes", "else": "no"}},
        {"@if": {"exists": {"@path": f"{p}.count"}, "then": "yes", "else": "no"}},
        {"@if": {"blank": {"@path": f"{p}.note"}, "then": "not blank", "else": "blank"}},
        {"@if": {"blank": {"@path": f"{p}.count"}, "then": "not blank", "else": "blank"}},
        {"@if": {"blank": {"@path": f"{p}.free"}, "then": "not blank", "else": "blank"}},
        {"@if": {"blank": {"@path": f"{p}.blank"}, "then": "not blank", "else": "blank"}},
        {"@if": {"blank": {"@path": f"{p}.empty_list"}, "then": "not blank", "else": "blank"}},
        {"@if": {"blank": {"@path": f"{p}.tags"}, "then": "not blank", "else": "blank"}},
        {"@if": {"blank": {"@path": f"{p}.empty_obj"}, "then": "not blank", "else": "blank"}},
        {"@if": {"blank": {"@path": f"{p}.missing"}, "then": "not blank", "else": "blank"}},
        {"@if": {"blank": {"@path": f"{p}.total"}, "then": "not blank"}},
        {"@if": {"exists": {"@path": f"{p}.total"}, "else": "no"}},
        {"@if": {"exists": {"@path": f"{p}.missing"}, "then": "yes", "else": None}},
        {"@if": {"exists": {"@path": f"{p}.missing"}, "then": "yes", "else": ""}},
        {"@if": {"exists": {"@path": f"{p}.missing"}, "then": "yes", "else": 0}},
        {"@if": {"exists": {"@path": f"{p}.total"}, "then": None}},
        {"@if": {"exists": "constant", "then": 1}}, {"@if": {"exists": None, "blank": "x",
                                                            "then": 1, "else": 2}},
        {"@if": {"exists": 0, "then": 1}}, {"@if": {"then": 1}}, {"@if": "x"},
        {"@if": {"exists": {"@path": f"{p}.total"}, "then": {"a": {"@path": f"{p}.nothing"}}}},
        # @case
        {"@case": {"operator": "lower", "value": {"@path": f"{p}.email"}}},
        {"@case": {"operator": "upper", "value": {"@path": f"{p}.email"}}},
        {"@case": {"operator": "upper", "value": {"@path": f"{p}.sigma"}}},
        {"@case": {"operator": "lower", "value": {"@path": f"{p}.sigma"}}},
        {"@case": {"operator": "lower", "value": {"@path": f"{p}.total"}}},
        {"@case": {"operator": "lower", "value": {"@path": f"{p}.missing"}}},
        {"@case": {"operator": "lower", "value": "ABC"}}, {"@case": {"operator": "lower"}},
        {"@case": {"operator": "LOWER", "value": {"@path": f"{p}.email"}}},
        {"@case": {"mode": "lower", "value": "ABC"}}, {"@case": {"operator": "lower", "value": 5}},
        # @replace
        {"@replace": {"pattern": "-", "replacement": "_", "value": "a-b-c"}},
        {"@replace": {"pattern": "-", "replacement": "_", "value": "a-b-c", "global": False}},
        {"@replace": {"pattern": ".", "replacement": "!", "value": {"@path": f"{p}.url"}}},
        {"@replace": {"pattern": "a", "replacement": "X", "value": "aAa", "ignorecase": True}},
        {"@replace": {"pattern": "b", "value": {"@path": f"{p}.url"}}},
        {"@replace": {"pattern": "b", "replacement": None, "value": "abc"}},
        {"@replace": {"pattern": "5", "replacement": "6", "value": {"@path": f"{p}.total"}}},
        {"@replace": {"pattern": "a", "replacement": "b", "value": {"@path": f"{p}.free"}}},
        {"@replace": {"pattern": "a", "replacement": "b", "value": {"@path": f"{p}.missing"}}},
        {"@replace": {"pattern": "a", "replacement": "b", "value": {"@path": f"{p}.tags"}}},
        {"@replace": {"pattern": "a", "replacement": "b", "value": {"@path": f"{p}.coupon"}}},
        {"@replace": {"pattern": "$", "replacement": "[$&|$$|$`|$'|$1]", "value": "a$b"}},
        {"@replace": {"pattern": "b", "replacement": "$'", "value": "abc"}},
        {"@replace": {"pattern": "a", "replacement": "1", "pattern2": "1", "replacement2": "2",
                      "value": "aaa"}},
        {"@replace": {"pattern": "a", "replacement": "1", "pattern2": "1", "value": "aaa"}},
        {"@replace": {"pattern": "\u03c3", "replacement": "s", "value": {"@path": f"{p}.sigma"},
                      "ignorecase": True}},
        {"@replace": {"pattern": "ss", "replacement": "x", "value": {"@path": f"{p}.sigma"},
                      "ignorecase": True}},
        {"@replace": {"pattern": "a", "value": ""}}, {"@replace": {"pattern": "", "value": "a"}},
        {"@replace": {"pattern": "abcdefghijk", "value": "a"}},
        {"@replace": {"pattern": "a", "replacement": "abcdefghijk", "value": "a"}},
        {"@replace": {"value": "a"}},
        {"@replace": {"pattern": "a", "value": "abc", "global": "yes"}},
        # @arrayPath
        {"@arrayPath": [f"{p}.items", {"id": {"@path": "$.sku"}, "p": {"@path": "$.price"}}]},
        {"@arrayPath": [f"{p}.items"]}, {"@arrayPath": [f"{p}.items", {}]},
        {"@arrayPath": [f"{p}.nested", {"a": {"@path": "$.a"}}]},
        {"@arrayPath": [f"{p}.tags", {"v": {"@path": "$.x"}}]},
        {"@arrayPath": [f"{p}.missing", {"v": {"@path": "$.x"}}]},
        {"@arrayPath": [{"@path": f"{p}.items"}, {"id": {"@path": "$.sku"}}]},
        {"@arrayPath": [f"{p}.items", {"@path": "$.sku"}]}, {"@arrayPath": "x"},
        {"@arrayPath": []},
        # @json
        {"@json": {"mode": "encode", "value": {"@path": f"{p}.nested"}}},
        {"@json": {"mode": "encode", "value": {"@path": "$.properties"}}},
        {"@json": {"mode": "encode", "value": {"@path": f"{p}.missing"}}},
        {"@json": {"mode": "encode", "value": {"@path": f"{p}.name"}}},
        {"@json": {"mode": "encode", "value": {"a": {"@path": f"{p}.missing"}, "b": [
            {"@path": f"{p}.missing"}]}}},
        {"@json": {"mode": "decode", "value": {"@path": f"{p}.json"}}},
        {"@json": {"mode": "decode", "value": {"@path": f"{p}.badjson"}}},
        {"@json": {"mode": "decode", "value": {"@path": f"{p}.total"}}},
        {"@json": {"mode": "decode", "value": {"@path": f"{p}.numstr"}}},
        {"@json": {"mode": "Encode", "value": "x"}}, {"@json": {"mode": "encode", "value": 0}},
        {"@json": {"mode": "encode"}}, {"@json": {"mode": "zip", "value": "x"}},
        # @flatten
        {"@flatten": {"separator": ".", "value": {"@path": "$.properties"}}},
        {"@flatten": {"separator": "_", "value": {"@path": f"{p}.nested"}}},
        {"@flatten": {"separator": "_", "value": {"@path": f"{p}.items"}, "omitArrays": True}},
        {"@flatten": {"separator": "/", "value": {"@path": f"{p}.total"}}},
        {"@flatten": {"separator": ".", "value": {"@path": f"{p}.missing"}}},
        {"@flatten": {"separator": ".", "value": {"a.b": 1, "a": {"b": 2}}}},
        {"@flatten": {"separator": ".", "value": {"a.b": 1, "a": {"b": {"@path": "$.nope"}}}}},
        {"@flatten": {"separator": "", "value": {"a": {"b": 1}}}},
        {"@flatten": {"value": {"a": 1}}},
        # @merge
        {"@merge": {"direction": "right", "objects": [{"@path": "$.traits"},
                                                       {"@path": "$.context.device"}]}},
        {"@merge": {"direction": "left", "objects": [{"a": 1, "b": 1}, {"b": 2, "c": 2}]}},
        {"@merge": {"direction": "right", "objects": [{"a": 1, "b": 1}, {"b": 2, "c": 2}]}},
        {"@merge": {"direction": "right", "objects": [{"a": 1},
                                                       {"a": {"@path": "$.nothing"}}]}},
        {"@merge": {"direction": "right", "objects": [{"@path": f"{p}.missing"}, {"a": 1}]}},
        {"@merge": {"direction": "right", "objects": [{"@path": f"{p}.url"}]}},
        {"@merge": {"direction": "LEFT", "objects": [{"a": 1}, {"a": 2}]}},
        {"@merge": {"objects": [{"a": 1}]}}, {"@merge": {"direction": "left", "objects": "x"}},
        {"@merge": {"direction": "left", "objects": [5]}},
        # @transform
        {"@transform": {"apply": {"n": {"@path": "$.traits.name"}},
                        "mapping": {"name": {"@path": "$.n"}}}},
        {"@transform": {"apply": {"@path": "$.properties"},
                        "mapping": {"t": {"@path": "$.total"}}}},
        {"@transform": {"apply": {"x": 1}}},
        # @excludeWhenNull
        {"@excludeWhenNull": {"@path": f"{p}.coupon"}},
        {"@excludeWhenNull": {"@path": f"{p}.nested"}},
        {"@excludeWhenNull": {"@path": f"{p}.items"}},
        {"@excludeWhenNull": {"a": None, "b": {"c": None, "d": 1}, "e": [None]}},
        {"@excludeWhenNull": {"@path": f"{p}.total"}},
        # @liquid
        {"@liquid": "{{ userId }}"}, {"@liquid": "{{ properties.total }}"},
        {"@liquid": "{{ properties.int_float }}"}, {"@liquid": "{{ properties.nested }}"},
        {"@liquid": "{{ properties.tags }}"}, {"@liquid": "{{ traits.email | upcase }}"},
        {"@liquid": "{{ traits.name | append: '!' | prepend: '<' }}"},
        {"@liquid": "{{ properties.missing | default: 'none' }}"},
        {"@liquid": "{% if properties.total > 50 %}big{% else %}small{% endif %}"},
        {"@liquid": "{% if event == 'Order Completed' %}y{% elsif event %}n{% endif %}"},
        {"@liquid": "{{ properties.url | url_encode }}"},
        {"@liquid": "{{ properties.name | escape }}"},
        {"@liquid": "{% assign x = traits.name | downcase %}{{ x }}"},
        {"@liquid": "{{ properties.items | size }}"}, {"@liquid": "{{ properties.emoji | size }}"},
        {"@liquid": "{{ properties.tags | join: '-' }}"},
        {"@liquid": "{{ 'a,b' | split: ',' | first }}|{{ 'a,b' | split: ',' | last }}"},
        {"@liquid": "{{ traits.name | truncate: 3 }}"},
        {"@liquid": "{% unless properties.free %}paid{% endunless %}"},
        {"@liquid": "{{ properties.count }}|{{ properties.free }}|{{ properties.coupon }}|"},
        {"@liquid": "{% capture c %}{{ userId }}-x{% endcapture %}{{ c | upcase }}"},
        {"@liquid": "{{ properties.sigma | downcase }} {{ properties.sigma | capitalize }}"},
        {"@liquid": "  {{- userId -}}  "}, {"@liquid": "{% raw %}{{ userId }}{% endraw %}"},
        {"@liquid": ""}, {"@liquid": "{{ properties.big }} {{ properties.small }}"},
        {"@liquid": "{% if properties.count == 0 %}zero{% endif %}"},
        {"@liquid": "{% if properties.numstr == 52.5 %}eq{% else %}ne{% endif %}"},
        {"@liquid": "{% for i in properties.tags %}{{i}}{% endfor %}"},
        {"@liquid": "{{ properties.tags | reverse }}"},
        {"@liquid": "{{ properties.total | plus: 1 }}"}, {"@liquid": 5},
        {"@liquid": "{{ userId "}, {"@liquid": "x" * 1001},
        # structure errors
        {"@path": "$.a", "@template": "x"}, {"@path": "$.a", "extra": 1}, {"@nope": 1},
        [{"@nope": 1}], [{"@path": "$.userId", "x": 1}], [{"@path": 5}],
        [{"@case": {"operator": "lower", "value": 5}}],
    ]  # fmt: skip
    return values


# Values the fleet refuses at start-up though Segment only fails when an event reaches them.
_REFUSED_VALUES = (
    {"@literal": {"@pth": "x"}}, {"@if": {"exists": 0, "then": 1}}, {"@if": {"then": 1}},
    {"@if": "x"}, {"@case": {"mode": "lower", "value": "ABC"}},
    {"@json": {"mode": "encode", "value": 0}}, {"@flatten": {"value": {"a": 1}}},
    {"@merge": {"objects": [{"a": 1}]}}, {"@transform": {"apply": {"x": 1}}}, [{"@nope": 1}],
    [{"@path": 5}], {"@arrayPath": "x"}, {"@path": 5}, {"@template": 5},
    {"@flatten": {"separator": "", "value": {"a": {"b": 1}}}},
    {"@liquid": "{% for i in properties.tags %}{{i}}{% endfor %}"},
    {"@liquid": "{{ properties.tags | reverse }}"}, {"@liquid": "{{ userId "},
    {"@liquid": "x" * 1001},
)  # fmt: skip


# Liquid the fleet does not render (it would come out differently): refused at start-up.
_UNSUPPORTED_VALUES = (
    {"@liquid": "{{ properties.total | plus: 1 }}"},
    {"@liquid": "{% if properties.total > 50 %}big{% else %}small{% endif %}"},
)


def mapping_cases() -> list[dict[str, Any]]:
    cases = []
    for value in _mapping_values():
        case: dict[str, Any] = {"kind": "mapping", "mapping": {"out": value}}
        if value in _REFUSED_VALUES:
            case["fleet"] = "refuses"
        if value in _UNSUPPORTED_VALUES:
            case["fleet"] = "unsupported"
        cases.append(case)
    # Several fields in one mapping, and a Segment-internal key.
    cases.append(
        {
            "kind": "mapping",
            "mapping": {
                "a": {"@path": "$.userId"},
                "b": {"@template": "{{event}}"},
                "c": [1, {"@path": "$.x"}],
            },
        }
    )
    cases.append({"kind": "mapping", "mapping": {"__segment_internal_directive": {"@path": "$"}},
                  "fleet": "refuses"})  # fmt: skip
    for case in cases:
        case["events"] = MAPPING_EVENTS
    return cases


TRIGGER_EVENTS: list[dict[str, Any]] = [
    RICH_EVENT,
    SPARSE_EVENT,
    ODD_EVENT,
    PAGE_EVENT,
    {"type": "track", "event": "Signed Up", "userId": "", "properties": {"total": 150,
     "plan": "pro", "flag": True, "product 1": "x", "a.b": 3, "a": {"b": 4}},
     "context": {"device": {"type": "android"}, "page": {"path": "/pricing/x"}},
     "traits": {"vip": False}},
    {"type": "identify", "userId": None, "name": None, "traits": {"plan": "pro", "age": 0,
     "email": "x@y.z"}, "context": {"os": {"name": "iOS"}}},
    {"type": "screen", "name": "Checkout Step 2", "userId": "u", "properties": {"total": 100},
     "event": "null"},
    {},
]  # fmt: skip

# (trigger, accepted by the fleet)
_TRIGGERS: list[tuple[str, bool]] = [
    ('type = "track"', True),
    ('type != "track"', True),
    ('event = "Order Completed"', True),
    ('type = "track" and event = "Signed Up"', True),
    ('type = "track" or type = "page" or type = "screen"', True),
    ('type = "identify"', True),
    ('name = "Home"', True),
    ("name != null", True),
    ("name = null", True),
    ("userId = null", True),
    ("userId != null", True),
    ('userId = "u"', True),
    ("userId = true", True),
    ("properties.total > 100", True),
    ("properties.total >= 100", True),
    ("properties.total < 100", True),
    ("properties.total <= 59.9", True),
    ("properties.total = 150", True),
    ("properties.total != 150", True),
    ('properties.total = "59.9"', True),
    ('properties.total != "59.9"', True),
    ("properties.count = 0", True),
    ("properties.count != 0", True),
    ("properties.coupon = null", True),
    ("properties.coupon != null", True),
    ("properties.free = false", True),
    ("properties.flag = true", True),
    ("properties.missing != 5", True),
    ('properties.missing != "x"', True),
    ("traits.vip = false", True),
    ("traits.age = 0", True),
    ('traits.plan = "pro"', True),
    ('context.device.type = "android"', True),
    ('context.device.type != "ios"', True),
    ('contains(event, "Order")', True),
    ('!contains(event, "Order")', True),
    ('contains(properties.url, "ex.com")', True),
    ('!contains(properties.url, "ex.com")', True),
    ('contains(name, "Step")', True),
    ('contains(userId, "user")', True),
    ('contains(traits.email, "@")', True),
    ('!contains(traits.email, "@")', True),
    ('match(event, "Order*")', True),
    ('!match(event, "Order*")', True),
    ('match(event, "*Up")', True),
    ('!match(event, "*Up")', True),
    ('match(context.page.path, "/pricing*")', True),
    ('match(name, "*")', True),
    ('match(properties.url, "https://ex.com/p?*")', True),
    ('type = "track" and (event = "Order Completed" or event = "Signed Up")', True),
    ('(type = "track" or type = "screen") and properties.total >= 100', True),
    ('(type = "track" and properties.total > 100) or (type = "screen" and name != null)', True),
    ('type = "track" and (event = "x" or contains(event, "Signed"))', True),
    ('(contains(event, "Order"))', True),
    ('properties.product\\ 1 = "x"', True),
    ("properties.a.b = 4", True),
    ("properties.a\\.b = 3", True),
    ('context.page.path = "/pricing/x"', True),
    ("properties.total>100", False),
    ('type="track"', True),
    ("properties.total > -1", True),
    ("properties.total > +99.5", True),
    ("properties.total = 150.0", True),
    ("properties.items.length > 1", True),
    ("properties.url.length > 5", True),
    ("properties.count.x = 0", True),
    ('properties.note.x = ""', True),
    ('event = "null"', True),
    ('type = "track" and event = "Signed Up" and userId = ""', True),
    ('event = "a\\b"', True),
    # refused: Segment reads these otherwise than written
    ('type = "track" and event = "Signed Up" or type = "identify"', False),
    ('type = "identify" or type = "track" and event = "Signed Up"', False),
    ('!(type = "track")', False),
    ('!type = "track"', False),
    ('not type = "track"', False),
    ('anonymousId = "anon-1"', False),
    ('type = "track" and anonymousId = "x"', False),
    ("properties.flag != true", False),
    ("properties.free != false", False),
    ('properties.total > "100"', False),
    ('match(event, "Order")', False),
    ('match(event, "*Order*")', False),
    ('match(event, "O*d")', False),
    ('((type = "track"))', False),
    ('(contains(event, "Order") or type = "page")', True),
    ('(contains(event, "Order") or type = "page") and userId = "u"', False),
    ("type = 'track'", False),
    ("true", False),
    ("", False),
    ('type = "track" AND 1', False),
    ('type = "track" and', False),
    ("type =", False),
    ('type = "track")', False),
    ('(type = "track"', False),
    ("type = null", False),
    ("event != null", False),
    ("type = 5", False),
    ("userId = 5", False),
    ('contains(type, "tr")', False),
    ('properties.total != "x" and properties.total > 5 or event = "x"', False),
    ("properties = 5", False),
    ("properties.total = properties.count", False),
    ('type = "a" type = "b"', False),
    ("properties.total <=5", False),
    ('type !="track"', False),
    ("properties.total < 5", True),
    ('type = "track\r"', True),
    ("properties.total == 150", False),
    ("contains(event, 5)", False),
    ("name = true", False),
    ("properties.total > null", False),
    ("properties.x = abc", False),
    ("()", False),
    ('type = "track" or ()', False),
    ("$x = 1", False),
    ("properties.total > 1.", False),
]


def _ui_ast(rng: random.Random) -> dict[str, Any]:
    """A condition tree as Segment's trigger builder makes it (one level of groups)."""

    def condition() -> dict[str, Any]:
        kind = rng.choice(["event-type", "event", "name", "userId", "event-property",
                           "event-trait", "event-context"])  # fmt: skip
        value_pool = ["track", "Order Completed", "Signed Up", "pro", "ios", "Home", "u",
                      "product 1", "x y", "/pricing"]  # fmt: skip
        string_ops = ["=", "!="]
        if kind in ("event-type",):
            return {
                "type": kind,
                "operator": rng.choice(string_ops),
                "value": rng.choice(value_pool),
            }
        text_ops = ["=", "!=", "contains", "not_contains", "starts_with", "not_starts_with",
                    "ends_with", "not_ends_with"]  # fmt: skip
        if kind in ("event", "name"):
            ops = text_ops + (["exists", "not_exists"] if kind == "name" else [])
            return {"type": kind, "operator": rng.choice(ops), "value": rng.choice(value_pool)}
        if kind == "userId":
            ops = [*text_ops, "exists", "not_exists"]
            return {"type": kind, "operator": rng.choice(ops), "value": rng.choice(value_pool)}
        name = rng.choice({
            "event-property": ["total", "plan", "flag", "product 1", "count", "coupon", "url",
                               "a.b", "items.length"],
            "event-trait": ["plan", "age", "vip", "email"],
            "event-context": ["device.type", "page.path", "os.name"],
        }[kind])  # fmt: skip
        op = rng.choice([*text_ops, "exists", "not_exists", "is_true", "is_false",
                         "number_equals", "number_not_equals", "<", "<=", ">", ">="])  # fmt: skip
        if op in ("number_equals", "number_not_equals", "<", "<=", ">", ">="):
            value: Any = rng.choice([0, 100, 150, 59.9, -1, 41])
        else:
            value = rng.choice(value_pool)
        return {"type": kind, "name": name, "operator": op, "value": value}

    def group(depth: int) -> dict[str, Any]:
        children = []
        for _ in range(rng.randint(1, 3)):
            if depth == 0 and rng.random() < 0.3:
                children.append(group(1))
            else:
                children.append(condition())
        return {"type": "group", "operator": rng.choice(["and", "or"]), "children": children}

    return group(0)


def trigger_cases() -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = [
        {"kind": "trigger", "trigger": trigger, "accept": accept, "events": TRIGGER_EVENTS}
        for trigger, accept in _TRIGGERS
    ]
    rng = random.Random(15)
    for _ in range(120):
        cases.append({"kind": "trigger", "ast": _ui_ast(rng), "accept": "if-segment-reads-it",
                      "events": TRIGGER_EVENTS})  # fmt: skip
    return cases


TIMESTAMPS = [
    "2024-05-01T12:05:00.000Z", "2024-05-01T12:05:00Z", "2024-05-01T12:05:00+02:00",
    "2024-05-01T12:05:00.123456789Z", "2024-05-01", "2024-05", "2024", "2024/05/01",
    "2024/5/1", "2024-05-01 12:05", "2024-05-01 12:05:30.5", "2024-05-01T12:05",
    "2024-05-01t12:05:00z", "2024-05-01T12:05:00z", "20240501", "20240501T120500",
    "May 1, 2024", "1 May 2024", "May 2024", "Wed, 01 May 2024 12:05:00 GMT",
    "Wed, 01 May 2024 12:05:00 +0200", "Thu May 02 2024 10:00:00 GMT+0200 (CEST)",
    "05/01/2024", "5/1/2024 3:04 PM", "5/1/2024 12:00 am", "01", "5", "12", "13", "99", "100",
    "1714560000", "1714560000123", "1714560000.5", "-1", "0", "1e3", "hello", "", " ",
    "2024-13-01", "2024-02-30", "2024-02-30T00:00:00Z", "2024-05-01T24:00:00Z",
    "2024-05-01T25:00:00Z", "2024-05-01T12:60:00Z", "+002024-05-01T00:00:00Z",
    "-000001-01-01T00:00:00Z", "2024-05-01T12:05:00.000+0530", "2024-05-01T12:05:00 PST",
    "12:05 2024-05-01", "2024-05-01 garbage", "garbage 2024-05-01", "Mayday 1 2024",
    "1 Jan 0099", "0099-01-01", "0099/01/01", "December 17, 1995 03:24:00",
    "1995-12-17T03:24:00", "Sun Dec 17 1995 03:24:00 GMT", "2024-05-01T12:05:00.000Z ",
    " 2024-05-01", "2024-05-01T12:05:00.000Z\n", "NaN", "Infinity", "275760-09-13",
    "2024-05-01T12:05:00.1Z", "2024-05-01T12:05:00.12Z", "2024-05-01 12:05:00 UTC",
    "2024-05-01 12:05:00 EST", "1/2/3", "Jan 1 70", "1970-01-01T00:00:00.000Z",
]  # fmt: skip


def timestamp_cases() -> list[dict[str, Any]]:
    values: list[Any] = [*TIMESTAMPS, 1714560000, 1714560000123, 1.5, True, None, ["2024-05-01"],
                         [1714560000], {"a": 1}]  # fmt: skip
    return [{"kind": "timestamp", "value": value} for value in values]


def _track(mapping: dict[str, Any], event: dict[str, Any]) -> dict[str, Any]:
    base = {
        "external_id": {"@path": "$.userId"},
        "name": {"@path": "$.event"},
        "timestamp": {"@path": "$.timestamp"},
    }
    return {"kind": "action", "action": "trackEvent", "trigger": 'type = "track"',
            "mapping": {**base, **mapping}, "event": {"type": "track", **event}}  # fmt: skip


def _profile(mapping: dict[str, Any], event: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "action", "action": "updateUserProfile", "trigger": 'type = "identify"',
            "mapping": mapping, "event": {"type": "identify", **event}}  # fmt: skip


PRESET_TRACK = {
    "external_id": {"@path": "$.userId"}, "device_id": {"@path": "$.context.device.id"},
    "device_platform": {"@path": "$.context.device.type"},
    "name": {"@if": {"exists": {"@path": "$.event"}, "then": {"@path": "$.event"},
                     "else": {"@path": "$.name"}}},
    "timestamp": {"@path": "$.timestamp"}, "properties": {"@path": "$.properties"},
    "enable_batching": False,
}  # fmt: skip
PRESET_PROFILE = {
    "external_id": {"@path": "$.userId"}, "email": {"@path": "$.traits.email"},
    "app_version": {"@path": "$.context.app.version"},
    "device_id": {"@path": "$.context.device.id"},
    "device_model": {"@path": "$.context.device.model"},
    "device_platform": {"@path": "$.context.device.type"},
    "device_token": {"@path": "$.context.device.token"},
    "language": {"@path": "$.context.locale"},
    "country": {"@path": "$.context.location.country"},
    "city": {"@path": "$.context.location.city"},
    "current_location": {"latitude": {"@path": "$.context.location.latitude"},
                         "longitude": {"@path": "$.context.location.longitude"}},
    "device_os_version": {"@path": "$.context.os.version"},
    "timezone": {"@path": "$.context.timezone"}, "user_agent": {"@path": "$.context.userAgent"},
    "custom_attributes": {"@path": "$.traits"},
}  # fmt: skip


def action_cases() -> list[dict[str, Any]]:
    ts = "2024-05-01T12:05:00.000Z"
    cases = []
    scalars: list[Any] = [
        "u1",
        5,
        5.5,
        52.0,
        True,
        False,
        None,
        "",
        " ",
        [],
        ["abc"],
        [5],
        [True],
        [None],
        ["a", "b"],
        {"a": 1},
        [{"a": 1}],
        0,
        1e21,
        -0.0,
    ]
    for value in scalars:
        cases.append(_track({"external_id": {"@literal": value}}, {"event": "E", "timestamp": ts}))
        cases.append(_track({"name": {"@literal": value}}, {"userId": "u", "timestamp": ts}))
        cases.append(_track({"device_id": {"@literal": value}}, {"userId": "u", "event": "E",
                                                                "timestamp": ts}))  # fmt: skip
        cases.append(_track({"properties": {"@literal": value}}, {"userId": "u", "event": "E",
                                                                 "timestamp": ts}))  # fmt: skip
        cases.append(_profile({"external_id": {"@literal": value}}, {}))
        cases.append(_profile({"email": {"@literal": value}}, {}))
        cases.append(_profile({"custom_attributes": {"@literal": value}}, {}))
        cases.append(_profile({"current_location": {"@literal": value}}, {}))
        cases.append(_profile({"current_location": {"latitude": {"@literal": value},
                                                    "longitude": 13.4}}, {}))  # fmt: skip
    for value in [*TIMESTAMPS, 1714560000, 1714560000123, -5, 1.5, True, None, ["2024-05-01"],
                  [1714560000], {"a": 1}]:  # fmt: skip
        cases.append(_track({"timestamp": {"@literal": value}}, {"userId": "u", "event": "E"}))
    # the presets as Segment runs them, on varied events
    events = [RICH_EVENT, SPARSE_EVENT, ODD_EVENT, PAGE_EVENT,
              {"type": "identify", "userId": "u", "traits": {"email": "a@b.c", "user_agent": "x",
               "custom": 1, "external_id": "no", "10": 1}, "context": {"location": {
               "latitude": 0, "longitude": None, "city": None}, "device": {"token": None}}},
              {"type": "identify", "userId": 7, "context": {"location": {"latitude": "",
               "longitude": "13.5", "extra": 1}}}]  # fmt: skip
    for event in events:
        for action, mapping, trigger in (
            ("trackEvent", PRESET_TRACK, 'type = "track" or type = "page" or type = "screen"'),
            ("updateUserProfile", PRESET_PROFILE, 'type = "identify"'),
        ):
            cases.append({"kind": "action", "action": action, "trigger": trigger,
                          "mapping": mapping, "event": {**event, "type": event.get("type",
                          "track")}})  # fmt: skip
    # a pasted mapping without some default fields: nothing else is sent
    cases.append(
        _profile(
            {"external_id": {"@path": "$.userId"}},
            {"userId": "u", "traits": {"a": 1}, "context": {"device": {"id": "D", "token": "t"}}},
        )
    )
    cases.append(_track({"properties": {"total": {"@path": "$.properties.total"},
                                        "tags": [{"@path": "$.properties.missing"}, 1]}},
                        {"userId": "u", "event": "E", "timestamp": ts,
                         "properties": {"total": 1}}))  # fmt: skip
    return cases


def delete_cases() -> list[dict[str, Any]]:
    users: list[Any] = ["u1", 5, 5.5, "", None, True, {"a": 1}]
    cases: list[dict[str, Any]] = [
        {"kind": "delete", "event": {"type": "delete", "userId": user}} for user in users
    ]
    cases.append({"kind": "delete", "event": {"type": "delete", "anonymousId": "a"}})
    return cases


def all_cases() -> dict[str, list[dict[str, Any]]]:
    return {
        "mappings": mapping_cases(),
        "triggers": trigger_cases(),
        "actions": action_cases(),
        "timestamps": timestamp_cases(),
        "deletes": delete_cases(),
        "presets": [{"kind": "presets"}],
    }
