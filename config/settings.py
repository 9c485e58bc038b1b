"""Settings from the environment, declared once and validated once at start-up.

Each setting is declared once, as a field of `Settings`: its attribute, default, environment
variable, how the variable is read and checked (a marshmallow field), and the line that
documents it. The environment schema and the README's table are made from those declarations
(`python -m config.settings` prints the table; a test keeps the README in step).

`load_settings(env)` takes the environment as an argument (tests pass a dict) and reports every
problem at once, each naming the variable. Secrets are wrapped in `Secret`, whose repr and str
are masked, so a Settings object can be logged safely; every secret can also be given as a file
(`NAME_FILE=/path`, the way container platforms mount secrets).
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
import tempfile
from collections.abc import Callable, Mapping
from typing import Any, Final
from urllib.parse import unquote, urlsplit

from marshmallow import Schema, ValidationError, fields, validate

from config.errors import ConfigError

DEFAULT_PUSHWOOSH_BASE_URL: Final = "https://integration-segment.svc-nue.pushwoosh.com"
DEFAULT_REDIS_URL: Final = "redis://127.0.0.1:6379/0"
# The names an event's `integrations` object may use for this destination: Segment's docs say
# "refer to it as Pushwoosh", and its catalog calls it "Pushwoosh (Actions)".
DEFAULT_INTEGRATION_NAMES: Final = ("Pushwoosh", "Pushwoosh (Actions)")
MASK: Final = "****"
LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_LOG_LEVEL_ALIASES: Final = {"WARN": "WARNING", "FATAL": "CRITICAL"}


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


# -- how variables are read ------------------------------------------------------------------------


class _SecretField(fields.String):
    def _deserialize(  # type: ignore[override]
        self, value: Any, attr: str | None, data: Any, **kwargs: Any
    ) -> Secret | None:
        text = super()._deserialize(value, attr, data, **kwargs)
        return Secret(text) if text else None


class _SecretList(fields.String):
    """A comma-separated list of secrets (write keys, admin keys)."""

    def _deserialize(  # type: ignore[override]
        self, value: Any, attr: str | None, data: Any, **kwargs: Any
    ) -> tuple[Secret, ...]:
        text = super()._deserialize(value, attr, data, **kwargs)
        return tuple(Secret(item.strip()) for item in text.split(",") if item.strip())


class _CommaList(fields.String):
    """A comma-separated list of names."""

    def _deserialize(  # type: ignore[override]
        self, value: Any, attr: str | None, data: Any, **kwargs: Any
    ) -> tuple[str, ...]:
        text = super()._deserialize(value, attr, data, **kwargs)
        return tuple(item.strip() for item in text.split(",") if item.strip())


class _Bool(fields.Boolean):
    truthy = {"true", "1", "yes", "on", "True", "TRUE"}
    falsy = {"false", "0", "no", "off", "False", "FALSE"}


class _Url(fields.Url):
    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        return str(super()._deserialize(value, attr, data, **kwargs)).rstrip("/")


class _LogLevel(fields.String):
    """Any case, as gunicorn and Celery accept them: info, INFO, Warn..."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        level = super()._deserialize(value, attr, data, **kwargs).strip().upper()
        level = _LOG_LEVEL_ALIASES.get(level, level)
        if level not in LOG_LEVELS:
            raise ValidationError(f"must be one of {', '.join(LOG_LEVELS)} (any case)")
        return level


# An origin as browsers send it in the Origin header, e.g. https://www.example.com:8443.
_ORIGIN = re.compile(r"https?://[^/\s:]+(:\d{1,5})?", re.IGNORECASE)


class _Origins(_CommaList):
    """`*`, or a comma list of origins (lowercased: browsers send them so, compared exactly)."""

    def _deserialize(  # type: ignore[override]
        self, value: Any, attr: str | None, data: Any, **kwargs: Any
    ) -> tuple[str, ...]:
        origins = super()._deserialize(value, attr, data, **kwargs)
        if origins == ("*",):
            return origins
        if not origins:
            raise ValidationError("list the origins that may post, or * for any")
        if "*" in origins:
            raise ValidationError("use * alone (any origin) or a list of origins, not both")
        for origin in origins:
            if not _ORIGIN.fullmatch(origin):
                raise ValidationError(
                    f"{origin!r} is not an origin: scheme://host[:port], no path or trailing slash"
                )
        return tuple(origin.lower() for origin in origins)


def _positive(what: str) -> validate.Range:
    return validate.Range(min=0, min_inclusive=False, error=f"must be a positive {what}")


def _seconds() -> fields.Float:
    return fields.Float(validate=_positive("number of seconds"))


@dataclasses.dataclass(frozen=True)
class SettingSpec:
    """What the environment says about one setting; held in the dataclass field's metadata."""

    env: str
    reader: fields.Field  # type: ignore[type-arg]
    doc: str
    shown_default: str | None  # for the README; None: the default itself
    secret: bool  # masked in every log line; readable from NAME_FILE
    from_file: bool  # may be given as NAME_FILE (every secret, and REDIS_URL)


def setting(
    env: str,
    default: Any,
    reader: fields.Field,  # type: ignore[type-arg]
    doc: str,
    *,
    shown: str | None = None,
    secret: bool = False,
    from_file: bool = False,
) -> Any:
    """Declare one setting: a dataclass field whose metadata says how the environment sets it."""
    spec = SettingSpec(env, reader, doc, shown, secret, from_file or secret)
    return dataclasses.field(default=default, metadata={"spec": spec})


# -- the table -------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Settings:
    """Every setting of the fleet. Built by `load_settings`; each field declares its variable."""

    pushwoosh_api_key: Secret | None = setting(
        "PUSHWOOSH_API_KEY", None, _SecretField(),
        "Pushwoosh API key. Without it (and the app code) the fleet runs dry.", secret=True,
    )  # fmt: skip
    pushwoosh_application_code: str | None = setting(
        "PUSHWOOSH_APPLICATION_CODE", None,
        fields.String(validate=validate.Regexp(
            r"^[A-Za-z0-9]{5}-[A-Za-z0-9]{5}$",
            error="must look like ABCDE-12345 (five letters or digits, a dash, five more)",
        )),
        "e.g. `ABCDE-12345`",
    )  # fmt: skip
    pushwoosh_base_url: str = setting(
        "PUSHWOOSH_BASE_URL", DEFAULT_PUSHWOOSH_BASE_URL,
        _Url(require_tld=False, schemes={"http", "https"}), "where requests go",
    )  # fmt: skip
    pushwoosh_enable_batching: bool = setting(
        "PUSHWOOSH_ENABLE_BATCHING", False, _Bool(),
        "the presets' \"Batch Data to Pushwoosh\" switch (Segment's preset default is off)",
    )  # fmt: skip
    batch_max_events: int = setting(
        # 100 per request: Pushwoosh's limit for post-events.
        "PUSHWOOSH_BATCH_MAX_EVENTS", 100, fields.Integer(validate=validate.Range(1, 100)),
        "events per `post-events` request (1 to 100; 100 is Pushwoosh's limit)",
    )  # fmt: skip
    batch_flush_delay_s: float = setting(
        "PUSHWOOSH_BATCH_FLUSH_DELAY_S", 1.0, fields.Float(validate=validate.Range(min=0, max=60)),
        "a partial batch goes out once its oldest event waited this long",
    )  # fmt: skip
    pushwoosh_timeout_s: float = setting(
        "PUSHWOOSH_TIMEOUT_S", 10.0, _seconds(), "per request",
    )  # fmt: skip
    pushwoosh_dry_run: bool = setting(
        "PUSHWOOSH_DRY_RUN", False, _Bool(),
        "log requests instead of sending them, even with credentials",
    )  # fmt: skip
    pushwoosh_mappings_file: str | None = setting(
        "PUSHWOOSH_MAPPINGS_FILE", None, fields.String(),
        "custom mappings (YAML or JSON); see [docs/mappings.md](docs/mappings.md)",
    )  # fmt: skip
    pushwoosh_integration_names: tuple[str, ...] = setting(
        "PUSHWOOSH_INTEGRATION_NAMES", DEFAULT_INTEGRATION_NAMES, _CommaList(),
        "the names an event's `integrations` object may use for this destination: "
        "`{\"All\": false}` or `{\"<name>\": false}` keeps an event from it",
        shown="`Pushwoosh,Pushwoosh (Actions)`",
    )  # fmt: skip
    shards: int = setting(
        "PUSHWOOSH_SHARDS", 1, fields.Integer(validate=validate.Range(1, 256)),
        "streams per destination; events of one user always share a shard. Raise it to deliver "
        "in parallel (see [Scaling](#scaling-out)). Set it the same on ingest and workers.",
    )  # fmt: skip
    destinations_file: str | None = setting(
        "DESTINATIONS_FILE", None, fields.String(),
        "several Pushwoosh apps in one fleet; see [Several destinations](#several-destinations)",
    )  # fmt: skip
    redis_url: str | None = setting(
        "REDIS_URL", None,
        fields.String(validate=validate.Regexp(
            r"^(redis|rediss|unix|sentinel|redis\+cluster|rediss\+cluster)://",
            error="must start with redis://, rediss://, unix://, sentinel:// or "
            "redis+cluster://",
        )),
        "the event store (and the broker unless `CELERY_BROKER_URL` says otherwise); "
        "`sentinel://h1:26379;sentinel://h2:26379/0` for Sentinel, "
        "`redis+cluster://h1:7000,h2:7001/` for Redis Cluster (see [Scaling](#scaling-out))",
        shown=f"`{DEFAULT_REDIS_URL}` (`run`: embedded)", from_file=True,
    )  # fmt: skip
    celery_broker_url: str | None = setting(
        "CELERY_BROKER_URL", None,
        fields.String(validate=validate.Regexp(
            r"^(amqp|amqps|pyamqp|redis|rediss|sentinel)://",
            error="must start with amqp://, amqps://, redis://, rediss:// or sentinel:// "
            "(Celery cannot use a Redis Cluster as its broker)",
        )),
        "where Celery's drain tasks travel: RabbitMQ (`amqp://user:password@host:5672//`) or a "
        "Redis of its own; unset: `REDIS_URL`'s Redis. Required when `REDIS_URL` is a cluster",
        shown="`REDIS_URL`", from_file=True,
    )  # fmt: skip
    redis_sentinel_master: str = setting(
        "REDIS_SENTINEL_MASTER", "mymaster", fields.String(),
        "the primary's name the sentinels monitor",
    )  # fmt: skip
    redis_min_replicas_ack: int = setting(
        "REDIS_MIN_REPLICAS_ACK", 0, fields.Integer(validate=validate.Range(min=0, max=16)),
        "ingest answers 200 only once this many replicas have the events (`WAIT`); 1 with "
        "Sentinel",
    )  # fmt: skip
    redis_memory_headroom: float = setting(
        "REDIS_MEMORY_HEADROOM", 0.1, fields.Float(validate=validate.Range(min=0, max=0.9)),
        "with a Redis `maxmemory`, ingest answers 503 once used memory passes (1 - this) of it, "
        "so delivery (which frees memory) always has room to write",
    )  # fmt: skip
    redis_key_prefix: str = setting(
        "REDIS_KEY_PREFIX", "pwf", fields.String(validate=validate.Length(min=1, max=40)),
        "prefix of every key, of the Celery queue name (`pwf.drain`) and of Celery's own keys",
    )  # fmt: skip
    rate_limit_requests_per_s: float = setting(
        "PUSHWOOSH_MAX_REQUESTS_PER_S", 0.0, fields.Float(validate=validate.Range(min=0)),
        "a rate limit shared by every worker on every machine (0: none)",
    )  # fmt: skip
    rate_limit_events_per_s: float = setting(
        "PUSHWOOSH_MAX_EVENTS_PER_S", 0.0, fields.Float(validate=validate.Range(min=0)),
        "the same, counted in events (0: none)",
    )  # fmt: skip
    rate_limit_recovery_per_s: float = setting(
        "RATE_LIMIT_RECOVERY_PER_S", 0.05, fields.Float(validate=validate.Range(min=0, max=1)),
        "after a 429 halves the rate, it recovers by this share of the limit per second",
    )  # fmt: skip
    ingest_write_keys: tuple[Secret, ...] = setting(
        "INGEST_WRITE_KEYS", (), _SecretList(),
        "comma-separated write keys accepted by ingest (public: they ship inside apps)",
        shown="—", secret=True,
    )  # fmt: skip
    ingest_admin_keys: tuple[Secret, ...] = setting(
        "INGEST_ADMIN_KEYS", (), _SecretList(),
        "comma-separated keys that may also delete users (never a write key), and open the "
        "[delivery page](#the-delivery-page); `Authorization` header only, Bearer or Basic",
        shown="—", secret=True,
    )  # fmt: skip
    ingest_shared_secret: Secret | None = setting(
        "INGEST_SHARED_SECRET", None, _SecretField(), "HMAC-SHA1 secret for `X-Signature`",
        secret=True,
    )  # fmt: skip
    ingest_signature_scope: str = setting(
        "INGEST_SIGNATURE_SCOPE", "body",
        fields.String(validate=validate.OneOf(
            ["body", "first-element"],
            error='must be "body" (the signature covers the whole body) or "first-element"',
        )),
        "`body`: `X-Signature` must cover the whole body. `first-element`: also accept Segment's "
        "Webhooks (Actions) batch signature over the first element only (see "
        "[Security](#security))",
    )  # fmt: skip
    ingest_allow_unauthenticated: bool = setting(
        "INGEST_ALLOW_UNAUTHENTICATED", False, _Bool(),
        "without a key or secret the web process refuses to start unless this is `true`",
    )  # fmt: skip
    ingest_max_event_bytes: int = setting(
        "INGEST_MAX_EVENT_BYTES", 32 * 1024, fields.Integer(validate=_positive("integer")),
        "Segment's limit per event; over it a request gets 400 (`too_large`) naming the limit",
    )  # fmt: skip
    ingest_max_request_bytes: int = setting(
        "INGEST_MAX_REQUEST_BYTES", 500 * 1024, fields.Integer(validate=_positive("integer")),
        "Segment's limit per request (after gunzip)",
    )  # fmt: skip
    ingest_max_batch_events: int = setting(
        "INGEST_MAX_BATCH_EVENTS", 2500, fields.Integer(validate=_positive("integer")),
        "Segment's limit of events per batch",
    )  # fmt: skip
    ingest_max_queued_events: int = setting(
        "INGEST_MAX_QUEUED_EVENTS", 1_000_000, fields.Integer(validate=_positive("integer")),
        "above this backlog ingest answers 429 with `Retry-After`",
    )  # fmt: skip
    ingest_body_timeout_s: float = setting(
        "INGEST_BODY_TIMEOUT_S", 30.0, fields.Float(validate=validate.Range(min=1, max=600)),
        "a request's body must arrive within this many seconds of its headers (which must "
        "arrive within 5 s of the connection or of the previous request); a slower one gets 408 "
        "and its connection is closed",
    )  # fmt: skip
    ingest_cors_origins: tuple[str, ...] = setting(
        "INGEST_CORS_ORIGINS", ("*",), _Origins(),
        "the web origins whose pages may post (CORS): `*` (any: write keys are public anyway "
        "and no credentials are allowed) or a comma list like `https://shop.example.com`; other "
        "origins get 403 `origin_not_allowed`",
        shown="`*`",
    )  # fmt: skip
    ingest_public_url: str | None = setting(
        "INGEST_PUBLIC_URL", None, _Url(require_tld=False, schemes={"http", "https"}),
        "the fleet's address as SDKs reach it (`https://events.example.com`); with it, "
        "`GET /v1/projects/<writeKey>/settings` answers Segment's settings shape pointing the SDKs "
        "here (see [Pointing Segment at the fleet](#pointing-segment-at-the-fleet))",
    )  # fmt: skip
    dedupe_window_s: int = setting(
        "DEDUPE_WINDOW_S", 24 * 3600, fields.Integer(validate=validate.Range(min=0)),
        "repeats of a `messageId` within this window are dropped (0 = off)",
    )  # fmt: skip
    dlq_max_entries: int = setting(
        "DLQ_MAX_ENTRIES", 10_000, fields.Integer(validate=_positive("integer")),
        "dead letters kept per destination (spread over its shards); the oldest go first",
    )  # fmt: skip
    dlq_retention_s: int = setting(
        "DLQ_RETENTION_S", 7 * 24 * 3600, fields.Integer(validate=_positive("integer")),
        "dead letters older than this are dropped (a week)",
    )  # fmt: skip
    retry_base_delay_s: float = setting(
        "RETRY_BASE_DELAY_S", 1.0, _seconds(), "exponential back-off with full jitter: base",
    )  # fmt: skip
    retry_max_delay_s: float = setting(
        "RETRY_MAX_DELAY_S", 300.0, _seconds(), "the longest single wait between attempts",
    )  # fmt: skip
    retry_max_age_s: float = setting(
        "RETRY_MAX_AGE_S", 4 * 3600.0, _seconds(),
        "a call is dead-lettered once its oldest event waited this long (4 h)",
    )  # fmt: skip
    retry_max_attempts: int = setting(
        "RETRY_MAX_ATTEMPTS", 50, fields.Integer(validate=validate.Range(min=1)),
        "...or after this many attempts",
    )  # fmt: skip
    auth_failure_pause_s: float = setting(
        "AUTH_FAILURE_PAUSE_S", 60.0, _seconds(), "pause after a 401/403, doubling up to an hour",
    )  # fmt: skip
    drain_slice_s: float = setting(
        "DRAIN_SLICE_S", 10.0, _seconds(), "how long a drain task keeps a shard",
    )  # fmt: skip
    drain_lease_s: float = setting(
        "DRAIN_LEASE_S", 30.0, _seconds(),
        "how long a dead drain task blocks its shard (longer than `PUSHWOOSH_TIMEOUT_S`)",
    )  # fmt: skip
    pump_interval_s: float = setting(
        "PUMP_INTERVAL_S", 0.2, _seconds(),
        "how often each worker looks for shards with work while any stream has events; an idle "
        "worker waits in Redis for the next event (a second at most)",
    )  # fmt: skip
    port: int = setting(
        "PORT", 8000, fields.Integer(validate=validate.Range(1, 65535)), "ingest port",
    )  # fmt: skip
    metrics_address: str = setting(
        "METRICS_ADDRESS", "127.0.0.1", fields.String(validate=validate.Length(min=1)),
        "where each process's metrics listener binds: loopback by default; `0.0.0.0` in a "
        "container, so Prometheus can scrape the pod (see [Monitoring](#monitoring))",
    )  # fmt: skip
    metrics_port: int = setting(
        "METRICS_PORT", 9810, fields.Integer(validate=validate.Range(0, 65535)),
        "ingest's metrics (`/metrics`, served by the gunicorn master for all its processes), "
        "apart from the public `PORT`; 0 = off",
    )  # fmt: skip
    worker_metrics_port: int = setting(
        "WORKER_METRICS_PORT", 9811, fields.Integer(validate=validate.Range(0, 65535)),
        "a worker's own metrics; 0 = off. Several workers on one machine need one port each",
    )  # fmt: skip
    fleet_metrics_port: int = setting(
        "FLEET_METRICS_PORT", 9812, fields.Integer(validate=validate.Range(1, 65535)),
        "`pushwoosh-fleet metrics`: the fleet-wide gauges (queues, oldest event, retries, dead "
        "letters, live workers) and the [delivery page](#the-delivery-page), served by that one "
        "process",
    )  # fmt: skip
    worker_heartbeat_path: str | None = setting(
        "WORKER_HEARTBEAT_PATH", None, fields.String(),
        "where a worker's pump records that it is alive, for `pushwoosh-fleet probe worker`",
        shown="`$TMPDIR/pushwoosh-fleet-<REDIS_KEY_PREFIX>-worker.json`",
    )  # fmt: skip
    web_concurrency: int = setting(
        "WEB_CONCURRENCY", 2, fields.Integer(validate=validate.Range(1, 256)),
        "gunicorn processes serving ingest",
    )  # fmt: skip
    gunicorn_worker_connections: int = setting(
        "GUNICORN_WORKER_CONNECTIONS", 1000, fields.Integer(validate=validate.Range(10, 100_000)),
        "requests one ingest process serves at once; beyond that it answers 503 (senders retry)",
    )  # fmt: skip
    gunicorn_access_log: str | None = setting(
        "GUNICORN_ACCESS_LOG", None, fields.String(),
        "where gunicorn writes its access log (`-`: stderr); off when unset",
    )  # fmt: skip
    log_level: str = setting(
        "LOG_LEVEL", "INFO", _LogLevel(),
        "`debug`, `info`, `warning`, `error` or `critical`, any case; every process",
    )  # fmt: skip
    log_format: str = setting(
        "LOG_FORMAT", "text", fields.String(validate=validate.OneOf(["text", "json"])),
        "`json`: one JSON object per line (time, level, logger, message, extras); secrets are "
        "masked in every format",
    )  # fmt: skip
    trace_window_s: int = setting(
        "TRACE_WINDOW_S", 24 * 3600, fields.Integer(validate=validate.Range(min=0)),
        "how long `pushwoosh-fleet trace` can look back (0 = no event history)",
    )  # fmt: skip
    trace_max_bytes: int = setting(
        "TRACE_MAX_BYTES", 256 * 1024 * 1024, fields.Integer(validate=_positive("integer")),
        "the event history's memory budget in Redis, spread evenly over the window's hours; "
        "past an hour's share, that hour's new records are dropped (and counted); see "
        "[docs/operations.md](docs/operations.md)",
        shown="`268,435,456` (256 MiB)",
    )  # fmt: skip

    @property
    def has_credentials(self) -> bool:
        return bool(self.pushwoosh_api_key) and bool(self.pushwoosh_application_code)

    @property
    def dry_run(self) -> bool:
        """True when requests go to the logging sink instead of Pushwoosh."""
        return self.pushwoosh_dry_run or not self.has_credentials

    @property
    def effective_redis_url(self) -> str:
        return self.redis_url or DEFAULT_REDIS_URL

    @property
    def effective_broker_url(self) -> str:
        """Celery's broker: CELERY_BROKER_URL, else the event store's Redis."""
        return self.celery_broker_url or self.effective_redis_url

    @property
    def redis_cluster(self) -> bool:
        """True when the event store is a Redis Cluster (`redis+cluster://`)."""
        return is_cluster_url(self.effective_redis_url)

    @property
    def heartbeat_path(self) -> str:
        """The worker's heartbeat file (WORKER_HEARTBEAT_PATH, else one per key prefix)."""
        if self.worker_heartbeat_path:
            return self.worker_heartbeat_path
        name = f"pushwoosh-fleet-{self.redis_key_prefix}-worker.json"
        return os.path.join(tempfile.gettempdir(), name)

    def secrets(self) -> list[str]:
        """Every secret value in these settings (and Redis' password), for log masking."""
        found: list[str] = []
        for spec_field in dataclasses.fields(self):
            if not spec_of(spec_field).secret:
                continue
            value = getattr(self, spec_field.name)
            values = value if isinstance(value, tuple) else (value,)
            found += [v.reveal() if isinstance(v, Secret) else v for v in values if v]
        for url in (self.redis_url, self.celery_broker_url):
            for part in (url or "").split(";"):
                password = urlsplit(part.strip()).password
                if password:
                    found.append(unquote(password))
        return found


def is_cluster_url(url: str) -> bool:
    """`redis+cluster://` (or `rediss+cluster://`): the event store is a Redis Cluster."""
    return url.startswith(("redis+cluster://", "rediss+cluster://"))


def spec_of(field: dataclasses.Field[Any]) -> SettingSpec:
    spec = field.metadata["spec"]
    assert isinstance(spec, SettingSpec)
    return spec


SPECS: Final[dict[str, tuple[str, SettingSpec]]] = {
    spec_of(f).env: (f.name, spec_of(f)) for f in dataclasses.fields(Settings)
}
_SCHEMA: Final = Schema.from_dict({env: spec.reader for env, (_, spec) in SPECS.items()})()


# -- loading ---------------------------------------------------------------------------------------

FILE_SUFFIX: Final = "_FILE"


def _describe(name: str, value: object, messages: object) -> str:
    text = "; ".join(str(m) for m in messages) if isinstance(messages, list) else str(messages)
    secret = name in SPECS and SPECS[name][1].secret
    if secret or value is None:
        return f"{name}: {text}"
    return f"{name}={value!r}: {text}"


def _read_secret_files(env: Mapping[str, str], problems: list[str]) -> dict[str, str]:
    """`NAME_FILE=/run/secrets/x` gives NAME the file's content (a final newline dropped)."""
    values: dict[str, str] = {}
    for name, (_, spec) in SPECS.items():
        path = env.get(name + FILE_SUFFIX, "")
        if not spec.from_file or not path:
            continue
        if env.get(name, ""):
            problems.append(f"{name}{FILE_SUFFIX}: set {name} or {name}{FILE_SUFFIX}, not both")
            continue
        try:
            with open(path, encoding="utf-8") as handle:
                values[name] = handle.read().rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as ex:
            reason = ex.strerror if isinstance(ex, OSError) and ex.strerror else str(ex)
            problems.append(f"{name}{FILE_SUFFIX}: cannot read {path}: {reason}")
    return values


def _check_together(values: Mapping[str, Any], problems: list[str]) -> None:
    if (values["pushwoosh_api_key"] is None) != (values["pushwoosh_application_code"] is None):
        missing = (
            "PUSHWOOSH_APPLICATION_CODE" if values["pushwoosh_api_key"] else "PUSHWOOSH_API_KEY"
        )
        problems.append(
            f"{missing}: PUSHWOOSH_API_KEY and PUSHWOOSH_APPLICATION_CODE go together; set both "
            "or neither"
        )
    if set(values["ingest_admin_keys"]) & set(values["ingest_write_keys"]):
        problems.append(
            "INGEST_ADMIN_KEYS: an admin key may not also be a write key: write keys ship "
            "inside apps"
        )
    if values["metrics_port"] == values["port"]:
        problems.append(
            "METRICS_PORT: must differ from PORT: metrics stay off ingest's public port"
        )
    if values["drain_lease_s"] <= values["pushwoosh_timeout_s"]:
        problems.append(
            "DRAIN_LEASE_S: must be longer than PUSHWOOSH_TIMEOUT_S, or a slow request loses "
            "its lease"
        )
    _check_cluster(values, problems)


def _check_cluster(values: Mapping[str, Any], problems: list[str]) -> None:
    """What a Redis Cluster event store cannot do: carry Celery, or WAIT for replicas."""
    if not is_cluster_url(values["redis_url"] or ""):
        return
    if not values["celery_broker_url"]:
        problems.append(
            "CELERY_BROKER_URL: required when REDIS_URL is a Redis Cluster: Celery (kombu) "
            "cannot use a cluster as its broker; set RabbitMQ (amqp://user:password@host:5672//) "
            "or a Redis outside the cluster (redis://host:6379/0)"
        )
    if values["redis_min_replicas_ack"]:
        problems.append(
            "REDIS_MIN_REPLICAS_ACK: not supported with a Redis Cluster (WAIT counts the "
            "replicas of one connection's writes, and a request is written on several nodes); "
            "set it to 0"
        )


def load_settings(env: Mapping[str, str]) -> Settings:
    """Validate the environment into Settings, or raise ConfigError listing every problem."""
    problems: list[str] = []
    # An empty variable means "not set", as in most twelve-factor tooling.
    given = {k: v for k, v in env.items() if k in SPECS and v != ""}
    given.update(_read_secret_files(env, problems))
    try:
        loaded: dict[str, Any] = _SCHEMA.load(given)
    except ValidationError as ex:
        messages = ex.messages if isinstance(ex.messages, dict) else {"_": ex.messages}
        problems += [_describe(name, given.get(name), msgs) for name, msgs in messages.items()]
        loaded = {}
    values = {attr: loaded.get(env_name, _default(attr)) for env_name, (attr, _) in SPECS.items()}
    if not problems:
        _check_together(values, problems)
    if problems:
        raise ConfigError(sorted(problems))
    return Settings(**values)


def _default(attr: str) -> Any:
    return next(f.default for f in dataclasses.fields(Settings) if f.name == attr)


# -- the README's table ----------------------------------------------------------------------------

README_TABLE_START: Final = "<!-- settings-table:start (python -m config.settings) -->"
README_TABLE_END: Final = "<!-- settings-table:end -->"


def _shown(default: Any) -> str:
    if default is None or default == ():
        return "—"
    if isinstance(default, bool):
        return f"`{str(default).lower()}`"
    if isinstance(default, int) and default >= 10_000:
        return f"`{default:_}`".replace("_", ",")
    return f"`{default}`"


def settings_table() -> str:
    """The Markdown table of every setting, in declaration order."""
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    for field in dataclasses.fields(Settings):
        spec = spec_of(field)
        shown = spec.shown_default if spec.shown_default is not None else _shown(field.default)
        doc = spec.doc + (f" Also `{spec.env}_FILE`." if spec.from_file else "")
        lines.append(f"| `{spec.env}` | {shown} | {doc} |")
    return "\n".join(lines)


def readme_with_table(readme: str) -> str:
    """The README text with its settings table replaced by the current one."""
    start = readme.index(README_TABLE_START) + len(README_TABLE_START)
    end = readme.index(README_TABLE_END)
    return readme[:start] + "\n" + settings_table() + "\n" + readme[end:]


def main(argv: list[str], write: Callable[[str], object] = sys.stdout.write) -> int:
    """`python -m config.settings [--write-readme README.md]`: print or refresh the table."""
    if len(argv) == 2 and argv[0] == "--write-readme":
        with open(argv[1], encoding="utf-8") as handle:
            text = handle.read()
        with open(argv[1], "w", encoding="utf-8") as handle:
            handle.write(readme_with_table(text))
        return 0
    write(settings_table() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
