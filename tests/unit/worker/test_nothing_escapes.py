"""Whatever JSON an event carries, mapping it never raises: each call is made (and encodes to
JSON) or is rejected, skipped or refused with a reason. Both presets, and a custom mapping that
uses every directive, read every field from arbitrary values."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config import fastjson
from config.mapping_file import load_mappings_from_data, preset_mappings
from worker.mapping import plan_calls

EVERY_DIRECTIVE = {
    "name": "Every directive",
    "action": "updateUserProfile",
    "trigger": 'type = "identify"',
    "defaults": True,
    "fields": {
        "email": {"@case": {"operator": "lower", "value": {"@path": "$.traits.email"}}},
        "city": {"@template": "{{traits.city}}, {{{context.location.country}}}"},
        "language": {
            "@if": {"blank": {"@path": "$.context.locale"}, "then": {"@path": "$.context.locale"}}
        },
        "device_model": {"@replace": {"pattern": "-", "replacement": "_",
                                      "value": {"@path": "$.context.device.model"}}},
        "timezone": {"@liquid": "{{ traits.tz | downcase }}"},
        "custom_attributes": {
            "literal": {"@literal": {"@path": "$.userId"}},
            "items": {"@arrayPath": ["$.properties.products", {"id": {"@path": "$.sku"}}]},
            "json": {"@json": {"mode": "encode", "value": {"@path": "$.traits"}}},
            "decoded": {"@json": {"mode": "decode", "value": {"@path": "$.traits.blob"}}},
            "flat": {"@flatten": {"separator": ".", "value": {"@path": "$.traits"}}},
            "merged": {"@merge": {"direction": "right",
                                  "objects": [{"@path": "$.traits"}, {"@path": "$.context"}]}},
            "shaped": {"@transform": {"apply": {"n": {"@path": "$.traits.name"}},
                                      "mapping": {"@path": "$.n"}}},
            "kept": {"@excludeWhenNull": {"@path": "$.traits"}},
        },
    },
}  # fmt: skip
MAPPINGS = [
    *preset_mappings(enable_batching=True),
    *load_mappings_from_data({"mappings": [EVERY_DIRECTIVE]}, True, "test"),
]

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**400), max_value=10**400)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
    | st.sampled_from(["", "2024-05-01T12:05:00Z", "1e400", "9e2000000", "{}", "[1]", "-"])
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
PATHS = (
    ("userId",), ("anonymousId",), ("event",), ("name",), ("timestamp",), ("properties",),
    ("properties", "products"), ("traits",), ("traits", "email"), ("traits", "city"),
    ("traits", "tz"), ("traits", "blob"), ("traits", "name"), ("context",),
    ("context", "locale"), ("context", "timezone"), ("context", "userAgent"),
    ("context", "device"), ("context", "device", "id"), ("context", "device", "type"),
    ("context", "device", "model"), ("context", "device", "token"), ("context", "app"),
    ("context", "app", "version"), ("context", "os", "version"), ("context", "location"),
    ("context", "location", "latitude"), ("context", "location", "longitude"),
    ("context", "location", "city"), ("context", "location", "country"), ("integrations",),
)  # fmt: skip


def _put(event: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    here: Any = event
    for key in path[:-1]:
        if not isinstance(here.get(key), dict):
            here[key] = {}
        here = here[key]
    here[path[-1]] = value


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(["identify", "track", "page", "screen", "delete", "group"]),
    filled=st.dictionaries(st.sampled_from(PATHS), values, max_size=12),
)
def test_no_value_anywhere_makes_mapping_raise(kind: str, filled: dict[Any, Any]) -> None:
    event: dict[str, Any] = {"type": kind, "messageId": "m", "userId": "u"}
    for path, value in filled.items():
        _put(event, path, value)
    event["type"] = kind
    plan = plan_calls(event, MAPPINGS, "ABCDE-12345")
    for call in plan.calls:
        fastjson.dumps(call.body)  # every call that goes out can be written as JSON
    for rejection in plan.rejections:
        assert rejection.reason and rejection.code in (
            "mapping_rejected", "mapping_error", "no_user_id"
        )  # fmt: skip
