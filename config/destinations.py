"""Destinations: several Pushwoosh applications served by one fleet.

Segment models each Pushwoosh app as its own destination instance; so does the fleet. A
destinations file (`DESTINATIONS_FILE`, YAML or JSON) lists them:

    destinations:
      - name: ios
        api_key_env: PUSHWOOSH_IOS_API_KEY     # or api_key: "..." (prefer the env variable)
        application_code: ABCDE-12345
        write_keys_env: IOS_WRITE_KEYS         # or write_keys: [...]; comma list in the env
        shared_secret_env: IOS_WEBHOOK_SECRET  # optional, for X-Signature
        mappings_file: ios-mappings.yaml       # or mappings: [...] inline; default: the presets
        enable_batching: true
        integration_names: [Pushwoosh iOS]     # names its `integrations` entry may use
        base_url: https://...                  # optional
        shards: 1
        max_requests_per_s: 20                 # optional shared rate limit
        max_events_per_s: 2000

Each destination is the global Settings with its own values put over them, so every part of
the fleet that takes Settings works per destination unchanged. Without a file there is one
destination, `default`, built from the PUSHWOOSH_* and INGEST_* variables as before.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping as MappingABC
from pathlib import Path
from typing import Any, Final

from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields, validate

from config.errors import ConfigError
from config.mapping_file import did_you_mean, load_mappings, load_mappings_from_data
from config.mappings import Mapping
from config.redis_keys import DEFAULT_DESTINATION
from config.settings import Secret, Settings

_KEYS: Final = (
    "name", "api_key", "api_key_env", "application_code", "base_url", "write_keys",
    "write_keys_env", "shared_secret_env", "mappings", "mappings_file", "enable_batching",
    "shards", "max_requests_per_s", "max_events_per_s", "timeout_s", "integration_names",
)  # fmt: skip
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
_APP_CODE = re.compile(r"^[A-Za-z0-9]{5}-[A-Za-z0-9]{5}$")


@dataclasses.dataclass(frozen=True)
class Destination:
    """One Pushwoosh application: its settings, mappings and the keys that send to it."""

    name: str
    settings: Settings
    mappings: tuple[Mapping, ...]
    write_keys: tuple[Secret, ...]
    shared_secret: Secret | None


class _DestinationSchema(Schema):
    class Meta:
        unknown = RAISE

    name = fields.String(
        required=True,
        validate=validate.Regexp(_NAME, error="lower-case letters, digits, - and _, at most 40"),
    )
    api_key = fields.String(load_default=None)
    api_key_env = fields.String(load_default=None)
    application_code = fields.String(
        load_default=None, validate=validate.Regexp(_APP_CODE, error="must look like ABCDE-12345")
    )
    base_url = fields.Url(load_default=None, require_tld=False, schemes={"http", "https"})
    write_keys = fields.List(fields.String(), load_default=None)
    write_keys_env = fields.String(load_default=None)
    shared_secret_env = fields.String(load_default=None)
    mappings = fields.Raw(load_default=None)
    mappings_file = fields.String(load_default=None)
    enable_batching = fields.Boolean(load_default=None)
    shards = fields.Integer(load_default=None, validate=validate.Range(1, 256))
    max_requests_per_s = fields.Float(load_default=None, validate=validate.Range(min=0))
    max_events_per_s = fields.Float(load_default=None, validate=validate.Range(min=0))
    timeout_s = fields.Float(load_default=None, validate=validate.Range(min=0.1, max=120))
    integration_names = fields.List(
        fields.String(validate=validate.Length(min=1)), load_default=None
    )


class _FileSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    destinations = fields.List(fields.Raw(), required=True, validate=validate.Length(min=1, max=50))


def _messages(ex: ValidationError) -> dict[str, Any]:
    return ex.messages if isinstance(ex.messages, dict) else {"_": ex.messages}


def _env_secret(
    env: MappingABC[str, str], name: str | None, where: str, problems: list[str]
) -> Secret | None:
    if name is None:
        return None
    value = env.get(name, "")
    if not value:
        problems.append(f"{where}: the environment variable {name} is not set")
        return None
    return Secret(value)


def _one(
    raw: Any,
    index: int,
    base: Settings,
    env: MappingABC[str, str],
    folder: Path,
    problems: list[str],
) -> Destination | None:
    label = f"destinations[{index}]"
    if isinstance(raw, dict) and isinstance(raw.get("name"), str):
        label += f' "{raw["name"]}"'
    if not isinstance(raw, dict):
        problems.append(f"{label}: must be a mapping of settings")
        return None
    unknown = [k for k in raw if k not in _KEYS]
    for key in unknown:
        problems.append(f"{label}: unknown key {key!r}{did_you_mean(str(key), _KEYS)}")
    try:
        data = _DestinationSchema().load({k: v for k, v in raw.items() if k in _KEYS})
    except ValidationError as ex:
        for key, messages in sorted(_messages(ex).items()):
            problems.append(f"{label}: {key}: {'; '.join(map(str, messages))}")
        return None
    before = len(problems)
    api_key = _env_secret(env, data["api_key_env"], f"{label}: api_key_env", problems)
    if data["api_key"]:
        api_key = Secret(data["api_key"])
    if (api_key is None) != (data["application_code"] is None):
        problems.append(f"{label}: api_key (or api_key_env) and application_code go together")
    keys = list(data["write_keys"] or [])
    if data["write_keys_env"]:
        listed = env.get(data["write_keys_env"], "")
        if not listed:
            problems.append(f"{label}: write_keys_env: {data['write_keys_env']} is not set")
        keys += [k.strip() for k in listed.split(",") if k.strip()]
    secret = _env_secret(env, data["shared_secret_env"], f"{label}: shared_secret_env", problems)
    if not keys and secret is None and not base.ingest_allow_unauthenticated:
        problems.append(f"{label}: no write_keys and no shared_secret_env: nothing can send to it")
    overrides: dict[str, Any] = {
        "pushwoosh_api_key": api_key,
        "pushwoosh_application_code": data["application_code"],
    }
    for key, field in (
        ("base_url", "pushwoosh_base_url"),
        ("enable_batching", "pushwoosh_enable_batching"),
        ("shards", "shards"),
        ("max_requests_per_s", "rate_limit_requests_per_s"),
        ("max_events_per_s", "rate_limit_events_per_s"),
        ("timeout_s", "pushwoosh_timeout_s"),
    ):
        if data[key] is not None:
            overrides[field] = data[key].rstrip("/") if key == "base_url" else data[key]
    if data["integration_names"] is not None:
        overrides["pushwoosh_integration_names"] = tuple(data["integration_names"])
    settings = dataclasses.replace(base, **overrides)
    try:
        if data["mappings"] is not None:
            mappings = load_mappings_from_data(
                {"mappings": data["mappings"]},
                settings.pushwoosh_enable_batching,
                f"{label}: mappings",
                settings.pushwoosh_integration_names,
            )
        else:
            path = data["mappings_file"]
            if path and not os.path.isabs(path):
                path = str(folder / path)
            mappings = load_mappings(
                path, settings.pushwoosh_enable_batching, settings.pushwoosh_integration_names
            )
    except ConfigError as ex:
        problems.extend(f"{label}: {p}" for p in ex.problems)
        return None
    if len(problems) > before:
        return None
    return Destination(
        name=data["name"],
        settings=settings,
        mappings=tuple(mappings),
        write_keys=tuple(Secret(k) for k in keys),
        shared_secret=secret,
    )


def default_destination(settings: Settings) -> Destination:
    from config.mapping_file import mappings_from_settings

    return Destination(
        name=DEFAULT_DESTINATION,
        settings=settings,
        mappings=tuple(mappings_from_settings(settings)),
        write_keys=settings.ingest_write_keys,
        shared_secret=settings.ingest_shared_secret,
    )


def load_destinations(settings: Settings, env: MappingABC[str, str]) -> dict[str, Destination]:
    """Every destination by name; ConfigError lists every problem in the file at once."""
    path = env.get("DESTINATIONS_FILE") or None
    if path is None:
        only = default_destination(settings)
        return {only.name: only}
    from config.mapping_file import read_mappings_file

    data = read_mappings_file(path)  # YAML or JSON by extension, errors name the file
    try:
        loaded = _FileSchema().load(data if isinstance(data, dict) else {})
    except ValidationError as ex:
        raise ConfigError(
            [f"{path}: {k}: {'; '.join(map(str, v))}" for k, v in _messages(ex).items()]
        ) from ex
    problems: list[str] = []
    destinations: dict[str, Destination] = {}
    seen_keys: dict[str, str] = {}
    for index, raw in enumerate(loaded["destinations"]):
        destination = _one(raw, index, settings, env, Path(path).parent, problems)
        if destination is None:
            continue
        if destination.name in destinations:
            problems.append(f"destinations[{index}]: the name {destination.name!r} is used twice")
        for key in destination.write_keys:
            owner = seen_keys.setdefault(key.reveal(), destination.name)
            if owner != destination.name:
                problems.append(
                    f'destinations[{index}] "{destination.name}": a write key is also '
                    f'"{owner}"\'s; each key must route to one destination'
                )
        destinations[destination.name] = destination
    if problems:
        raise ConfigError([f"{path}: {p}" for p in problems])
    return destinations
