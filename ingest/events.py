"""Parse and validate Segment messages into the events ingest stores. Pure: no I/O.

Input is whatever a sender posted (already decoded from JSON); output is a list of normalised
messages, each with a `messageId`, a `timestamp` and a `receivedAt`, with `/v1/batch` top-level
`context`/`integrations` merged in and `writeKey` removed. Every problem raises a `BadRequest`
or `PayloadTooLarge` naming the message index and the field, and rejects the whole request:
a sender is never told "ok" about a request that was partly dropped.

Refusals are cheap: the count limit, the delete check and every event's size limit are checked
in one pass over the decoded messages before any of them is validated, so a request refused for
a limit costs about what decoding its JSON cost (tests/unit/ingest/test_refusal_cost.py).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

import orjson
from marshmallow import INCLUDE, Schema, ValidationError, fields, validate, validates_schema

from config import fastjson
from ingest.errors import BadRequest, Forbidden, PayloadTooLarge

EVENT_TYPES = ("track", "identify", "page", "screen", "group", "alias", "delete")
V1_ROUTE_TYPES = ("track", "identify", "page", "screen", "group", "alias")
# Every path under /v1/ that takes events, and the message type it stores (None: a batch).
# The one-letter names are what Segment's browser and mobile SDKs post to: analytics.js posts
# each call to `<apiHost>/<first letter of the type>`, and batches (analytics.js in batching
# mode, analytics-swift, -kotlin, -react-native) to `<apiHost>/b`, with apiHost `.../v1`.
V1_ROUTES: Final[Mapping[str, str | None]] = {
    "batch": None,
    "b": None,
    **{kind: kind for kind in V1_ROUTE_TYPES},
    **{kind[0]: kind for kind in V1_ROUTE_TYPES},
}
# Segment's own limit for messageId; longer ids are rejected rather than truncated, so that
# dedupe never merges two different ids.
MAX_MESSAGE_ID_CHARS = 100
# How many field problems one error message lists before it stops.
_MAX_PROBLEMS = 5

Event = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Limits:
    """Size limits; the defaults are Segment's (32 KB per event, 2,500 events per batch)."""

    max_event_bytes: int = 32 * 1024
    max_batch_events: int = 2500


DEFAULT_LIMITS = Limits()


class _Identity(fields.Field[object]):
    """A user or anonymous id: a string or an integer (some senders use numeric ids)."""

    def _deserialize(
        self, value: object, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> object:
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise ValidationError("must be a string")
        return value


class _Timestamp(fields.Field[datetime]):
    """An ISO 8601 date-time; one without a zone is taken as UTC."""

    def _deserialize(
        self, value: object, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> datetime:
        if not isinstance(value, str):
            raise ValidationError("must be an ISO 8601 date-time string")
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError as ex:
            raise ValidationError("must be an ISO 8601 date-time string") from ex
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _object() -> fields.Dict:
    return fields.Dict(allow_none=True, error_messages={"invalid": "must be a JSON object"})


class _MessageSchema(Schema):
    class Meta:
        unknown = INCLUDE

    type = fields.String(
        required=True,
        validate=validate.OneOf(EVENT_TYPES, error="must be one of " + ", ".join(EVENT_TYPES)),
        error_messages={"required": "type is required", "null": "type is required"},
    )
    userId = _Identity(allow_none=True)
    anonymousId = _Identity(allow_none=True)
    previousId = _Identity(allow_none=True)
    event = fields.String(allow_none=True)
    messageId = fields.String(
        allow_none=True,
        validate=validate.Length(
            max=MAX_MESSAGE_ID_CHARS, error=f"must be at most {MAX_MESSAGE_ID_CHARS} characters"
        ),
    )
    timestamp = _Timestamp(allow_none=True)
    sentAt = _Timestamp(allow_none=True)
    originalTimestamp = _Timestamp(allow_none=True)
    context = _object()
    integrations = _object()
    properties = _object()
    traits = _object()

    @validates_schema
    def _check_required_by_type(self, data: dict[str, Any], **_: Any) -> None:
        kind = data.get("type")
        problems: dict[str, str] = {}
        if kind == "alias":
            if not _present(data.get("previousId")):
                problems["previousId"] = "previousId is required for alias"
            if not _present(data.get("userId")):
                problems["userId"] = "userId is required for alias"
        elif not (_present(data.get("userId")) or _present(data.get("anonymousId"))):
            problems["userId"] = "userId or anonymousId is required"
        if kind == "track" and not data.get("event"):
            problems["event"] = "event is required for track"
        if problems:
            raise ValidationError(problems)


class _EnvelopeSchema(Schema):
    """The envelope of `/v1/batch` but its `batch` list, which `_batch_items` checks: a
    marshmallow List would visit every element before the count limit could refuse them."""

    class Meta:
        unknown = INCLUDE

    context = _object()
    integrations = _object()
    sentAt = _Timestamp(allow_none=True)


_MESSAGE_SCHEMA = _MessageSchema()
_ENVELOPE_SCHEMA = _EnvelopeSchema()
# Said to a write key (or a first-element signature) whose request holds a delete.
DELETE_FORBIDDEN = (
    "deleting users needs an admin key (INGEST_ADMIN_KEYS) or a shared-secret X-Signature over "
    "the whole body; a write key cannot delete"
)


def _present(value: object) -> bool:
    return value is not None and value != ""


_IDENTITIES: Final = ("userId", "anonymousId", "previousId")
_OBJECTS: Final = ("context", "integrations", "properties", "traits")
_EVENT_TYPE_SET: Final = frozenset(EVENT_TYPES)
_TIMESTAMPS: Final = ("timestamp", "sentAt", "originalTimestamp")


def _parse_iso(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _quick_load(item: Mapping[str, Any]) -> dict[str, Any] | None:
    """The schema's result for an ordinary, valid message, without marshmallow's per-field cost;
    None for anything unusual or invalid, which the schema then checks (and explains).

    It accepts only what `_MessageSchema` accepts (a property test holds it to that), and reads
    only the fields the normalisation uses afterwards. It runs for every message, so it tests
    exact types (what JSON decodes to) in plain loops.
    """
    get = item.get
    kind = get("type")
    if type(kind) is not str or kind not in _EVENT_TYPE_SET:
        return None
    if not (_plain_types(get) and _has_required(kind, item)):
        return None
    parsed: dict[str, Any] = {}
    for key in _TIMESTAMPS:
        value = get(key)
        if value is None:
            continue
        moment = _parse_iso(value)
        if moment is None:
            return None
        parsed[key] = moment
    return parsed


def _plain_types(get: Callable[[str], Any]) -> bool:
    """Identities are strings or integers, event and messageId strings, objects objects."""
    for key in _IDENTITIES:
        value = get(key)
        if value is not None and type(value) is not str and type(value) is not int:
            return False
    event = get("event")
    if event is not None and type(event) is not str:
        return False
    message_id = get("messageId")
    if message_id is not None and (
        type(message_id) is not str or len(message_id) > MAX_MESSAGE_ID_CHARS
    ):
        return False
    for key in _OBJECTS:
        value = get(key)
        if value is not None and type(value) is not dict:
            return False
    return True


def _has_required(kind: str, item: Mapping[str, Any]) -> bool:
    if kind == "alias":
        return _present(item.get("previousId")) and _present(item.get("userId"))
    if not (_present(item.get("userId")) or _present(item.get("anonymousId"))):
        return False
    return kind != "track" or bool(item.get("event"))


def decode_json(raw: bytes) -> object:
    """Decode a request body; anything but UTF-8 JSON (NaN and Infinity included) is a 400."""
    if not raw.strip():
        raise BadRequest("request body is empty", code="invalid_json")
    try:
        # The fast parser handles well-formed bodies; anything it refuses gets the standard
        # library's verdict and error message below.
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as ex:
        raise BadRequest("request body is not valid UTF-8", code="invalid_json") from ex
    try:
        return json.loads(
            text,
            parse_constant=_reject_constant,
            parse_int=fastjson.js_number_or_null,
            parse_float=fastjson.js_number_or_null,
        )
    except RecursionError as ex:
        raise BadRequest("request body is nested too deeply", code="invalid_json") from ex
    except ValueError as ex:  # JSONDecodeError, NaN, and over-long integer literals
        raise BadRequest(f"request body is not valid JSON: {ex}", code="invalid_json") from ex


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not allowed in JSON")


def format_timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC with milliseconds and a Z, as Segment writes receivedAt."""
    utc = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    if utc.year < 1000:  # strftime's %Y does not pad these; isoformat would
        return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"
    # The same text as strftime's, at about half its cost: "YYYY-MM-DDTHH:MM:SS.mmm" + "Z"
    return utc.isoformat(timespec="milliseconds")[:23] + "Z"


def parse_webhook(
    body: object,
    received_at: datetime,
    new_id: Callable[[], str],
    *,
    limits: Limits = DEFAULT_LIMITS,
    may_delete: bool = True,
) -> list[Event]:
    """Events of a webhook POST: one message object, or a JSON array of them (Actions batch).

    With `may_delete` False, a request holding a `delete` is refused whole (Forbidden).
    """
    received = _Received(received_at)
    if isinstance(body, dict):
        _check_limits([body], lambda _: None, limits, may_delete)
        return [_normalise(body, None, received, new_id, {})]
    if not isinstance(body, list):
        raise BadRequest(
            "request body must be a JSON object or an array of objects", code="validation_failed"
        )
    _check_limits(body, _webhook_where, limits, may_delete)
    return [_normalise(item, f"events[{i}]", received, new_id, {}) for i, item in enumerate(body)]


def parse_v1(
    route_type: str | None,
    body: object,
    received_at: datetime,
    new_id: Callable[[], str],
    *,
    limits: Limits = DEFAULT_LIMITS,
    may_delete: bool = True,
) -> list[Event]:
    """Events of a Segment HTTP API call; `route_type` is None for `/v1/batch`.

    With `may_delete` False, a batch holding a `delete` is refused whole (Forbidden).
    """
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object", code="validation_failed")
    if route_type is not None:
        if route_type not in V1_ROUTE_TYPES:
            raise BadRequest(f"unknown message type {route_type!r}", code="validation_failed")
        # The route names the type, as in Segment's API: /v1/track stores a track.
        item = {**body, "type": route_type}
        _check_limits([item], lambda _: None, limits, may_delete)
        return [_normalise(item, None, _Received(received_at), new_id, {})]
    messages = _batch_items(body)
    _check_limits(messages, _batch_where, limits, may_delete)
    if not _plain_envelope(body):
        problems = _ENVELOPE_SCHEMA.validate(body)
        if problems:
            raise BadRequest(_describe(None, problems), code="validation_failed")
    shared = {k: body[k] for k in ("context", "integrations", "sentAt") if body.get(k) is not None}
    if shared:
        # What every message takes from the envelope is checked for invalid text once here
        # (each message's own fields were, by _check_limits), not again in every merged event.
        _encoded_size(shared, "batch")
    received = _Received(received_at)
    return [
        _normalise(item, f"batch[{i}]", received, new_id, shared) for i, item in enumerate(messages)
    ]


def _plain_envelope(body: Mapping[str, Any]) -> bool:
    """What `_ENVELOPE_SCHEMA` accepts without a word, checked without marshmallow: objects
    (or null) for context and integrations, a date-time (or null) for sentAt."""
    for key in ("context", "integrations"):
        value = body.get(key)
        if value is not None and type(value) is not dict:
            return False
    sent_at = body.get("sentAt")
    return sent_at is None or _parse_iso(sent_at) is not None


def _webhook_where(index: int) -> str:
    return f"events[{index}]"


def _batch_where(index: int) -> str:
    return f"batch[{index}]"


def _batch_items(body: Mapping[str, Any]) -> list[object]:
    if "batch" not in body:
        raise BadRequest("batch: batch is required", code="validation_failed")
    messages = body["batch"]
    if not isinstance(messages, list):
        raise BadRequest("batch: must be a list of messages", code="validation_failed")
    return messages


def _check_limits(
    items: list[object],
    where: Callable[[int], str | None],
    limits: Limits,
    may_delete: bool,
) -> None:
    """Every limit of the request, before any message is validated: the count, the delete
    privilege, then each message's size (one compact serialisation each, in one C call per
    message, cheaper than the decoding that produced it)."""
    _check_count(len(items), limits)
    if not may_delete and any(
        isinstance(item, dict) and item.get("type") == "delete" for item in items
    ):
        # A profile deletion cannot be undone, and write keys ship inside apps: anyone can read
        # one. Refused whole, so nothing of the request is stored.
        raise Forbidden(DELETE_FORBIDDEN)
    try:
        sizes = [len(orjson.dumps(item)) if isinstance(item, dict) else 0 for item in items]
    except (TypeError, ValueError):  # what orjson refuses: _encoded_size decides, by index
        sizes = [
            _encoded_size(item, where(index)) if isinstance(item, dict) else 0
            for index, item in enumerate(items)
        ]
    if sizes and max(sizes) > limits.max_event_bytes:
        index = next(i for i, size in enumerate(sizes) if size > limits.max_event_bytes)
        raise PayloadTooLarge(
            f"{where(index) or 'the event'} is {sizes[index]} bytes; the limit is "
            f"{limits.max_event_bytes} bytes per event"
        )


def _check_count(count: int, limits: Limits) -> None:
    if count > limits.max_batch_events:
        raise PayloadTooLarge(
            f"the batch has {count} events; the limit is {limits.max_batch_events} events "
            "per request"
        )


class _Received:
    """When a request was received, and that time as receivedAt text (formatted once)."""

    __slots__ = ("at", "text")

    def __init__(self, at: datetime) -> None:
        self.at = at
        self.text = format_timestamp(at)


def _normalise(
    item: object,
    where: str | None,
    received: _Received,
    new_id: Callable[[], str],
    shared: Mapping[str, Any],
) -> Event:
    """One message, validated and normalised; its size was checked by `_check_limits`."""
    if not isinstance(item, dict):
        raise BadRequest(f"{where or 'message'}: must be a JSON object", code="validation_failed")
    parsed = _quick_load(item)
    if parsed is None:
        try:
            parsed = _MESSAGE_SCHEMA.load(item)
        except ValidationError as ex:
            raise BadRequest(_describe(where, ex.messages), code="validation_failed") from ex

    event: Event = dict(item)
    event.pop("writeKey", None)
    for key in ("context", "integrations"):
        if key in shared:
            event[key] = _merge_one_level(shared[key], item.get(key) or {})
    if event.get("sentAt") is None and "sentAt" in shared:
        event["sentAt"] = shared["sentAt"]
    if not event.get("messageId"):
        event["messageId"] = new_id()
    if event.get("timestamp") is None:
        event["timestamp"] = _corrected_timestamp(parsed, shared, received, item)
    event["receivedAt"] = received.text
    return event


def _corrected_timestamp(
    parsed: Mapping[str, Any],
    shared: Mapping[str, Any],
    received: _Received,
    item: Mapping[str, Any],
) -> Any:
    """Segment's device clock correction: receivedAt - (sentAt - originalTimestamp)."""
    original = parsed.get("originalTimestamp")
    sent = parsed.get("sentAt")
    if sent is None and "sentAt" in shared:
        sent = datetime.fromisoformat(shared["sentAt"])  # validated by _ENVELOPE_SCHEMA
        sent = sent if sent.tzinfo else sent.replace(tzinfo=UTC)
    if original is not None and sent is not None:
        try:
            return format_timestamp(received.at - (sent - original))
        except (OverflowError, ValueError):
            return item["originalTimestamp"]  # a skew beyond the calendar: keep what was sent
    if original is not None:
        return item["originalTimestamp"]
    return received.text


def _merge_one_level(shared: Mapping[str, Any], own: Mapping[str, Any]) -> dict[str, Any]:
    """Shared keys under the message's own; nested objects merged one level, message wins."""
    merged = dict(shared)
    for key, value in own.items():
        base = merged.get(key)
        if isinstance(base, dict) and isinstance(value, dict):
            merged[key] = {**base, **value}
        else:
            merged[key] = value
    return merged


def _encoded_size(message: Mapping[str, Any], where: str | None) -> int:
    """Bytes of the message as compact UTF-8 JSON; invalid text (lone surrogates) is a 400."""
    try:
        return len(fastjson.dumps(message))
    except RecursionError as ex:
        raise BadRequest(f"{where or 'message'}: nested too deeply", code="invalid_json") from ex
    except (ValueError, TypeError) as ex:
        raise BadRequest(
            f"{where or 'message'}: contains text that is not valid Unicode", code="invalid_json"
        ) from ex


def _describe(where: str | None, messages: object) -> str:
    """`batch[3].userId: userId or anonymousId is required; batch[3].event: ...`."""
    problems: list[str] = []
    _flatten(messages, where or "", problems)
    shown = problems[:_MAX_PROBLEMS]
    more = len(problems) - len(shown)
    return "; ".join(shown) + (f" (and {more} more)" if more > 0 else "")


def _flatten(messages: object, path: str, out: list[str]) -> None:
    if isinstance(messages, dict):
        for key in sorted(messages, key=str):
            name = path if key == "_schema" else (f"{path}.{key}" if path else str(key))
            _flatten(messages[key], name, out)
    elif isinstance(messages, list):
        for message in messages:
            _flatten(message, path, out)
    else:
        out.append(f"{path}: {messages}" if path else str(messages))
