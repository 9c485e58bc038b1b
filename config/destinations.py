"""Destinations: several Pushwoosh applications served by one fleet.

Segment models each Pushwoosh app as its own destination instance; so does the fleet. A
destinations file (`DESTINATIONS_FILE`, YAML or JSON) lists them:

    destinations:
      - name: ios
        api_key_env: PUSHWOOSH_IOS_API_KEY     # or api_key: "..." (prefer the env variable)
        application_code: ABCDE-12345
        write_keys_env: IOS_WRITE_KEYS         # or write_keys: [...]; comma list in the env
        admin_keys_env: IOS_ADMIN_KEYS         # optional: keys that may also delete users
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
from config.mapping_file import (
    did_you_mean,
    load_mappings,
    load_mappings_from_data,
    mappings_from_settings,
    read_mappings_file,
)
from config.mappings import Mapping
from config.settings import Secret, Settings

# The one destination made from the PUSHWOOSH_* and INGEST_* variables when there is no file.
DEFAULT_DESTINATION: Final = "default"

_KEYS: Final = (
    "name", "api_key", "api_key_env", "application_code", "base_url", "write_keys",
    "write_keys_env", "admin_keys", "admin_keys_env", "shared_secret_env", "mappings",
    "mappings_file", "enable_batching", "shards", "max_requests_per_s", "max_events_per_s",
    "timeout_s", "integration_names",
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
    admin_keys: tuple[Secret, ...] = ()

    def secrets(self) -> list[str]:
        """Every secret this destination holds, for log masking."""
        values = [*self.write_keys, *self.admin_keys, self.shared_secret]
        values.append(self.settings.pushwoosh_api_key)
        return [value.reveal() for value in values if value]


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
    admin_keys = fields.List(fields.String(), load_default=None)
    admin_keys_env = fields.String(load_default=None)
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


_OVERRIDES: Final = (
    ("base_url", "pushwoosh_base_url"),
    ("enable_batching", "pushwoosh_enable_batching"),
    ("shards", "shards"),
    ("max_requests_per_s", "rate_limit_requests_per_s"),
    ("max_events_per_s", "rate_limit_events_per_s"),
    ("timeout_s", "pushwoosh_timeout_s"),
)


def _label(raw: Any, index: int) -> str:
    label = f"destinations[{index}]"
    if isinstance(raw, dict) and isinstance(raw.get("name"), str):
        label += f' "{raw["name"]}"'
    return label


def _validated(raw: Any, label: str, problems: list[str]) -> dict[str, Any] | None:
    """The entry's keys checked by the schema, or None (with the problems noted)."""
    if not isinstance(raw, dict):
        problems.append(f"{label}: must be a mapping of settings")
        return None
    for key in (k for k in raw if k not in _KEYS):
        problems.append(f"{label}: unknown key {key!r}{did_you_mean(str(key), _KEYS)}")
    try:
        data: dict[str, Any] = _DestinationSchema().load(
            {k: v for k, v in raw.items() if k in _KEYS}
        )
    except ValidationError as ex:
        for key, messages in sorted(_messages(ex).items()):
            problems.append(f"{label}: {key}: {'; '.join(map(str, messages))}")
        return None
    return data


def _keys(
    data: dict[str, Any], field: str, env: MappingABC[str, str], label: str, problems: list[str]
) -> list[str]:
    """A list of keys given inline (`field`) and/or as a comma list in `<field>_env`."""
    keys = list(data[field] or [])
    variable = data[field + "_env"]
    if variable:
        listed = env.get(variable, "")
        if not listed:
            problems.append(f"{label}: {field}_env: {variable} is not set")
        keys += [k.strip() for k in listed.split(",") if k.strip()]
    return keys


def _settings(
    base: Settings, data: dict[str, Any], api_key: Secret | None, enable_batching: bool | None
) -> Settings:
    overrides: dict[str, Any] = {
        "pushwoosh_api_key": api_key,
        "pushwoosh_application_code": data["application_code"],
    }
    for key, field in _OVERRIDES:
        if data[key] is not None:
            overrides[field] = data[key].rstrip("/") if key == "base_url" else data[key]
    if data["integration_names"] is not None:
        overrides["pushwoosh_integration_names"] = tuple(data["integration_names"])
    if enable_batching is not None:
        overrides["pushwoosh_enable_batching"] = enable_batching
    return dataclasses.replace(base, **overrides)


def _mappings(data: dict[str, Any], settings: Settings, folder: Path, label: str) -> list[Mapping]:
    names = settings.pushwoosh_integration_names
    if data["mappings"] is not None:
        return load_mappings_from_data(
            {"mappings": data["mappings"]},
            settings.pushwoosh_enable_batching,
            f"{label}: mappings",
            names,
        )
    path = data["mappings_file"]
    if path and not os.path.isabs(path):
        path = str(folder / path)
    return load_mappings(path, settings.pushwoosh_enable_batching, names)


def _one(
    raw: Any,
    index: int,
    base: Settings,
    env: MappingABC[str, str],
    folder: Path,
    problems: list[str],
    enable_batching: bool | None,
) -> Destination | None:
    label = _label(raw, index)
    data = _validated(raw, label, problems)
    if data is None:
        return None
    before = len(problems)
    api_key = _env_secret(env, data["api_key_env"], f"{label}: api_key_env", problems)
    if data["api_key"]:
        api_key = Secret(data["api_key"])
    if (api_key is None) != (data["application_code"] is None):
        problems.append(f"{label}: api_key (or api_key_env) and application_code go together")
    keys = _keys(data, "write_keys", env, label, problems)
    admin = _keys(data, "admin_keys", env, label, problems)
    secret = _env_secret(env, data["shared_secret_env"], f"{label}: shared_secret_env", problems)
    if not keys and secret is None and not base.ingest_allow_unauthenticated:
        problems.append(f"{label}: no write_keys and no shared_secret_env: nothing can send to it")
    settings = _settings(base, data, api_key, enable_batching)
    try:
        mappings = _mappings(data, settings, folder, label)
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
        admin_keys=tuple(Secret(k) for k in admin),
    )


def default_destination(settings: Settings) -> Destination:
    return Destination(
        name=DEFAULT_DESTINATION,
        settings=settings,
        mappings=tuple(mappings_from_settings(settings)),
        write_keys=settings.ingest_write_keys,
        shared_secret=settings.ingest_shared_secret,
        admin_keys=settings.ingest_admin_keys,
    )


def load_destinations(
    settings: Settings, env: MappingABC[str, str], *, enable_batching: bool | None = None
) -> dict[str, Destination]:
    """Every destination by name; ConfigError lists every problem in the file at once.

    `env` holds the variables the file names (`api_key_env`, ...). `enable_batching` overrides
    every destination's batching default (`preview --batching`); None keeps them.
    """
    path = settings.destinations_file
    if path is None:
        if enable_batching is not None:
            settings = dataclasses.replace(settings, pushwoosh_enable_batching=enable_batching)
        only = default_destination(settings)
        return {only.name: only}
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
        destination = _one(raw, index, settings, env, Path(path).parent, problems, enable_batching)
        if destination is None:
            continue
        if destination.name in destinations:
            problems.append(f"destinations[{index}]: the name {destination.name!r} is used twice")
        problems += _key_problems(destination, f'destinations[{index}] "{destination.name}"',
                                  seen_keys)  # fmt: skip
        destinations[destination.name] = destination
    if problems:
        raise ConfigError([f"{path}: {p}" for p in problems])
    return destinations


def _key_problems(destination: Destination, label: str, seen_keys: dict[str, str]) -> list[str]:
    """Each key routes to one destination, and no admin key is also a write key."""
    problems = []
    for key in (*destination.write_keys, *destination.admin_keys):
        owner = seen_keys.setdefault(key.reveal(), destination.name)
        if owner != destination.name:
            problems.append(
                f'{label}: a key is also "{owner}"\'s; each key must route to one destination'
            )
    write_keys = {key.reveal() for key in destination.write_keys}
    if any(key.reveal() in write_keys for key in destination.admin_keys):
        problems.append(f"{label}: an admin key may not also be a write key: write keys ship "
                        "inside apps")  # fmt: skip
    return problems


def all_secrets(settings: Settings, destinations: MappingABC[str, Destination]) -> list[str]:
    """Every secret of the settings and of every destination, for log masking."""
    found = list(settings.secrets())
    for destination in destinations.values():
        found += destination.secrets()
    return list(dict.fromkeys(found))
