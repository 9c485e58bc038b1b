"""One Segment event through one mapping: a Pushwoosh call, or the reason it cannot be one.

Pure: the rules are those of the wire contract (docs pushwoosh.md). Fields run their compiled
getters; values are coerced as Segment's validator coerces them; a required field that is absent
or a value of the wrong type rejects the event (recorded, never sent, never retried).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import sys
from collections.abc import Callable, Sequence
from collections.abc import Mapping as MappingABC
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

from config import fastjson
from config.directives import ABSENT, compile_value, js_string
from config.mappings import PROFILE_FIELDS, TRACK_EVENT, UPDATE_USER_PROFILE, FieldGetter, Mapping

DELETE_USER: Final = "deleteUser"
TRACK_USER_PATH: Final = "track-user"
POST_EVENTS_PATH: Final = "post-events"
DELETE_USER_PATH: Final = "delete-user"

# Profile string fields whose null is sent as JSON null, in body key order (after user_id).
_PROFILE_NULLABLE_STRINGS: Final = (
    "email", "app_version", "device_id", "device_model", "device_platform", "device_token",
    "language", "country", "city",
)  # fmt: skip
_PROFILE_NULLABLE_STRINGS_AFTER_LOCATION: Final = ("device_os_version", "timezone", "user_agent")
_EXCLUDED_ATTRIBUTES: Final = frozenset(PROFILE_FIELDS)


class MappingRejected(Exception):
    """Raised when an event cannot become a valid Pushwoosh call."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclasses.dataclass(frozen=True)
class Call:
    """One Pushwoosh call derived from one event through one mapping."""

    mapping: str  # "" for the built-in delete
    action: str
    path: str
    message_id: str
    body: dict[str, Any]  # post-events: ONE element, not wrapped in {"events": [...]}
    batchable: bool = False


@dataclasses.dataclass(frozen=True)
class Rejection:
    """An event a mapping could not turn into a valid call: never sent."""

    mapping: str
    action: str
    message_id: str
    reason: str
    # "mapping_rejected": the event broke a rule of the contract (a required field missing, a
    # wrong type); "mapping_error": mapping it raised something unexpected. Either way only
    # this event is held back, and the drain goes on.
    code: str = "mapping_rejected"


def compile_fields(field_json: MappingABC[str, Any], where: str) -> dict[str, FieldGetter]:
    """Compile each field's mapping-kit JSON; DirectiveError names the field that is wrong."""
    return {key: compile_value(raw, f"{where}.{key}") for key, raw in field_json.items()}


def resolve_payload(event: MappingABC[str, Any], mapping: Mapping) -> dict[str, Any]:
    """Run every field getter; absent values and top-level "" are left out."""
    payload: dict[str, Any] = {}
    for key, getter in mapping.fields.items():
        value = getter(event)
        if value is ABSENT or (isinstance(value, str) and value == ""):
            continue
        payload[key] = value
    return payload


# -- coercion --------------------------------------------------------------------------------------


def _type_name(value: Any) -> str:
    if isinstance(value, MappingABC):
        return "object"
    if isinstance(value, list):
        return "array"
    return type(value).__name__


def coerce_string(field: str, value: Any) -> str:
    """Numbers and booleans as JavaScript's String() writes them: True -> "true", 52.0 -> "52"."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return js_string(value)
    raise MappingRejected(f"{field} must be a string, got {_type_name(value)}")


# A decimal number, as Segment's validator accepts in a number field (no hex, no Infinity).
_NUMERIC = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*")
_MAX_DOUBLE: Final = int(sys.float_info.max)


def coerce_number(field: str, value: Any) -> int | float:
    """Numbers as they are ("52.5" -> 52.5); integral values as ints, so 52.0 is written 52.

    Only finite doubles are numbers here, as in JavaScript: a 400-digit integer or "1e400" is
    refused, not sent as infinity.
    """
    if isinstance(value, str) and _NUMERIC.fullmatch(value):
        value = float(value)
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > _MAX_DOUBLE:
        raise MappingRejected(f"{field} is out of range for a number: {str(value)[:40]}…")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise MappingRejected(f"{field} must be a number, got {_type_name(value)} {value!r}"[:200])
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


# -- track-user ------------------------------------------------------------------------------------


def build_profile_body(payload: MappingABC[str, Any]) -> dict[str, Any]:
    """The flat `track-user` body, keys in the contract's order, `attributes` always present."""
    custom = payload.get("custom_attributes")
    if custom is None:
        custom = {}
    if not isinstance(custom, MappingABC):
        raise MappingRejected(f"custom_attributes must be an object, got {_type_name(custom)}")
    # traits.email goes to `email` only: field keys never repeat inside attributes.
    body: dict[str, Any] = {
        "attributes": {k: v for k, v in custom.items() if k not in _EXCLUDED_ATTRIBUTES}
    }
    # external_id is not "null ok": a null user id is no user id.
    if payload.get("external_id") is not None:
        body["user_id"] = coerce_string("external_id", payload["external_id"])
    _put_nullable_strings(body, payload, _PROFILE_NULLABLE_STRINGS)
    if "current_location" in payload:
        location = _current_location(payload["current_location"])
        if location is not ABSENT:
            body["current_location"] = location
    _put_nullable_strings(body, payload, _PROFILE_NULLABLE_STRINGS_AFTER_LOCATION)
    return body


def _put_nullable_strings(
    body: dict[str, Any], payload: MappingABC[str, Any], keys: tuple[str, ...]
) -> None:
    for key in keys:
        if key in payload:
            value = payload[key]
            body[key] = None if value is None else coerce_string(key, value)


def _current_location(value: Any) -> Any:
    if value is None:
        return None
    if not isinstance(value, MappingABC):
        raise MappingRejected(f"current_location must be an object, got {_type_name(value)}")
    location = {
        key: coerce_number(f"current_location.{key}", value[key])
        for key in ("latitude", "longitude")
        if value.get(key) is not None  # a null coordinate is no coordinate; 0 is kept
    }
    return location or ABSENT


# -- post-events -----------------------------------------------------------------------------------


def _required(payload: MappingABC[str, Any], field: str) -> Any:
    value = payload.get(field)
    if value is None:
        raise MappingRejected(f"missing required field {field}")
    return value


def build_track_element(payload: MappingABC[str, Any], app_code: str) -> dict[str, Any]:
    """One `post-events` element E; a batch is a list of these, built by this same function."""
    user_id = coerce_string("external_id", _required(payload, "external_id"))
    name = coerce_string("name", _required(payload, "name"))
    timestamp = normalize_timestamp(_required(payload, "timestamp"))
    element: dict[str, Any] = {"user_id": user_id}
    for key in ("device_id", "device_platform"):
        if key in payload:
            value = payload[key]
            element[key] = None if value is None else coerce_string(key, value)
    element["app_code"] = app_code
    element["name"] = name
    element["timestamp"] = timestamp
    properties = payload.get("properties")
    if properties is not None:
        if not isinstance(properties, MappingABC):
            raise MappingRejected(f"properties must be an object, got {_type_name(properties)}")
        element["attributes"] = dict(properties)
    return element


# Sent unchanged: what a strict RFC 3339 parser (Pushwoosh's) reads as a date-time.
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?P<fraction>\.\d+)?(Z|[+-]\d{2}:\d{2})")
# Below 1e11 a number is epoch seconds (1e11 s is the year 5138); from 1e11 on it is
# milliseconds (1e11 ms is March 1973). Real events fall far from the cut-off either way.
EPOCH_MS_CUTOFF: Final = Decimal(10) ** 11
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
# An epoch time must land in the years 1 to 9999 (what RFC 3339 can write), checked before any
# arithmetic, so "9e2000000" is refused at once instead of overflowing.
_MIN_EPOCH_MS: Final = Decimal(-62135596800000)
_MAX_EPOCH_MS: Final = Decimal(253402300799999)


def normalize_timestamp(value: Any) -> str:
    """RFC 3339 as given; epoch s/ms and other ISO 8601 dates as RFC 3339 UTC with milliseconds."""
    if isinstance(value, str):
        match = _RFC3339.fullmatch(value)
        if match:
            # The shape is right; the date must be real too (no 2024-02-30). Python reads at
            # most microseconds, so longer fractions are shortened only for this check.
            fraction = match.group("fraction") or ""
            checkable = value.replace(fraction, fraction[:7], 1) if fraction else value
            _parse_iso(checkable.replace("Z", "+00:00"), value)
            return value
        text = value.strip()
        if not _NUMERIC.fullmatch(text):
            parsed = _parse_iso(text, value)
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)  # no offset given: UTC, as Segment assumes
            return _rfc3339(parsed)
    elif isinstance(value, bool) or not isinstance(value, int | float):
        raise MappingRejected(f"timestamp must be a date, got {_type_name(value)}")
    else:
        text = repr(value)
    return _from_epoch(Decimal(text), text)


def _from_epoch(number: Decimal, text: str) -> str:
    if not number.is_finite():
        raise MappingRejected(f"timestamp is not a date: {text[:64]!r}")
    # copy_abs and comparisons are exact; abs() and * would round into a decimal.Overflow.
    millis = number if number.copy_abs() >= EPOCH_MS_CUTOFF else number * 1000
    if not _MIN_EPOCH_MS <= millis <= _MAX_EPOCH_MS:
        raise MappingRejected(f"timestamp out of range (years 1 to 9999): {text[:64]!r}")
    # Integer milliseconds on top of the epoch: exact, unlike a float division.
    return _rfc3339(_EPOCH + timedelta(milliseconds=int(millis)))


def _parse_iso(text: str, original: Any) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError as ex:
        raise MappingRejected(f"timestamp is not a date: {str(original)[:64]!r}") from ex


def _rfc3339(moment: datetime) -> str:
    utc = moment.astimezone(UTC)
    # The year by hand: strftime's %Y does not pad years below 1000 to four digits.
    return f"{utc.year:04d}" + utc.strftime("-%m-%dT%H:%M:%S") + f".{utc.microsecond // 1000:03d}Z"


# -- planning --------------------------------------------------------------------------------------


def _message_id(event: MappingABC[str, Any]) -> str:
    return str(event["messageId"]) if "messageId" in event else ""


def map_event(event: MappingABC[str, Any], mapping: Mapping, app_code: str) -> Call:
    """The call `mapping` makes of `event`; MappingRejected with the reason if it cannot."""
    payload = resolve_payload(event, mapping)
    message_id = _message_id(event)
    if mapping.action == UPDATE_USER_PROFILE:
        body = build_profile_body(payload)
        return Call(mapping.name, mapping.action, TRACK_USER_PATH, message_id, body, False)
    if mapping.action == TRACK_EVENT:
        element = build_track_element(payload, app_code)
        return Call(
            mapping.name, mapping.action, POST_EVENTS_PATH, message_id, element,
            mapping.enable_batching,
        )  # fmt: skip
    raise MappingRejected(f"unknown action {mapping.action!r}")


def map_delete(event: MappingABC[str, Any]) -> Call:
    """A Segment `delete` (GDPR) becomes `delete-user` for its userId."""
    user_id = event.get("userId")
    if user_id is None or user_id == "":
        raise MappingRejected("missing required field userId")
    body = {"external_id": coerce_string("userId", user_id)}
    return Call("", DELETE_USER, DELETE_USER_PATH, _message_id(event), body, False)


def plan_calls(
    event: MappingABC[str, Any], mappings: Sequence[Mapping], app_code: str
) -> tuple[list[Call], list[Rejection]]:
    """Every call an event makes, in mapping order, and every mapping that rejected it."""
    calls: list[Call] = []
    rejections: list[Rejection] = []
    if event.get("type") == "delete":
        make = functools.partial(map_delete, event)
        _map_guarded(make, "", DELETE_USER, event, calls, rejections)
        return calls, rejections
    for mapping in mappings:
        if not mapping.enabled or not _triggers(mapping, event):
            continue
        make = functools.partial(map_event, event, mapping, app_code)
        _map_guarded(make, mapping.name, mapping.action, event, calls, rejections)
    return calls, rejections


def _map_guarded(
    make: Callable[[], Call],
    mapping: str,
    action: str,
    event: MappingABC[str, Any],
    calls: list[Call],
    rejections: list[Rejection],
) -> None:
    """One mapping of one event; whatever goes wrong holds back this call only.

    The body is encoded once here too: an element that cannot become JSON must be refused on
    its own, not break the request that would carry it and everything queued behind it.
    """
    try:
        call = make()
        fastjson.dumps(call.body)
    except MappingRejected as ex:
        rejections.append(Rejection(mapping, action, _message_id(event), ex.reason))
        return
    except Exception as ex:  # any input must end as a dead letter, never a stalled shard
        reason = f"{type(ex).__name__}: {ex}"[:300]
        rejections.append(Rejection(mapping, action, _message_id(event), reason, "mapping_error"))
        return
    calls.append(call)


def _triggers(mapping: Mapping, event: MappingABC[str, Any]) -> bool:
    try:
        return bool(mapping.trigger(event))
    except Exception:  # a trigger that cannot judge an event does not match it
        return False
