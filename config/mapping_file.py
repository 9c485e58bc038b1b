"""The mappings file: which events become which Pushwoosh calls, in Segment's own JSON.

`PUSHWOOSH_MAPPINGS_FILE` names a YAML (`.yaml`/`.yml`) or JSON (`.json`) file holding
`mappings: [...]` (or just the list). Each mapping is written in one of two forms:

- **pasted from Segment**, as its UI export or Public API gives it: `name`, `actionSlug` or
  `actionId`, `subscribe` or `trigger`, `mapping` or `settings`, `enabled` (ids such as `id`,
  `destinationId`, `modelId` are ignored). The mapping is taken as it is: a field it does not
  list is not mapped, as in Segment.
- **the fleet's own**: `name`, `action`, `trigger`, `enabled`, `fields`. `fields` are taken as
  they are too; with `defaults: true` they start from the action's default fields (Segment's
  preset mapping) and override them, a field set to null then dropping that default.

Its trigger is compiled once, and every problem in the file is reported at once, each naming the
mapping and the field. Without a file the two presets apply; they go through the same code.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Sequence
from collections.abc import Mapping as MappingABC
from typing import Any, Final, Protocol

import yaml

from config.directives import (
    DirectiveError,
    compile_field_node,
    validate_mapping,
)
from config.errors import ConfigError
from config.fql import TriggerSyntaxError, compile_trigger
from config.mappings import (
    ACTION_DEFAULTS,
    ACTION_FIELDS,
    ACTION_SCHEMAS,
    ACTION_TITLES,
    ACTIONS,
    PROFILE_PRESET_NAME,
    PROFILE_PRESET_TRIGGER,
    TRACK_EVENT,
    TRACK_PRESET_NAME,
    TRACK_PRESET_TRIGGER,
    UPDATE_USER_PROFILE,
    FieldGetter,
    Mapping,
)
from config.settings import DEFAULT_INTEGRATION_NAMES

MAX_MAPPINGS: Final = 50  # as many as a Segment destination instance allows
BATCHING_FIELD: Final = "enable_batching"
# Segment's presets, in its order, with its names: the whole default mapping, as Segment
# copies it into a new subscription (enable_batching follows PUSHWOOSH_ENABLE_BATCHING).
PRESETS: Final = (
    {"name": TRACK_PRESET_NAME, "actionSlug": TRACK_EVENT, "subscribe": TRACK_PRESET_TRIGGER,
     "enabled": True,
     "mapping": {k: v for k, v in ACTION_DEFAULTS[TRACK_EVENT].items() if k != BATCHING_FIELD}},
    {"name": PROFILE_PRESET_NAME, "actionSlug": UPDATE_USER_PROFILE,
     "subscribe": PROFILE_PRESET_TRIGGER, "enabled": True,
     "mapping": dict(ACTION_DEFAULTS[UPDATE_USER_PROFILE])},
)  # fmt: skip
_ACTION_KEYS: Final = ("action", "actionSlug", "actionId", "partnerAction")
_TRIGGER_KEYS: Final = ("trigger", "subscribe")
_FIELD_KEYS: Final = ("fields", "mapping", "settings")
_KNOWN_KEYS: Final = ("name", "enabled", "defaults", *_ACTION_KEYS, *_TRIGGER_KEYS, *_FIELD_KEYS)
# What Segment's exports carry besides the mapping itself; none of it changes what is sent.
_IGNORED_KEYS: Final = frozenset(
    {"id", "destinationId", "modelId", "createdAt", "updatedAt", "type", "eventSlug",
     "actionName", "idempotencyKey", "reverseETLSchedule", "hidden"}
)  # fmt: skip
_TOP_LEVEL_KEYS: Final = ("mappings",)


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`; did you mean "x"?` for the closest choice, or "" when nothing is close."""
    options = list(choices)
    same_case = [c for c in options if c.lower() == word.lower()]
    close = same_case or difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return f'; did you mean "{close[0]}"?' if close else ""


def _label(index: int, item: object) -> str:
    name = item.get("name") if isinstance(item, MappingABC) else None
    if isinstance(name, str) and name.strip():
        return f'mappings[{index}] "{name}"'
    return f"mappings[{index}]"


def _one_of(item: MappingABC[str, Any], keys: Sequence[str], problems: list[str]) -> str | None:
    """The one key of `keys` the mapping uses; a problem when it uses two that disagree."""
    present = [key for key in keys if key in item]
    if len(present) > 1 and any(item[key] != item[present[0]] for key in present[1:]):
        problems.append(f"{present[0]} and {present[1]}: give only one of them")
    return present[0] if present else None


class _Compiler:
    """Validates and compiles every mapping, collecting problems instead of stopping at one."""

    def __init__(self, enable_batching_default: bool, integration_names: tuple[str, ...]) -> None:
        self.enable_batching_default = enable_batching_default
        self.integration_names = integration_names
        self.problems: list[str] = []

    def compile_all(self, data: object) -> list[Mapping]:
        if isinstance(data, list):
            items: Any = data
        elif isinstance(data, MappingABC):
            for key in data:
                if key not in _TOP_LEVEL_KEYS:
                    self.problems.append(
                        f"{key}: unknown key{did_you_mean(str(key), _TOP_LEVEL_KEYS)}"
                    )
            items = data.get("mappings")
        else:
            self.problems.append("the top level must be a list of mappings or `mappings: [...]`")
            return []
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
        problems: list[str] = []
        for key in item:
            if key not in _KNOWN_KEYS and key not in _IGNORED_KEYS:
                problems.append(f"{key}: unknown key{did_you_mean(str(key), _KNOWN_KEYS)}")
        name = self._name(item, problems)
        if same_name_as is not None:
            problems.append(f"name: already used by mappings[{same_name_as}]")
        action = self._action(item, problems)
        trigger_source = self._trigger(item, problems)
        enabled = item.get("enabled", True)
        if not isinstance(enabled, bool):
            problems.append(f"enabled: must be true or false, got {enabled!r}")
        fields_key, given, use_defaults = self._fields(item, problems)
        compiled = None
        if action is not None:
            compiled = self._compile_fields(action, fields_key, given, use_defaults, problems)
        self.problems += [f"{label}: {problem}" for problem in problems]
        if problems or compiled is None or action is None or trigger_source is None:
            return None
        sources, getters, batching, undefined_in_arrays = compiled
        assert isinstance(name, str)
        assert isinstance(enabled, bool)
        return Mapping(
            name=name,
            action=action,
            trigger_source=trigger_source,
            trigger=compile_trigger(trigger_source),
            fields=getters,
            field_sources=sources,
            enabled=enabled,
            enable_batching=batching,
            undefined_in_arrays=undefined_in_arrays,
            integration_names=self.integration_names,
        )

    @staticmethod
    def _name(item: MappingABC[str, Any], problems: list[str]) -> str | None:
        name = item.get("name")
        if name is None:
            problems.append("name: is required")
        elif not isinstance(name, str):
            problems.append("name: must be a string")
        elif not 1 <= len(name) <= 200:
            problems.append("name: must be 1 to 200 characters")
        else:
            return name
        return None

    @staticmethod
    def _action(item: MappingABC[str, Any], problems: list[str]) -> str | None:
        given = [(key, item[key]) for key in _ACTION_KEYS if key in item]
        slugs = [(key, value) for key, value in given if value in ACTIONS]
        if not given:
            problems.append(f"action: is required ({' or '.join(ACTIONS)})")
            return None
        if slugs:
            chosen = slugs[0][1]
            for key, value in given:
                if key != "actionId" and value != chosen:
                    problems.append(f"{key}: {value!r} disagrees with {slugs[0][0]} {chosen!r}")
            return str(chosen)
        key, value = given[0]
        if not isinstance(value, str):
            problems.append(f"{key}: must be a string ({' or '.join(ACTIONS)})")
            return None
        titles = {title: slug for slug, title in ACTION_TITLES.items()}
        if value in titles:
            hint = f'; Segment\'s id for "{value}" is {titles[value]}'
        elif key == "actionId":
            hint = (
                "; that is Segment's internal id of the action: add actionSlug "
                f"({' or '.join(ACTIONS)})"
            )
        else:
            hint = did_you_mean(value, ACTIONS) or f" ({' or '.join(ACTIONS)})"
        problems.append(f"{key}: unknown action {value!r}{hint}")
        return None

    @staticmethod
    def _trigger(item: MappingABC[str, Any], problems: list[str]) -> str | None:
        key = _one_of(item, _TRIGGER_KEYS, problems)
        if key is None:
            problems.append("trigger: is required")
            return None
        source = item[key]
        if not isinstance(source, str):
            problems.append(f"{key}: must be a string, like 'type = \"track\"'")
            return None
        try:
            compile_trigger(source)
        except TriggerSyntaxError as ex:
            problems.append(f"{key}: {ex}")
            return None
        return source

    @staticmethod
    def _fields(
        item: MappingABC[str, Any], problems: list[str]
    ) -> tuple[str, MappingABC[str, Any], bool]:
        """(the key the fields are under, the fields given, whether they start from defaults)."""
        fields_key = _one_of(item, _FIELD_KEYS, problems)
        given: Any = item.get(fields_key, {}) if fields_key else {}
        use_defaults = item.get("defaults", False)
        if not isinstance(use_defaults, bool):
            problems.append(f"defaults: must be true or false, got {use_defaults!r}")
            use_defaults = False
        if use_defaults and fields_key in ("mapping", "settings"):
            problems.append(
                f"defaults: a mapping pasted from Segment ({fields_key}) is taken as it is; "
                "write `fields` to start from the defaults"
            )
            use_defaults = False
        if not isinstance(given, MappingABC):
            problems.append(f"{fields_key}: must be an object of field: value")
            given = {}
        return fields_key or "fields", given, use_defaults

    def _compile_fields(
        self,
        action: str,
        fields_key: str,
        given: MappingABC[str, Any],
        use_defaults: bool,
        problems: list[str],
    ) -> tuple[dict[str, Any], dict[str, FieldGetter], bool, frozenset[str]]:
        """(field sources, their getters, enable_batching, fields with undefined in arrays)."""
        _check_field_keys(action, fields_key, given, problems)
        sources = _field_sources(action, given, use_defaults)
        batching = self._batching(action, fields_key, sources, problems)
        _check_required(action, fields_key, sources, problems)
        getters, undefined_in_arrays = _compile_getters(fields_key, sources, problems)
        return sources, getters, batching, undefined_in_arrays

    def _batching(
        self, action: str, fields_key: str, sources: MappingABC[str, Any], problems: list[str]
    ) -> bool:
        """enable_batching as mapped, else PUSHWOOSH_ENABLE_BATCHING where the action has it."""
        value = sources.get(BATCHING_FIELD)
        if isinstance(value, bool):
            return value
        if BATCHING_FIELD in sources:
            problems.append(
                f"{fields_key}.{BATCHING_FIELD}: must be true or false, got {value!r} (leave "
                "it out to follow PUSHWOOSH_ENABLE_BATCHING)"
            )
        return self.enable_batching_default and BATCHING_FIELD in ACTION_FIELDS[action]


def _check_field_keys(
    action: str, fields_key: str, given: MappingABC[str, Any], problems: list[str]
) -> None:
    """A problem for each given field the action does not have, with the likely one meant."""
    allowed = ACTION_FIELDS[action]
    for key in given:
        if key not in allowed:
            other = [a for a in ACTIONS if a != action and key in ACTION_FIELDS[a]]
            hint = did_you_mean(str(key), allowed) or (
                f" (it belongs to {other[0]})" if other else ""
            )
            problems.append(f"{fields_key}.{key}: unknown field for {action}{hint}")


def _field_sources(action: str, given: MappingABC[str, Any], use_defaults: bool) -> dict[str, Any]:
    """The action's fields as mapped: the given ones, over the defaults when asked for."""
    allowed = ACTION_FIELDS[action]
    if not use_defaults:
        return {key: value for key, value in given.items() if key in allowed}
    merged = dict(ACTION_DEFAULTS[action])
    merged.pop(BATCHING_FIELD, None)  # left out: follows PUSHWOOSH_ENABLE_BATCHING
    merged.update((key, value) for key, value in given.items() if key in allowed)
    # With defaults, null drops a default field (write {"@literal": null} to send null).
    return {key: value for key, value in merged.items() if value is not None}


def _check_required(
    action: str, fields_key: str, sources: MappingABC[str, Any], problems: list[str]
) -> None:
    """A problem for each field Segment's action requires that is not mapped."""
    for key, field in ACTION_SCHEMAS[action].items():
        if field.required and key not in sources:
            problems.append(
                f"{fields_key}.{key}: is required by Segment's {ACTION_TITLES[action]} action "
                f"and not mapped, so no event could be sent; map it (Segment's default is "
                f"{json.dumps(ACTION_DEFAULTS[action][key])}) or add `defaults: true`"
            )


def _compile_getters(
    fields_key: str, sources: MappingABC[str, Any], problems: list[str]
) -> tuple[dict[str, FieldGetter], frozenset[str]]:
    """Each mapped field's getter, and the fields whose arrays can hold undefined."""
    getters: dict[str, FieldGetter] = {}
    undefined_in_arrays = set()
    for key, raw in sources.items():
        if key == BATCHING_FIELD:
            continue
        invalid = validate_mapping({key: raw}, fields_key)
        if invalid:  # what Segment's validation rejects, on every event
            problems += invalid
            continue
        try:
            getter, holds_undefined = compile_field_node(raw, f"{fields_key}.{key}")
        except DirectiveError as ex:
            problems.append(str(ex))
            continue
        getters[key] = getter
        if holds_undefined:
            undefined_in_arrays.add(key)
    return getters, frozenset(undefined_in_arrays)


def load_mappings_from_data(
    data: object,
    enable_batching_default: bool,
    source: str,
    integration_names: tuple[str, ...] = DEFAULT_INTEGRATION_NAMES,
) -> list[Mapping]:
    """Validate and compile parsed file content; ConfigError lists every problem, per mapping."""
    compiler = _Compiler(enable_batching_default, integration_names)
    mappings = compiler.compile_all(data)
    if compiler.problems:
        raise ConfigError([f"{source}: {problem}" for problem in compiler.problems])
    return mappings


def preset_mappings(
    enable_batching: bool, integration_names: tuple[str, ...] = DEFAULT_INTEGRATION_NAMES
) -> list[Mapping]:
    """The two default mappings of Segment's Pushwoosh destination, compiled like a file."""
    data = {"mappings": [dict(preset) for preset in PRESETS]}
    return load_mappings_from_data(data, enable_batching, "preset mappings", integration_names)


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


def load_mappings(
    path: str | None,
    enable_batching_default: bool,
    integration_names: tuple[str, ...] = DEFAULT_INTEGRATION_NAMES,
) -> list[Mapping]:
    """The mappings in `path`, or the presets when there is no file; ConfigError if invalid."""
    if path is None:
        return preset_mappings(enable_batching_default, integration_names)
    return load_mappings_from_data(
        read_mappings_file(path), enable_batching_default, path, integration_names
    )


class MappingSettings(Protocol):
    """The settings the mappings depend on (config.settings.Settings has them)."""

    @property
    def pushwoosh_mappings_file(self) -> str | None: ...

    @property
    def pushwoosh_enable_batching(self) -> bool: ...

    @property
    def pushwoosh_integration_names(self) -> tuple[str, ...]: ...


def mappings_from_settings(settings: MappingSettings) -> list[Mapping]:
    """The mappings the settings call for (PUSHWOOSH_MAPPINGS_FILE, PUSHWOOSH_ENABLE_BATCHING)."""
    return load_mappings(
        settings.pushwoosh_mappings_file,
        settings.pushwoosh_enable_batching,
        settings.pushwoosh_integration_names,
    )
