"""The mappings file: which events become which Pushwoosh calls, in Segment's mapping JSON.

`PUSHWOOSH_MAPPINGS_FILE` names a YAML (`.yaml`/`.yml`) or JSON (`.json`) file holding
`mappings: [{name, action, trigger, enabled, fields}, ...]`. Each mapping's `fields` are merged
over its action's defaults (a field set to null is not mapped at all), its trigger is compiled
once, and every problem in the file is reported at once, each naming the mapping and the field.
Without a file the two presets apply; they go through the very same code path.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable
from collections.abc import Mapping as MappingABC
from typing import Any, Final, Protocol

import yaml
from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from config.directives import DirectiveError, compile_value
from config.errors import ConfigError
from config.fql import TriggerSyntaxError, compile_trigger
from config.mappings import (
    ACTION_DEFAULTS,
    ACTION_FIELDS,
    ACTIONS,
    PROFILE_PRESET_TRIGGER,
    TRACK_EVENT,
    TRACK_PRESET_TRIGGER,
    UPDATE_USER_PROFILE,
    FieldGetter,
    Mapping,
)

MAX_MAPPINGS: Final = 50  # as many as a Segment destination instance allows
BATCHING_FIELD: Final = "enable_batching"
PRESETS: Final = (
    {"name": "Create or Update User Profiles", "action": UPDATE_USER_PROFILE,
     "trigger": PROFILE_PRESET_TRIGGER, "enabled": True, "fields": {}},
    {"name": "Track Event", "action": TRACK_EVENT,
     "trigger": TRACK_PRESET_TRIGGER, "enabled": True, "fields": {}},
)  # fmt: skip
# Keys of a mapping as Segment's API spells them, so a pasted mapping gets a useful hint.
_SEGMENT_SPELLINGS: Final = {
    "subscribe": "trigger", "mapping": "fields", "actionId": "action", "actionSlug": "action",
}  # fmt: skip
_TOP_LEVEL_KEYS: Final = ("mappings",)


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`; did you mean "x"?` for the closest choice, or "" when nothing is close."""
    options = list(choices)
    same_case = [c for c in options if c.lower() == word.lower()]
    close = same_case or difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return f'; did you mean "{close[0]}"?' if close else ""


class _StrictBool(fields.Field):  # type: ignore[type-arg]
    """true or false only: in a mappings file "yes", 1 or "false" are mistakes, not booleans."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise ValidationError(f"must be true or false, got {value!r}")
        return value


_TRIGGER_IS_TEXT: Final = "must be a string, like 'type = \"track\"'"


class _TriggerField(fields.Field):  # type: ignore[type-arg]
    """A trigger's FQL text, checked by compiling it (the compiled form is made once, later)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if not isinstance(value, str):
            raise ValidationError(_TRIGGER_IS_TEXT)
        try:
            compile_trigger(value)
        except TriggerSyntaxError as ex:
            raise ValidationError(str(ex)) from ex
        return value


def _check_action(action: str) -> None:
    if action not in ACTIONS:
        known = " or ".join(ACTIONS)
        raise ValidationError(f"unknown action {action!r}{did_you_mean(action, ACTIONS)} ({known})")


_REQUIRED: dict[str, str | list[Any] | dict[Any, Any]] = {
    "required": "is required",
    "invalid": "must be a string",
    "null": "must be a string",
}


class _MappingSchema(Schema):
    class Meta:
        unknown = EXCLUDE  # unknown keys are reported separately, with a hint

    name = fields.String(
        required=True,
        error_messages=_REQUIRED,
        validate=validate.Length(min=1, max=200, error="must be 1 to 200 characters"),
    )
    action = fields.String(required=True, error_messages=_REQUIRED, validate=_check_action)
    trigger = _TriggerField(
        required=True,
        error_messages={"required": "is required", "null": _TRIGGER_IS_TEXT},
    )
    enabled = _StrictBool(
        load_default=True, error_messages={"null": "must be true or false, got None"}
    )
    field_values = fields.Dict(
        data_key="fields",
        keys=fields.String(),
        load_default=dict,
        error_messages={
            "invalid": "must be an object of field: value",
            "null": "must be an object of field: value",
        },
    )


_MAPPING_KEYS: Final = ("name", "action", "trigger", "enabled", "fields")


def _label(index: int, item: object) -> str:
    name = item.get("name") if isinstance(item, MappingABC) else None
    if isinstance(name, str) and name.strip():
        return f'mappings[{index}] "{name}"'
    return f"mappings[{index}]"


def _flatten(messages: Any, where: str = "") -> list[str]:
    """marshmallow's nested error dict as `key.sub: message` lines."""
    if isinstance(messages, MappingABC):
        lines: list[str] = []
        for key, inner in messages.items():
            lines += _flatten(inner, f"{where}.{key}" if where else str(key))
        return lines
    if isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        return [f"{where}: {'; '.join(messages)}" if where else "; ".join(messages)]
    if isinstance(messages, list):
        return [line for inner in messages for line in _flatten(inner, where)]
    return [f"{where}: {messages}" if where else str(messages)]


def _unknown_keys(item: MappingABC[Any, Any], known: tuple[str, ...], where: str) -> list[str]:
    problems = []
    for key in item:
        if key in known:
            continue
        text = str(key)
        hint = (
            f'; did you mean "{_SEGMENT_SPELLINGS[text]}"? (Segment\'s name for it)'
            if text in _SEGMENT_SPELLINGS
            else did_you_mean(text, known)
        )
        problems.append(f"{where}{text}: unknown key{hint}")
    return problems


class _Compiler:
    """Validates and compiles every mapping, collecting problems instead of stopping at one."""

    def __init__(self, enable_batching_default: bool) -> None:
        self.enable_batching_default = enable_batching_default
        self.problems: list[str] = []

    def compile_all(self, data: object) -> list[Mapping]:
        if not isinstance(data, MappingABC):
            self.problems.append("the top level must be an object with a `mappings` list")
            return []
        self.problems += _unknown_keys(data, _TOP_LEVEL_KEYS, "")
        items = data.get("mappings")
        if not isinstance(items, list):
            got = "missing" if items is None else f"a {type(items).__name__}"
            self.problems.append(f"mappings: must be a list of mappings, got {got}")
            return []
        if len(items) > MAX_MAPPINGS:
            self.problems.append(f"mappings: at most {MAX_MAPPINGS} mappings, got {len(items)}")
        repeats = self._first_uses(items)
        compiled = [
            self.compile_one(index, item, repeats.get(index)) for index, item in enumerate(items)
        ]
        return [mapping for mapping in compiled if mapping is not None]

    @staticmethod
    def _first_uses(items: list[Any]) -> dict[int, int]:
        """index -> index of the earlier mapping with the same name."""
        first_index: dict[str, int] = {}
        repeats: dict[int, int] = {}
        for index, item in enumerate(items):
            name = item.get("name") if isinstance(item, MappingABC) else None
            if not isinstance(name, str) or not name:
                continue
            if name in first_index:
                repeats[index] = first_index[name]
            else:
                first_index[name] = index
        return repeats

    def compile_one(self, index: int, item: object, same_name_as: int | None) -> Mapping | None:
        label = _label(index, item)
        if not isinstance(item, MappingABC):
            self.problems.append(f"{label}: must be an object with name, action, trigger, fields")
            return None
        problems = _unknown_keys(item, _MAPPING_KEYS, "")
        try:
            loaded: dict[str, Any] = _MappingSchema().load(dict(item))
        except ValidationError as ex:
            problems += _flatten(ex.messages)
            loaded = {}
        if same_name_as is not None:
            problems.append(f"name: already used by mappings[{same_name_as}]")
        # Fields are checked even when the rest is wrong, so one run reports everything.
        action, given = item.get("action"), item.get("fields", {})
        field_sources: dict[str, Any] = {}
        getters: dict[str, FieldGetter] = {}
        batching = False
        if action in ACTIONS and isinstance(given, MappingABC):
            field_sources, getters, batching = self._compile_fields(action, given, problems)
        self.problems += [f"{label}: {problem}" for problem in problems]
        if problems:
            return None
        return Mapping(
            name=loaded["name"],
            action=loaded["action"],
            trigger_source=loaded["trigger"],
            trigger=compile_trigger(loaded["trigger"]),
            fields=getters,
            field_sources=field_sources,
            enabled=loaded["enabled"],
            enable_batching=batching,
        )

    def _compile_fields(
        self, action: str, given: MappingABC[Any, Any], problems: list[str]
    ) -> tuple[dict[str, Any], dict[str, FieldGetter], bool]:
        allowed = ACTION_FIELDS[action]
        for key in given:
            if key not in allowed:
                other = [a for a in ACTIONS if a != action and key in ACTION_FIELDS[a]]
                hint = did_you_mean(str(key), allowed) or (
                    f" (it belongs to {other[0]})" if other else ""
                )
                problems.append(f"fields.{key}: unknown field for {action}{hint}")
        merged: dict[str, Any] = dict(ACTION_DEFAULTS[action])
        if BATCHING_FIELD in allowed:
            merged[BATCHING_FIELD] = self.enable_batching_default
        merged.update((key, value) for key, value in given.items() if key in allowed)
        batching = False
        if BATCHING_FIELD in merged:
            value = merged[BATCHING_FIELD]
            if isinstance(value, bool):
                batching = value
            else:
                problems.append(
                    f"fields.{BATCHING_FIELD}: must be true or false, got {value!r} (leave it out"
                    " to follow PUSHWOOSH_ENABLE_BATCHING)"
                )
        sources = {key: value for key, value in merged.items() if value is not None}
        getters: dict[str, FieldGetter] = {}
        for key, raw in sources.items():
            if key == BATCHING_FIELD:  # decides batching; not a value sent to Pushwoosh
                continue
            try:
                getters[key] = compile_value(raw, f"fields.{key}")
            except DirectiveError as ex:
                problems.append(str(ex))
        return sources, getters, batching


def load_mappings_from_data(
    data: object, enable_batching_default: bool, source: str
) -> list[Mapping]:
    """Validate and compile parsed file content; ConfigError lists every problem, per mapping."""
    compiler = _Compiler(enable_batching_default)
    mappings = compiler.compile_all(data)
    if compiler.problems:
        raise ConfigError([f"{source}: {problem}" for problem in compiler.problems])
    return mappings


def preset_mappings(enable_batching: bool) -> list[Mapping]:
    """The two default mappings of Segment's Pushwoosh destination, compiled like a file."""
    data = {"mappings": [dict(preset) for preset in PRESETS]}
    return load_mappings_from_data(data, enable_batching, "preset mappings")


class _YamlLoader(yaml.SafeLoader):
    """safe_load, except that dates stay strings: a timestamp literal is sent as written."""


_YamlLoader.yaml_implicit_resolvers = {
    first: [(tag, regex) for tag, regex in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def read_mappings_file(path: str) -> object:
    """The parsed content of a YAML or JSON mappings file; ConfigError naming the file if bad."""
    lowered = path.lower()
    if not lowered.endswith((".yaml", ".yml", ".json")):
        raise ConfigError([f"{path}: a mappings file must end in .yaml, .yml or .json"])
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as ex:
        reason = ex.strerror if isinstance(ex, OSError) and ex.strerror else str(ex)
        raise ConfigError([f"{path}: cannot read the mappings file: {reason}"]) from ex
    if lowered.endswith(".json"):
        try:
            return json.loads(text)
        except json.JSONDecodeError as ex:
            raise ConfigError([f"{path}: line {ex.lineno} column {ex.colno}: {ex.msg}"]) from ex
    try:
        return yaml.load(text, Loader=_YamlLoader)  # a SafeLoader subclass
    except yaml.YAMLError as ex:
        mark = getattr(ex, "problem_mark", None)
        where = f"line {mark.line + 1} column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(ex, "problem", None) or str(ex)
        raise ConfigError([f"{path}: {where}not valid YAML: {problem}"]) from ex


def load_mappings(path: str | None, enable_batching_default: bool) -> list[Mapping]:
    """The mappings in `path`, or the presets when there is no file; ConfigError if invalid."""
    if path is None:
        return preset_mappings(enable_batching_default)
    return load_mappings_from_data(read_mappings_file(path), enable_batching_default, path)


class MappingSettings(Protocol):
    """The two settings the mappings depend on (config.settings.Settings has both)."""

    @property
    def pushwoosh_mappings_file(self) -> str | None: ...

    @property
    def pushwoosh_enable_batching(self) -> bool: ...


def mappings_from_settings(settings: MappingSettings) -> list[Mapping]:
    """The mappings the settings call for (PUSHWOOSH_MAPPINGS_FILE, PUSHWOOSH_ENABLE_BATCHING)."""
    return load_mappings(settings.pushwoosh_mappings_file, settings.pushwoosh_enable_batching)
