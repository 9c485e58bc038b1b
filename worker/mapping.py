"""One Segment event through one mapping: a Pushwoosh call, or the reason it cannot be one.

Pure, and step for step what Segment's action runtime does (packages/core: transform,
removeEmptyValues, the ajv validation with `coerceTypes: "array"`, then the Pushwoosh action's
perform): fields run their compiled getters; empty values are dropped where the field's type has
no room for them; values are coerced as ajv coerces them; a required field that is absent or a
value of the wrong type rejects the event (recorded, never sent, never retried). The deliberate
differences (timestamps sent as RFC 3339, `app_code` in batches) are in docs/mappings.md.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from collections.abc import Callable, Sequence
from collections.abc import Mapping as MappingABC
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

from config import fastjson
from config.directives import ABSENT, MappingError, compile_field
from config.jsdate import dayjs_ms, is_date_like, iso_string
from config.jsvalues import is_number, js_number, js_string, js_to_number, json_ready
from config.mappings import (
    ACTION_SCHEMAS,
    PROFILE_FIELDS,
    TRACK_EVENT,
    UPDATE_USER_PROFILE,
    FieldGetter,
    FieldSchema,
    Mapping,
)

DELETE_USER: Final = "deleteUser"
TRACK_USER_PATH: Final = "track-user"
POST_EVENTS_PATH: Final = "post-events"
DELETE_USER_PATH: Final = "delete-user"
SKIPPED_BY_INTEGRATIONS: Final = "integrations"

# track-user body keys after `attributes` and `user_id`, in the order Segment's action writes them.
_PROFILE_BODY_KEYS: Final = (
    "email", "app_version", "device_id", "device_model", "device_platform", "device_token",
    "language", "country", "city", "current_location", "device_os_version", "timezone",
    "user_agent",
)  # fmt: skip
_RESERVED_ATTRIBUTES: Final = frozenset(PROFILE_FIELDS)


class MappingRejected(Exception):
    """Raised when an event cannot become a valid Pushwoosh call."""

    def __init__(self, reason: str, code: str = "mapping_rejected") -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


# A call that cannot be sent for want of a user id is skipped, not dead-lettered: anonymous
# page views and tracks are ordinary traffic, and keeping them (personal data and all) in the
# dead-letter queue would only fill it.
NO_USER_ID: Final = "no_user_id"


@dataclasses.dataclass(frozen=True)
class Call:
    """One Pushwoosh call derived from one event through one mapping."""

    mapping: str  # "" for the built-in delete
    action: str
    path: str
    message_id: str
    body: dict[str, Any]  # post-events: ONE element, not wrapped in {"events": [...]}
    batchable: bool = False

    def encoded(self) -> bytes:
        """The body as compact JSON, encoded once: planning encodes it (a body that cannot be
        encoded is refused there, on its own), and the request that carries it sends these
        very bytes. A call's body is never changed once the call is made."""
        data: bytes | None = self.__dict__.get("_encoded")
        if data is None:
            data = self.__dict__["_encoded"] = fastjson.dumps(self.body)
        return data


@dataclasses.dataclass(frozen=True)
class Rejection:
    """An event a mapping could not turn into a valid call: never sent."""

    mapping: str
    action: str
    message_id: str
    reason: str
    # "mapping_rejected": the event broke a rule of the contract (a required field missing, a
    # wrong type); "mapping_error": mapping it raised something unexpected. Either way only
    # this call is held back, and the event's other calls and the shard go on.
    code: str = "mapping_rejected"


class Plan(tuple[list[Call], list[Rejection]]):
    """(calls, rejections) of one event, plus `skipped`: why it made no call at all, if it was
    switched off for this destination ("integrations"); None otherwise."""

    skipped: str | None = None

    def __new__(
        cls, calls: list[Call], rejections: list[Rejection], skipped: str | None = None
    ) -> Plan:
        plan = super().__new__(cls, (calls, rejections))
        if skipped is not None:
            plan.skipped = skipped
        return plan

    @property
    def calls(self) -> list[Call]:
        return self[0]

    @property
    def rejections(self) -> list[Rejection]:
        return self[1]


_new_object = object.__new__
_new_tuple = tuple.__new__


def _made_call(
    mapping: str, action: str, path: str, message_id: str, body: dict[str, Any], batchable: bool
) -> Call:
    """`Call(...)` for the one call of every plain event: a frozen dataclass's __init__ sets
    its six fields through object.__setattr__ one by one (0.75 µs), these are written at once
    (0.4 µs). A test holds the two to the same fields."""
    call = _new_object(Call)
    call.__dict__.update(
        mapping=mapping, action=action, path=path, message_id=message_id, body=body,
        batchable=batchable,
    )  # fmt: skip
    return call


def _plan(calls: list[Call], rejections: list[Rejection]) -> Plan:
    """`Plan(calls, rejections)` of an event not skipped, without a call of Plan.__new__ in
    Python (0.35 -> 0.15 µs an event): `skipped` stays the class's None."""
    return _new_tuple(Plan, (calls, rejections))


def compile_fields(field_json: MappingABC[str, Any], where: str) -> dict[str, FieldGetter]:
    """Compile each field's mapping-kit JSON; DirectiveError names the field that is wrong."""
    return {key: compile_field(raw, f"{where}.{key}") for key, raw in field_json.items()}


def resolve_payload(event: MappingABC[str, Any], mapping: Mapping) -> dict[str, Any]:
    """Run every field getter (Segment's transform); absent values are left out."""
    payload: dict[str, Any] = {}
    for key, getter in mapping.fields.items():
        try:
            value = getter(event)
        except MappingError as ex:
            raise MappingRejected(f"{key}: {ex}") from ex
        if value is not ABSENT:
            payload[key] = value
    return payload


# -- Segment's removeEmptyValues and its ajv validation --------------------------------------------


def _type_name(value: Any) -> str:
    if value is ABSENT:
        return "undefined"
    if value is None:
        return "null"
    if isinstance(value, MappingABC):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "string"


def _remove_empty(value: Any, schema: FieldSchema | None) -> Any:
    """removeEmptyValues below the top level: null and "" go where the type cannot hold them."""
    if schema is None or (type(value) is str and value):
        return value
    if isinstance(value, list):
        return value
    if isinstance(value, dict | MappingABC):
        if schema.properties is None:
            return value
        cleaned = {}
        for key, member in value.items():
            member = _remove_empty(member, schema.properties.get(key))
            if member is not ABSENT:
                cleaned[key] = member
        return cleaned
    if value is None and "null" not in schema.types:
        return ABSENT
    if value == "" and isinstance(value, str) and "string" not in schema.types:
        return ABSENT
    return value


def remove_empty_values(payload: MappingABC[str, Any], action: str) -> dict[str, Any]:
    """removeEmptyValues(payload, schema, isRoot=true): also drops "" at the top level."""
    schema = ACTION_SCHEMAS[action]
    cleaned: dict[str, Any] = {}
    for key, value in payload.items():
        value = _remove_empty(value, schema.get(key))
        if value is ABSENT or (isinstance(value, str) and value == ""):
            continue
        cleaned[key] = value
    return cleaned


def _has_type(value: Any, type_name: str) -> bool:
    if type_name == "string":
        return isinstance(value, str)
    if type_name == "object":
        return isinstance(value, dict | MappingABC)
    if type_name == "number":
        return is_number(value) and _finite(value)  # ajv's strictNumbers
    if type_name == "boolean":
        return isinstance(value, bool)
    if type_name == "null":
        return value is None
    return isinstance(value, list)


_UNSET: Final = object()


def _coerce(value: Any, types: tuple[str, ...]) -> Any:
    """ajv's coerceTypes "array" for a value of the wrong type; _UNSET when it cannot."""
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
        # ajv checks the member against all types at once, which only a single type can pass.
        if len(types) == 1 and _has_type(value, types[0]):
            return value
    for type_name in types:
        coerced = _COERCIONS[type_name](value)
        if coerced is not _UNSET:
            return coerced
    return _UNSET


def _to_string(value: Any) -> Any:
    if isinstance(value, bool) or is_number(value):
        return js_string(value)
    return "" if value is None else _UNSET


def _to_number(value: Any) -> Any:
    if isinstance(value, bool):
        return 1 if value else 0
    if value is None:
        return 0
    if isinstance(value, str) and value and not math.isnan(js_to_number(value)):
        return _integral(js_to_number(value))
    return _UNSET


def _to_boolean(value: Any) -> Any:
    if value == "false" or value is None or (is_number(value) and value == 0):
        return False
    if value == "true" or (is_number(value) and value == 1):
        return True
    return _UNSET


def _to_null(value: Any) -> Any:
    if value == "" or value is False or (is_number(value) and value == 0):
        return None
    return _UNSET


# The types ajv coerces a scalar into, each with its coercion (the value, or _UNSET).
_COERCIONS: Final[dict[str, Callable[[Any], Any]]] = {
    "string": _to_string,
    "number": _to_number,
    "boolean": _to_boolean,
    "null": _to_null,
}


def _is_one_of(value: Any, types: tuple[str, ...]) -> bool:
    for type_name in types:  # noqa: SIM110 (hot path: no generator)
        if _has_type(value, type_name):
            return True
    return False


def _finite(number: float) -> bool:
    """A finite double: an integer too large for a double (400 digits) is none."""
    try:
        return math.isfinite(number)
    except OverflowError:
        return False


def _integral(number: float) -> int | float:
    """A whole number as an int, so 52.0 is written 52 (as JavaScript writes it)."""
    if math.isfinite(number) and number.is_integer() and abs(number) < 2**53:
        return int(number)
    return number


def _describe_types(types: tuple[str, ...]) -> str:
    names = [{"object": "an object", "null": "null"}.get(t, f"a {t}") for t in types]
    return " or ".join(names)


def validate_field(key: str, value: Any, schema: FieldSchema) -> Any:
    """The value after ajv's type check and coercion; MappingRejected when it is invalid."""
    if type(value) is str and "string" in schema.types and not schema.date_like:
        return value  # the common case: a text where a text belongs
    if not _is_one_of(value, schema.types):
        coercible = tuple(t for t in schema.types if t in _COERCIONS)
        coerced = _coerce(value, coercible) if coercible else _UNSET
        if coerced is _UNSET:
            got = _type_name(value)
            if got == "number":  # a number no double can hold: a 400-digit integer
                got = f"a number out of range ({str(value)[:20]}…)"
            raise MappingRejected(f"{key} must be {_describe_types(schema.types)}, got {got}")
        value = coerced
    if schema.date_like and isinstance(value, str) and not is_date_like(value):
        raise MappingRejected(f"{key} is not a date: {value[:64]!r}")
    if schema.properties is not None and isinstance(value, dict | MappingABC):
        # Only the declared members are kept (ajv's removeAdditional), each checked in turn.
        value = {
            member: validate_field(f"{key}.{member}", value[member], schema.properties[member])
            for member in schema.properties
            if member in value
        }
    return value


def validate_payload(payload: MappingABC[str, Any], action: str) -> dict[str, Any]:
    """Segment's checks of a mapped payload, with its coercions; MappingRejected if invalid.

    removeEmptyValues, then ajv's required check and per-field validation, in one pass: this
    runs for every event, and most values are plain texts that need nothing.
    """
    schema = ACTION_SCHEMAS[action]
    valid: dict[str, Any] = {}
    for key, value in payload.items():
        field = schema[key]
        kind = type(value)
        if kind is str:
            if not value:
                continue  # "" at the top level is dropped whatever the field's type
            if "string" in field.types:
                # A text where a text belongs: nothing to drop or coerce; a date field's
                # text must read as a date (what validate_field checks of it).
                if field.date_like and not is_date_like(value):
                    raise MappingRejected(f"{key} is not a date: {value[:64]!r}")
                valid[key] = value
                continue
        elif kind is dict and field.properties is None and "object" in field.types:
            valid[key] = value  # an object where any object goes: kept as it is
            continue
        value = _remove_empty(value, field)
        if value is ABSENT:
            continue
        valid[key] = validate_field(key, value, field)
    for key in REQUIRED_FIELDS[action]:
        if key not in valid:
            code = NO_USER_ID if key == "external_id" else "mapping_rejected"
            raise MappingRejected(f"missing required field {key}", code)
    return valid


REQUIRED_FIELDS: Final = {
    action: tuple(key for key, field in schema.items() if field.required)
    for action, schema in ACTION_SCHEMAS.items()
}


# -- track-user ------------------------------------------------------------------------------------


def build_profile_body(payload: MappingABC[str, Any]) -> dict[str, Any]:
    """The `track-user` body from a validated payload, keys in Segment's order."""
    custom = payload.get("custom_attributes")
    attributes = {}
    if isinstance(custom, MappingABC):
        # Segment omits every field key from the custom attributes: traits.email goes to email only.
        attributes = {k: v for k, v in custom.items() if k not in _RESERVED_ATTRIBUTES}
    body: dict[str, Any] = {"attributes": attributes}
    if "external_id" in payload:
        body["user_id"] = payload["external_id"]
    for key in _PROFILE_BODY_KEYS:
        if key not in payload:
            continue
        value = payload[key]
        if key == "current_location" and not value:
            continue  # an empty location is left out, as Segment's removeEmpty does
        body[key] = value
    return body


# -- post-events -----------------------------------------------------------------------------------


def build_track_element(payload: MappingABC[str, Any], app_code: str) -> dict[str, Any]:
    """One `post-events` element E; a batch is a list of these, built by this same function."""
    return _track_element(payload, app_code, normalize_timestamp(payload["timestamp"]))


def _track_element(payload: MappingABC[str, Any], app_code: str, timestamp: str) -> dict[str, Any]:
    element: dict[str, Any] = {"user_id": payload["external_id"]}
    for key in ("device_id", "device_platform"):
        if key in payload:
            element[key] = payload[key]
    element["app_code"] = app_code
    element["name"] = payload["name"]
    element["timestamp"] = timestamp
    if "properties" in payload:
        element["attributes"] = dict(payload["properties"])
    return element


# Sent unchanged: what a strict RFC 3339 parser (Pushwoosh's) reads as a date-time.
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?P<fraction>\.\d+)?(Z|[+-]\d{2}:\d{2})")
# Below 1e11 a number is epoch seconds (1e11 s is the year 5138); from 1e11 on it is
# milliseconds (1e11 ms is March 1973). Real events fall far from the cut-off either way.
EPOCH_MS_CUTOFF: Final = Decimal(10) ** 11
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
# An epoch time must land in the years 1 to 9999, what RFC 3339 (and so Pushwoosh) can read;
# JavaScript's Date reaches further, so this is a deliberate difference (docs/mappings.md).
_MIN_EPOCH_MS: Final = Decimal(-62135596800000)
_MAX_EPOCH_MS: Final = Decimal(253402300799999)


def normalize_timestamp(value: Any) -> str:
    """A timestamp Segment accepts, as Pushwoosh reads it: RFC 3339 as given; any other date
    string as Segment reads it (dayjs), and epoch seconds or milliseconds, as RFC 3339 UTC."""
    if isinstance(value, str):
        match = _RFC3339.fullmatch(value)
        if match and _real_date(value, match.group("fraction") or ""):
            return value
        if not is_date_like(value):
            raise MappingRejected(f"timestamp is not a date: {value[:64]!r}")
        if js_number(js_to_number(value)) == value:  # Segment's own test for epoch seconds
            return _from_epoch(Decimal(value), value)
        moment_ms = dayjs_ms(value)
        if not _MIN_EPOCH_MS <= moment_ms <= _MAX_EPOCH_MS:
            raise MappingRejected(f"timestamp out of range (years 1 to 9999): {value[:64]!r}")
        return iso_string(moment_ms)
    if isinstance(value, bool) or not is_number(value):
        raise MappingRejected(f"timestamp must be a date, got {_type_name(value)}")
    return _from_epoch(Decimal(repr(value)), repr(value))


# The usual timestamp in its parts, ASCII digits only: see plain_rfc3339.
_RFC3339_PARTS: Final = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.\d+)?(?:Z|[+-](\d{2}):(\d{2}))",
    re.ASCII,
)
_DAYS_IN_MONTH: Final = ("", "31", "29", "31", "30", "31", "30", "31", "31", "30", "31", "30", "31")


def plain_rfc3339(text: str) -> bool:
    """Whether `text` is an RFC 3339 date-time whose every part is in its usual range, on a
    real day of the years 1 to 9999: a date-like text for Segment (`is_date_like`) that
    `normalize_timestamp` sends unchanged, told in one look instead of those two checks (about
    1.5 µs, for every event). False says nothing: the general checks decide (an offset of
    +00:60, a second 60, year 0). A property test holds it to them."""
    match = _RFC3339_PARTS.fullmatch(text)
    if match is None:
        return False
    year, month, day, hour, minute, second, zone_hour, zone_minute = match.groups("0")
    # Two ASCII digits each (a missing zone part is "0"): the texts compare as their numbers.
    if not (
        "01" <= month <= "12" and "01" <= day <= _DAYS_IN_MONTH[int(month)] and hour <= "23"
        and minute <= "59" and second <= "59" and zone_hour <= "23" and zone_minute <= "59"
        and year != "0000"
    ):  # fmt: skip
        return False
    if month == "02" and day == "29":
        number = int(year)
        return number % 4 == 0 and (number % 100 != 0 or number % 400 == 0)
    return True


def _real_date(value: str, fraction: str) -> bool:
    # The shape is right; the date must be real too (no 2024-02-30). Python reads at most
    # microseconds, so longer fractions are shortened only for this check.
    checkable = value.replace(fraction, fraction[:7], 1) if fraction else value
    try:
        datetime.fromisoformat(checkable.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _from_epoch(number: Decimal, text: str) -> str:
    if not number.is_finite():
        raise MappingRejected(f"timestamp is not a date: {text[:64]!r}")
    # copy_abs and comparisons are exact; abs() and * would round into a decimal.Overflow.
    millis = number if number.copy_abs() >= EPOCH_MS_CUTOFF else number * 1000
    if not _MIN_EPOCH_MS <= millis <= _MAX_EPOCH_MS:
        raise MappingRejected(f"timestamp out of range (years 1 to 9999): {text[:64]!r}")
    # Integer milliseconds on top of the epoch: exact, unlike a float division.
    utc = (_EPOCH + timedelta(milliseconds=int(millis))).astimezone(UTC)
    # The year by hand: strftime's %Y does not pad years below 1000 to four digits.
    return f"{utc.year:04d}" + utc.strftime("-%m-%dT%H:%M:%S") + f".{utc.microsecond // 1000:03d}Z"


# -- planning --------------------------------------------------------------------------------------


def _message_id(event: MappingABC[str, Any]) -> str:
    return str(event["messageId"]) if "messageId" in event else ""


def map_event(event: MappingABC[str, Any], mapping: Mapping, app_code: str) -> Call:
    """The call `mapping` makes of `event`; MappingRejected with the reason if it cannot."""
    if mapping.is_preset_track and type(event) is dict:
        call = _map_plain_track(event, mapping, app_code)
        if call is not None:
            return call
    return map_event_in_full(event, mapping, app_code)


def map_event_in_full(event: MappingABC[str, Any], mapping: Mapping, app_code: str) -> Call:
    """map_event by the general path: every field's getter, Segment's checks, the body."""
    payload = validate_payload(resolve_payload(event, mapping), mapping.action)
    for key in mapping.undefined_in_arrays & payload.keys():
        payload[key] = json_ready(payload[key])  # undefined array members go out as null
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


# -- the preset track mapping, for plain events -----------------------------------------------


def _map_plain_track(event: dict[str, Any], mapping: Mapping, app_code: str) -> Call | None:
    """What the general path makes of an event through the preset track fields, for the
    usual event only: non-empty texts for userId, event and timestamp, objects for context,
    context.device and properties, texts for the device's id and type. Such values need no
    getter, nothing dropped or coerced, only the date check: their payload is taken as it is
    and built by the same `build_track_element`. Anything else (a missing or empty value,
    another type, a timestamp that does not read as a date) returns None, and the general path
    maps the event, rejections and coercions included. A property test holds the two paths to
    the same calls."""
    user_id, name, timestamp = event.get("userId"), event.get("event"), event.get("timestamp")
    if not (
        type(user_id) is str and user_id and type(name) is str and name
        and type(timestamp) is str and timestamp
    ):  # fmt: skip
        return None
    # The usual timestamp is checked once and sent as it is; any other takes both checks.
    sent_as_is = plain_rfc3339(timestamp)
    if not (sent_as_is or is_date_like(timestamp)):
        return None
    payload: dict[str, Any] = {"external_id": user_id}
    if not _plain_device(event, payload):
        return None
    payload["name"] = name
    payload["timestamp"] = timestamp
    properties = event.get("properties", ABSENT)
    if properties is not ABSENT:
        if type(properties) is not dict:
            return None
        payload["properties"] = properties
    element = (
        _track_element(payload, app_code, timestamp)
        if sent_as_is
        else build_track_element(payload, app_code)
    )
    return _made_call(
        mapping.name, TRACK_EVENT, POST_EVENTS_PATH, _message_id(event), element,
        mapping.enable_batching,
    )  # fmt: skip


def _plain_device(event: dict[str, Any], payload: dict[str, Any]) -> bool:
    """Put context.device's id and type in the payload; False when they are not plain."""
    context = event.get("context", ABSENT)
    if context is ABSENT:
        return True
    if type(context) is not dict:
        return False
    device = context.get("device", ABSENT)
    if device is ABSENT:
        return True
    if type(device) is not dict:
        return False
    for key, field in (("id", "device_id"), ("type", "device_platform")):
        value = device.get(key, ABSENT)
        if value is not ABSENT:
            if type(value) is not str or not value:
                return False
            payload[field] = value
    return True


def map_delete(event: MappingABC[str, Any]) -> Call:
    """A Segment `delete` (GDPR) becomes `delete-user` for its userId, sent as it is."""
    user_id = event.get("userId")
    if user_id is None or user_id == "":
        raise MappingRejected("missing required field userId")
    body = {"external_id": user_id}
    return Call("", DELETE_USER, DELETE_USER_PATH, _message_id(event), body, False)


def excluded_by_integrations(event: MappingABC[str, Any], names: Sequence[str]) -> bool:
    """Whether the event's `integrations` object switches this destination off.

    As Segment reads it: the destination's own entry decides when there is one (`false` is off,
    anything else on); otherwise `"All": false` switches every destination off.
    """
    integrations = event.get("integrations")
    if not isinstance(integrations, MappingABC) or not integrations:
        return False
    for name in names:
        if name in integrations:
            return integrations[name] is False
    return integrations.get("All", True) is False


def plan_calls(event: MappingABC[str, Any], mappings: Sequence[Mapping], app_code: str) -> Plan:
    """Every call an event makes, in mapping order, and every mapping that rejected it.

    An event whose `integrations` object switches this destination off (the names are the
    mappings' `integration_names`) makes no call: the plan's `skipped` is "integrations".
    """
    calls: list[Call] = []
    rejections: list[Rejection] = []
    if event.get("type") == "delete":
        make = functools.partial(map_delete, event)
        _map_guarded(make, "", DELETE_USER, event, calls, rejections)
        return Plan(calls, rejections)
    if mappings and excluded_by_integrations(event, mappings[0].integration_names):
        return Plan(calls, rejections, SKIPPED_BY_INTEGRATIONS)
    for mapping in mappings:
        if not mapping.enabled or not _triggers(mapping, event):
            continue
        make = functools.partial(map_event, event, mapping, app_code)
        _map_guarded(make, mapping.name, mapping.action, event, calls, rejections)
    return _plan(calls, rejections)


def _map_guarded(
    make: Callable[[], Call],
    mapping: str,
    action: str,
    event: MappingABC[str, Any],
    calls: list[Call],
    rejections: list[Rejection],
) -> None:
    """One mapping of one event; whatever goes wrong holds back this call only.

    The body is encoded here, once (the request sends these bytes): an element that cannot
    become JSON must be refused on its own, not break the request that would carry it and
    everything queued behind it.
    """
    try:
        call = make()
        call.encoded()
    except MappingRejected as ex:
        rejections.append(Rejection(mapping, action, _message_id(event), ex.reason, ex.code))
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
