"""Mappings: which events (trigger) become which Pushwoosh call (action), with which fields.

A `Mapping` is compiled once at start-up: its trigger is a predicate over the raw Segment event
and each field is a getter (event -> value or ABSENT). Action ids, titles, field keys, types and
defaults, and the two presets, are those of Segment's "Pushwoosh (Actions)" destination
(packages/destination-actions/src/destinations/pushwoosh at the commit in docs/mappings.md).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from collections.abc import Mapping as MappingABC
from typing import Any, Final

UPDATE_USER_PROFILE: Final = "updateUserProfile"
TRACK_EVENT: Final = "trackEvent"
ACTIONS: Final = (UPDATE_USER_PROFILE, TRACK_EVENT)
# Segment's action titles (what its UI shows) and preset names: note the preset names differ.
ACTION_TITLES: Final = {
    UPDATE_USER_PROFILE: "Create or Update User Profiles",
    TRACK_EVENT: "Track Event",
}
PROFILE_PRESET_NAME: Final = "Create or Update User Profile"
TRACK_PRESET_NAME: Final = "Track Events"

# Field keys of each action, as Segment names them (pushwoosh.md).
PROFILE_FIELDS: Final = (
    "external_id", "email", "app_version", "device_id", "device_model", "device_platform",
    "device_token", "language", "country", "city", "current_location", "device_os_version",
    "timezone", "user_agent", "custom_attributes",
)  # fmt: skip
TRACK_FIELDS: Final = (
    "external_id", "device_id", "device_platform", "name", "timestamp", "properties",
    "enable_batching",
)  # fmt: skip
ACTION_FIELDS: Final = {UPDATE_USER_PROFILE: PROFILE_FIELDS, TRACK_EVENT: TRACK_FIELDS}

# Defaults in Segment's mapping-kit JSON, so a mappings file can restate or override them.
PROFILE_DEFAULTS: Final[dict[str, Any]] = {
    "external_id": {"@path": "$.userId"},
    "email": {"@path": "$.traits.email"},
    "app_version": {"@path": "$.context.app.version"},
    "device_id": {"@path": "$.context.device.id"},
    "device_model": {"@path": "$.context.device.model"},
    "device_platform": {"@path": "$.context.device.type"},
    "device_token": {"@path": "$.context.device.token"},
    "language": {"@path": "$.context.locale"},
    "country": {"@path": "$.context.location.country"},
    "city": {"@path": "$.context.location.city"},
    "current_location": {
        "latitude": {"@path": "$.context.location.latitude"},
        "longitude": {"@path": "$.context.location.longitude"},
    },
    "device_os_version": {"@path": "$.context.os.version"},
    "timezone": {"@path": "$.context.timezone"},
    "user_agent": {"@path": "$.context.userAgent"},
    "custom_attributes": {"@path": "$.traits"},
}
TRACK_DEFAULTS: Final[dict[str, Any]] = {
    "external_id": {"@path": "$.userId"},
    "device_id": {"@path": "$.context.device.id"},
    "device_platform": {"@path": "$.context.device.type"},
    "name": {
        "@if": {
            "exists": {"@path": "$.event"},
            "then": {"@path": "$.event"},
            "else": {"@path": "$.name"},
        }
    },
    "timestamp": {"@path": "$.timestamp"},
    "properties": {"@path": "$.properties"},
    "enable_batching": False,
}
ACTION_DEFAULTS: Final = {UPDATE_USER_PROFILE: PROFILE_DEFAULTS, TRACK_EVENT: TRACK_DEFAULTS}
# The fields of Segment's "Track Events" preset (enable_batching is not a field getter).
_PRESET_TRACK_SOURCES: Final = {k: v for k, v in TRACK_DEFAULTS.items() if k != "enable_batching"}


@dataclasses.dataclass(frozen=True)
class FieldSchema:
    """A field's JSON schema as Segment builds it from the action's field definition."""

    types: tuple[str, ...]  # JSON types in Segment's order; "null" when the field allows null
    required: bool = False
    date_like: bool = False  # a "datetime" field: strings must read as a date
    properties: MappingABC[str, FieldSchema] | None = None  # an object with declared members


_STRING: Final = FieldSchema(("string",))
_NULLABLE_STRING: Final = FieldSchema(("string", "null"))
PROFILE_SCHEMA: Final[dict[str, FieldSchema]] = {
    "external_id": _STRING,
    **{key: _NULLABLE_STRING for key in (
        "email", "app_version", "device_id", "device_model", "device_platform", "device_token",
        "language", "country", "city")},
    # Segment declares it nullable, but the schema of its members replaces the type with
    # "object" alone (fieldsToJsonSchema), so null is dropped and false or 0 are invalid.
    "current_location": FieldSchema(
        ("object",),
        properties={"latitude": FieldSchema(("number",)), "longitude": FieldSchema(("number",))},
    ),
    **{key: _NULLABLE_STRING for key in ("device_os_version", "timezone", "user_agent")},
    "custom_attributes": FieldSchema(("object",)),
}  # fmt: skip
TRACK_SCHEMA: Final[dict[str, FieldSchema]] = {
    "external_id": FieldSchema(("string",), required=True),
    "device_id": _NULLABLE_STRING,
    "device_platform": _NULLABLE_STRING,
    "name": FieldSchema(("string",), required=True),
    "timestamp": FieldSchema(("string", "number"), required=True, date_like=True),
    "properties": FieldSchema(("object",)),
    "enable_batching": FieldSchema(("boolean",)),
}
ACTION_SCHEMAS: Final = {UPDATE_USER_PROFILE: PROFILE_SCHEMA, TRACK_EVENT: TRACK_SCHEMA}

PROFILE_PRESET_TRIGGER: Final = 'type = "identify"'
TRACK_PRESET_TRIGGER: Final = 'type = "track" or type = "page" or type = "screen"'

FieldGetter = Callable[[MappingABC[str, Any]], Any]
Trigger = Callable[[MappingABC[str, Any]], bool]


@dataclasses.dataclass(frozen=True)
class Mapping:
    """One compiled mapping: trigger, action and field getters, ready to run per event."""

    name: str
    action: str
    trigger_source: str
    trigger: Trigger
    fields: MappingABC[str, FieldGetter]  # a key that is not here is not mapped at all
    field_sources: MappingABC[str, Any]  # the JSON each field was compiled from (for display)
    enabled: bool = True
    enable_batching: bool = False
    # Fields whose value can hold an undefined array member (sent as null), so the body builder
    # knows where to look; empty for almost every mapping.
    undefined_in_arrays: frozenset[str] = frozenset()
    # The names under which an event's `integrations` object can switch this destination off.
    integration_names: tuple[str, ...] = ()

    @functools.cached_property
    def is_preset_track(self) -> bool:
        """Whether this mapping maps Track Events exactly as Segment's preset does (decided once
        per mapping; the worker then maps a plain event without the getters)."""
        return (
            self.action == TRACK_EVENT
            and not self.undefined_in_arrays
            and self.fields.keys() == _PRESET_TRACK_SOURCES.keys()
            and dict(self.field_sources) == _PRESET_TRACK_SOURCES
        )
