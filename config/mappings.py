"""Mappings: which events (trigger) become which Pushwoosh call (action), with which fields.

A `Mapping` is compiled once at start-up: its trigger is a predicate over the raw Segment event
and each field is a getter (event -> value or ABSENT). The presets reproduce the two default
mappings of Segment's "Pushwoosh (Actions)" destination.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from collections.abc import Mapping as MappingABC
from typing import Any, Final

UPDATE_USER_PROFILE: Final = "updateUserProfile"
TRACK_EVENT: Final = "trackEvent"
ACTIONS: Final = (UPDATE_USER_PROFILE, TRACK_EVENT)

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
