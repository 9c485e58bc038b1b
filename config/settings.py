"""Settings from the environment, validated with marshmallow once at start-up.

`load_settings(env)` takes the environment as an argument (tests pass a dict) and reports
every problem at once, each naming the variable and the bad value. Secrets are wrapped in
`Secret`, whose repr and str are masked, so a Settings object can be logged safely.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates_schema

from config.errors import ConfigError

DEFAULT_PUSHWOOSH_BASE_URL = "https://integration-segment.svc-nue.pushwoosh.com"
MASK = "****"


class Secret:
    """A string that never shows itself in repr(), str() or f-strings; `.reveal()` gets it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret('{MASK}')"

    def __str__(self) -> str:
        return MASK

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


class _SecretField(fields.String):
    def _deserialize(  # type: ignore[override]
        self, value: Any, attr: str | None, data: Any, **kwargs: Any
    ) -> Secret | None:
        text = super()._deserialize(value, attr, data, **kwargs)
        return Secret(text) if text else None


class _BoolField(fields.Boolean):
    truthy = {"true", "1", "yes", "on", "True", "TRUE"}
    falsy = {"false", "0", "no", "off", "False", "FALSE", ""}


class _CommaList(fields.String):
    def _deserialize(  # type: ignore[override]
        self, value: Any, attr: str | None, data: Any, **kwargs: Any
    ) -> list[str]:
        text = super()._deserialize(value, attr, data, **kwargs)
        return [item.strip() for item in text.split(",") if item.strip()]


@dataclasses.dataclass(frozen=True)
class Settings:
    """Every setting of the fleet. Built only by `load_settings`."""

    pushwoosh_api_key: Secret | None = None
    pushwoosh_application_code: str | None = None
    pushwoosh_base_url: str = DEFAULT_PUSHWOOSH_BASE_URL
    pushwoosh_enable_batching: bool = False
    pushwoosh_timeout_s: float = 10.0
    pushwoosh_dry_run: bool = False
    pushwoosh_mappings_file: str | None = None
    batch_flush_delay_s: float = 1.0
    batch_max_events: int = 100
    redis_url: str | None = None
    redis_key_prefix: str = "pwf"
    redis_sentinel_master: str = "mymaster"
    redis_min_replicas_ack: int = 0
    shards: int = 1
    ingest_write_keys: tuple[Secret, ...] = ()
    ingest_admin_keys: tuple[Secret, ...] = ()
    ingest_shared_secret: Secret | None = None
    ingest_signature_scope: str = "body"
    ingest_allow_unauthenticated: bool = False
    ingest_max_event_bytes: int = 32 * 1024
    ingest_max_request_bytes: int = 500 * 1024
    ingest_max_batch_events: int = 2500
    ingest_max_queued_events: int = 1_000_000
    ingest_cors_origins: tuple[str, ...] = ("*",)
    ingest_public_url: str | None = None
    dedupe_window_s: int = 24 * 3600
    retry_base_delay_s: float = 1.0
    retry_max_delay_s: float = 300.0
    retry_max_age_s: float = 4 * 3600.0
    retry_max_attempts: int = 50
    auth_failure_pause_s: float = 60.0
    rate_limit_requests_per_s: float = 0.0
    rate_limit_events_per_s: float = 0.0
    rate_limit_recovery_per_s: float = 0.05
    drain_slice_s: float = 10.0
    drain_lease_s: float = 30.0
    pump_interval_s: float = 0.2
    port: int = 8000
    log_level: str = "INFO"
    log_format: str = "text"
    trace_window_s: int = 24 * 3600
    trace_max_events: int = 1_000_000

    @property
    def has_credentials(self) -> bool:
        return bool(self.pushwoosh_api_key) and bool(self.pushwoosh_application_code)

    @property
    def dry_run(self) -> bool:
        """True when requests go to the logging sink instead of Pushwoosh."""
        return self.pushwoosh_dry_run or not self.has_credentials

    @property
    def effective_redis_url(self) -> str:
        return self.redis_url or "redis://127.0.0.1:6379/0"

    def redis_client(self, **kwargs: Any) -> Any:
        """A client for REDIS_URL, direct or through Sentinel (config/redis_client.py)."""
        from config.redis_client import make_redis

        return make_redis(self.effective_redis_url, self.redis_sentinel_master, **kwargs)


# An origin as browsers send it in the Origin header, e.g. https://www.example.com:8443.
_ORIGIN = re.compile(r"https?://[^/\s:]+(:\d{1,5})?", re.IGNORECASE)


def _check_origins(origins: list[str]) -> None:
    if origins == ["*"]:
        return
    if not origins:
        raise ValidationError("list the origins that may post, or * for any")
    if "*" in origins:
        raise ValidationError("use * alone (any origin) or a list of origins, not both")
    for origin in origins:
        if not _ORIGIN.fullmatch(origin):
            raise ValidationError(
                f"{origin!r} is not an origin: scheme://host[:port], no path or trailing slash"
            )


def _positive(what: str) -> validate.Range:
    return validate.Range(min=0, min_inclusive=False, error=f"must be a positive {what}")


class _SettingsSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    PUSHWOOSH_API_KEY = _SecretField(load_default=None)
    PUSHWOOSH_APPLICATION_CODE = fields.String(
        load_default=None,
        validate=validate.Regexp(
            r"^[A-Za-z0-9]{5}-[A-Za-z0-9]{5}$",
            error="must look like ABCDE-12345 (five letters or digits, a dash, five more)",
        ),
    )
    PUSHWOOSH_BASE_URL = fields.Url(
        load_default=DEFAULT_PUSHWOOSH_BASE_URL, require_tld=False, schemes={"http", "https"}
    )
    PUSHWOOSH_ENABLE_BATCHING = _BoolField(load_default=False)
    PUSHWOOSH_TIMEOUT_S = fields.Float(load_default=10.0, validate=_positive("number of seconds"))
    PUSHWOOSH_DRY_RUN = _BoolField(load_default=False)
    PUSHWOOSH_MAPPINGS_FILE = fields.String(load_default=None)
    PUSHWOOSH_BATCH_FLUSH_DELAY_S = fields.Float(
        load_default=1.0, validate=validate.Range(min=0, max=60)
    )
    # 100 per request: Pushwoosh's limit for post-events.
    PUSHWOOSH_BATCH_MAX_EVENTS = fields.Integer(load_default=100, validate=validate.Range(1, 100))
    PUSHWOOSH_SHARDS = fields.Integer(load_default=1, validate=validate.Range(1, 256))
    REDIS_URL = fields.String(
        load_default=None,
        validate=validate.Regexp(
            r"^(redis|rediss|unix|sentinel)://",
            error="must start with redis://, rediss://, unix:// or sentinel://",
        ),
    )
    REDIS_SENTINEL_MASTER = fields.String(load_default="mymaster")
    REDIS_MIN_REPLICAS_ACK = fields.Integer(load_default=0, validate=validate.Range(min=0, max=16))
    REDIS_KEY_PREFIX = fields.String(load_default="pwf", validate=validate.Length(min=1, max=40))
    INGEST_WRITE_KEYS = _CommaList(load_default="")
    INGEST_ADMIN_KEYS = _CommaList(load_default="")
    INGEST_SHARED_SECRET = _SecretField(load_default=None)
    INGEST_SIGNATURE_SCOPE = fields.String(
        load_default="body",
        validate=validate.OneOf(
            ["body", "first-element"],
            error='must be "body" (the signature covers the whole body) or "first-element"',
        ),
    )
    INGEST_ALLOW_UNAUTHENTICATED = _BoolField(load_default=False)
    INGEST_MAX_EVENT_BYTES = fields.Integer(load_default=32 * 1024, validate=_positive("integer"))
    INGEST_MAX_REQUEST_BYTES = fields.Integer(
        load_default=500 * 1024, validate=_positive("integer")
    )
    INGEST_MAX_BATCH_EVENTS = fields.Integer(load_default=2500, validate=_positive("integer"))
    INGEST_MAX_QUEUED_EVENTS = fields.Integer(load_default=1_000_000, validate=_positive("integer"))
    INGEST_CORS_ORIGINS = _CommaList(load_default="*", validate=_check_origins)
    INGEST_PUBLIC_URL = fields.Url(load_default=None, require_tld=False, schemes={"http", "https"})
    DEDUPE_WINDOW_S = fields.Integer(load_default=24 * 3600, validate=validate.Range(min=0))
    RETRY_BASE_DELAY_S = fields.Float(load_default=1.0, validate=_positive("number of seconds"))
    RETRY_MAX_DELAY_S = fields.Float(load_default=300.0, validate=_positive("number of seconds"))
    RETRY_MAX_AGE_S = fields.Float(load_default=4 * 3600.0, validate=_positive("number of seconds"))
    RETRY_MAX_ATTEMPTS = fields.Integer(load_default=50, validate=validate.Range(min=1))
    PUSHWOOSH_MAX_REQUESTS_PER_S = fields.Float(load_default=0.0, validate=validate.Range(min=0))
    PUSHWOOSH_MAX_EVENTS_PER_S = fields.Float(load_default=0.0, validate=validate.Range(min=0))
    RATE_LIMIT_RECOVERY_PER_S = fields.Float(
        load_default=0.05, validate=validate.Range(min=0, max=1)
    )
    AUTH_FAILURE_PAUSE_S = fields.Float(load_default=60.0, validate=_positive("number of seconds"))
    DRAIN_SLICE_S = fields.Float(load_default=10.0, validate=_positive("number of seconds"))
    DRAIN_LEASE_S = fields.Float(load_default=30.0, validate=_positive("number of seconds"))
    PUMP_INTERVAL_S = fields.Float(load_default=0.2, validate=_positive("number of seconds"))
    PORT = fields.Integer(load_default=8000, validate=validate.Range(1, 65535))
    LOG_LEVEL = fields.String(
        load_default="INFO",
        validate=validate.OneOf(["DEBUG", "INFO", "WARNING", "ERROR"]),
    )
    LOG_FORMAT = fields.String(load_default="text", validate=validate.OneOf(["text", "json"]))
    TRACE_WINDOW_S = fields.Integer(load_default=24 * 3600, validate=validate.Range(min=0))
    TRACE_MAX_EVENTS = fields.Integer(load_default=1_000_000, validate=_positive("integer"))

    @validates_schema(skip_on_field_errors=False)
    def _check_together(self, data: dict[str, Any], **_: Any) -> None:
        has_key = data.get("PUSHWOOSH_API_KEY") is not None
        has_code = data.get("PUSHWOOSH_APPLICATION_CODE") is not None
        if has_key != has_code:
            missing = "PUSHWOOSH_APPLICATION_CODE" if has_key else "PUSHWOOSH_API_KEY"
            raise ValidationError(
                "PUSHWOOSH_API_KEY and PUSHWOOSH_APPLICATION_CODE go together; set both or neither",
                missing,
            )
        shared = set(data.get("INGEST_ADMIN_KEYS") or ()) & set(data.get("INGEST_WRITE_KEYS") or ())
        if shared:
            raise ValidationError(
                "an admin key may not also be a write key: write keys ship inside apps",
                "INGEST_ADMIN_KEYS",
            )
        if data.get("DRAIN_LEASE_S", 30.0) <= data.get("PUSHWOOSH_TIMEOUT_S", 10.0):
            raise ValidationError(
                "must be longer than PUSHWOOSH_TIMEOUT_S, or a slow request loses its lease",
                "DRAIN_LEASE_S",
            )


_SECRET_NAMES = {
    "PUSHWOOSH_API_KEY", "INGEST_SHARED_SECRET", "INGEST_WRITE_KEYS", "INGEST_ADMIN_KEYS",
}  # fmt: skip


def _describe(name: str, value: object, messages: object) -> str:
    text = "; ".join(str(m) for m in messages) if isinstance(messages, list) else str(messages)
    if name in _SECRET_NAMES or value is None:
        return f"{name}: {text}"
    return f"{name}={value!r}: {text}"


def load_settings(env: Mapping[str, str]) -> Settings:
    """Validate the environment into Settings, or raise ConfigError listing every problem."""
    relevant = {k: v for k, v in env.items() if k in _SettingsSchema().fields}
    # An empty variable means "not set", as in most twelve-factor tooling.
    relevant = {
        k: v for k, v in relevant.items() if v != "" or k.endswith("_ALLOW_UNAUTHENTICATED")
    }
    try:
        data = _SettingsSchema().load(relevant)
    except ValidationError as ex:
        messages = ex.messages if isinstance(ex.messages, dict) else {"_": ex.messages}
        problems = [_describe(name, relevant.get(name), msgs) for name, msgs in messages.items()]
        raise ConfigError(sorted(problems)) from ex
    return Settings(
        pushwoosh_api_key=data["PUSHWOOSH_API_KEY"],
        pushwoosh_application_code=data["PUSHWOOSH_APPLICATION_CODE"],
        pushwoosh_base_url=data["PUSHWOOSH_BASE_URL"].rstrip("/"),
        pushwoosh_enable_batching=data["PUSHWOOSH_ENABLE_BATCHING"],
        pushwoosh_timeout_s=data["PUSHWOOSH_TIMEOUT_S"],
        pushwoosh_dry_run=data["PUSHWOOSH_DRY_RUN"],
        pushwoosh_mappings_file=data["PUSHWOOSH_MAPPINGS_FILE"],
        batch_flush_delay_s=data["PUSHWOOSH_BATCH_FLUSH_DELAY_S"],
        batch_max_events=data["PUSHWOOSH_BATCH_MAX_EVENTS"],
        redis_url=data["REDIS_URL"],
        redis_key_prefix=data["REDIS_KEY_PREFIX"],
        redis_sentinel_master=data["REDIS_SENTINEL_MASTER"],
        redis_min_replicas_ack=data["REDIS_MIN_REPLICAS_ACK"],
        shards=data["PUSHWOOSH_SHARDS"],
        ingest_write_keys=tuple(Secret(k) for k in data["INGEST_WRITE_KEYS"]),
        ingest_admin_keys=tuple(Secret(k) for k in data["INGEST_ADMIN_KEYS"]),
        ingest_shared_secret=data["INGEST_SHARED_SECRET"],
        ingest_signature_scope=data["INGEST_SIGNATURE_SCOPE"],
        ingest_allow_unauthenticated=data["INGEST_ALLOW_UNAUTHENTICATED"],
        ingest_max_event_bytes=data["INGEST_MAX_EVENT_BYTES"],
        ingest_max_request_bytes=data["INGEST_MAX_REQUEST_BYTES"],
        ingest_max_batch_events=data["INGEST_MAX_BATCH_EVENTS"],
        ingest_max_queued_events=data["INGEST_MAX_QUEUED_EVENTS"],
        # Browsers send origins lowercased; the comparison is exact.
        ingest_cors_origins=tuple(origin.lower() for origin in data["INGEST_CORS_ORIGINS"]),
        ingest_public_url=(data["INGEST_PUBLIC_URL"] or "").rstrip("/") or None,
        dedupe_window_s=data["DEDUPE_WINDOW_S"],
        retry_base_delay_s=data["RETRY_BASE_DELAY_S"],
        retry_max_delay_s=data["RETRY_MAX_DELAY_S"],
        retry_max_age_s=data["RETRY_MAX_AGE_S"],
        retry_max_attempts=data["RETRY_MAX_ATTEMPTS"],
        auth_failure_pause_s=data["AUTH_FAILURE_PAUSE_S"],
        rate_limit_requests_per_s=data["PUSHWOOSH_MAX_REQUESTS_PER_S"],
        rate_limit_events_per_s=data["PUSHWOOSH_MAX_EVENTS_PER_S"],
        rate_limit_recovery_per_s=data["RATE_LIMIT_RECOVERY_PER_S"],
        drain_slice_s=data["DRAIN_SLICE_S"],
        drain_lease_s=data["DRAIN_LEASE_S"],
        pump_interval_s=data["PUMP_INTERVAL_S"],
        port=data["PORT"],
        log_level=data["LOG_LEVEL"],
        log_format=data["LOG_FORMAT"],
        trace_window_s=data["TRACE_WINDOW_S"],
        trace_max_events=data["TRACE_MAX_EVENTS"],
    )
