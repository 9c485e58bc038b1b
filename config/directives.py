"""Segment's mapping-kit directives, compiled once into fast getters.

A field value is a literal, a plain object or array (each member a value), or a directive: an
object with one "@" key (and optionally `_metadata`, which is ignored): `@path`, `@template`,
`@if`, `@case`, `@replace`, `@literal`, `@arrayPath`, `@json`, `@flatten`, `@merge`,
`@transform`, `@excludeWhenNull`, `@liquid`. Each means exactly what it means in Segment's
mapping-kit (packages/core/src/mapping-kit at the commit named in docs/mappings.md): the same
checks, the same JavaScript value rules (config.jsvalues), the same results on every input.

`validate_mapping` applies Segment's validation to a whole mapping (what Segment rejects on every
event, the fleet refuses at start-up). `compile_value` turns one value into a getter:
payload -> value, or ABSENT (undefined) when there is none. A directive Segment would fail on
every event that reaches it (an unknown directive inside an array, `@if` with neither `exists`
nor `blank`, ...) is refused at start-up too. What can only fail for some events (`@path` given
a number by a nested directive) raises `MappingError` from the getter: that event is rejected.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any, Final

from config.jsvalues import (
    ABSENT,
    MappingError,
    js_json,
    js_json_parse,
    js_keys,
    js_number,
    js_string,
    js_trim,
    lookup,
    loosely_empty,
    remove_undefined,
    split_path,
    truthy,
    utf16_length,
)
from config.liquid import LiquidError, compile_liquid

__all__ = [
    "ABSENT",
    "DIRECTIVES",
    "DirectiveError",
    "Getter",
    "MappingError",
    "compile_field",
    "compile_field_node",
    "compile_value",
    "js_number",
    "js_string",
    "lookup",
    "parse_path",
    "validate_mapping",
]

Getter = Callable[[Any], Any]
DIRECTIVES: Final = (
    "@if", "@case", "@replace", "@arrayPath", "@path", "@json", "@flatten", "@merge",
    "@template", "@literal", "@transform", "@excludeWhenNull", "@liquid",
)  # fmt: skip
METADATA_KEY: Final = "_metadata"
# Segment's limits on @replace's texts (mapping-kit MAX_PATTERN_LENGTH / MAX_REPLACEMENT_LENGTH).
MAX_PATTERN_LENGTH: Final = 10
MAX_REPLACEMENT_LENGTH: Final = 10
# Segment's key for a destination-defined root directive; never part of a customer's mapping.
ROOT_DIRECTIVE_KEY: Final = "__segment_internal_directive"


class DirectiveError(ValueError):
    """Raised when a mapping value can never work (found at start-up)."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}" if where else message)
        self.where = where
        self.message = message


def parse_path(text: str) -> tuple[str, ...]:
    """The keys `{"@path": text}` follows: `$.a[0]['b c']` -> ("a", "0", "b c")."""
    return split_path(text.replace("$.", "", 1))


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _type_of(value: Any) -> str:
    """realTypeOf(value): "null", "array", "object", "string", "number", "boolean", "undefined"."""
    if value is ABSENT:
        return "undefined"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


def _has_directive_key(value: Any) -> bool:
    return isinstance(value, Mapping) and any(str(key).startswith("@") for key in value)


def _is_directive(value: Any) -> bool:
    """Segment's isDirective: an @ key, and no other key but @ keys and `_metadata`."""
    if not _has_directive_key(value):
        return False
    return all(str(key).startswith("@") or key == METADATA_KEY for key in value)


def _article(type_name: str) -> str:
    return "an" if type_name[:1] in "aeiou" else "a"


# -- validation: Segment's validate.ts, reporting every problem ------------------------------------


class _Validator:
    """Segment's mapping validation; problems are collected, each with where it is."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def fail(self, where: str, message: str) -> None:
        self.problems.append(f"{where}: {message}" if where else message)

    def kind(self, value: Any) -> str:
        return "directive" if _has_directive_key(value) else _type_of(value)

    def validate(self, value: Any, where: str) -> None:
        kind = self.kind(value)
        if kind == "directive":
            self.directive(value, where)
        elif kind == "object":
            self.object(value, where)
        # arrays and scalars are valid as they are; array members are not looked into

    def directive(self, value: Any, where: str) -> None:
        if not isinstance(value, Mapping):
            kind = _type_of(value)
            self.fail(where, f"should be a directive object but it is {_article(kind)} {kind}")
            return
        keys = [str(key) for key in value]
        names = [key for key in keys if key.startswith("@")]
        if len(names) > 1:
            self.fail(where, f"should only have one @-prefixed key but it has {len(names)} keys")
            return
        if any(not key.startswith("@") and key != METADATA_KEY for key in keys):
            self.fail(where, f"should only have one @-prefixed key but it has {len(keys)} keys")
            return
        name = names[0]
        check = _VALIDATORS.get(name)
        if check is None:
            self.fail(where, f"has an invalid directive: {name}{_did_you_mean(name)}")
            return
        check(self, value[name], _join(where, name))

    def object(self, value: Any, where: str) -> bool:
        kind = self.kind(value)
        if kind != "object":
            self.fail(where, f"should be an object but it is {_article(kind)} {kind}")
            return False
        for key, member in value.items():
            self.validate(member, _join(where, str(key)))
        return True

    def directive_or_raw(self, value: Any, where: str) -> None:
        if self.kind(value) == "directive":
            self.directive(value, where)

    def directive_or_string(self, value: Any, where: str) -> None:
        kind = self.kind(value)
        if kind == "directive":
            self.directive(value, where)
        elif kind != "string":
            self.fail(
                where,
                f"should be a string or a mapping directive but it is {_article(kind)} {kind}",
            )

    def directive_or_object(self, value: Any, where: str) -> None:
        kind = self.kind(value)
        if kind == "directive":
            self.directive(value, where)
        elif kind == "object":
            self.object(value, where)
        else:
            self.fail(
                where,
                f"should be a object or a mapping directive but it is {_article(kind)} {kind}",
            )

    def string(self, value: Any, where: str, lengths: tuple[int, int] | None = None) -> None:
        self.is_string(value, where, lengths)

    def is_string(self, value: Any, where: str, lengths: tuple[int, int] | None = None) -> bool:
        kind = self.kind(value)
        if kind != "string":
            self.fail(where, f"should be a string but it is {_article(kind)} {kind}")
            return False
        if lengths is not None:
            low, high = lengths
            if utf16_length(value) < low:
                self.fail(where, f"should be a string of length {low} or greater")
            elif utf16_length(value) > high:
                self.fail(where, f"should be a string of length {high} or less")
        return True

    def one_of(self, value: Any, where: str, allowed: tuple[str, ...]) -> None:
        if self.is_string(value, where) and value.lower() not in allowed:
            self.fail(where, f"should be one of {', '.join(allowed)} but it is {js_json(value)}")

    def boolean(self, value: Any, where: str) -> None:
        kind = self.kind(value)
        if kind != "boolean":
            self.fail(where, f"should be a boolean but it is {_article(kind)} {kind}")

    def fields(
        self,
        value: Any,
        where: str,
        required: dict[str, Callable[[Any, str], None]],
        optional: dict[str, Callable[[Any, str], None]],
    ) -> bool:
        if not self.object(value, where):
            return False
        for key, check in required.items():
            if key not in value:
                self.fail(where, f"should have field {js_json(key)} but it doesn't")
            else:
                check(value[key], _join(where, key))
        for key, check in optional.items():
            if key in value:
                check(value[key], _join(where, key))
        return True


def _validate_if(v: _Validator, raw: Any, where: str) -> None:
    check = v.directive_or_raw
    v.fields(raw, where, {}, {"exists": check, "then": check, "else": check})


def _validate_case(v: _Validator, raw: Any, where: str) -> None:
    v.fields(raw, where, {}, {"operator": v.string, "value": v.directive_or_string})


def _validate_replace(v: _Validator, raw: Any, where: str) -> None:
    v.fields(
        raw,
        where,
        {
            "pattern": lambda x, w: v.string(x, w, (1, MAX_PATTERN_LENGTH)),
            "value": v.directive_or_string,
        },
        {
            "replacement": lambda x, w: v.string(x, w, (0, MAX_REPLACEMENT_LENGTH)),
            "ignorecase": v.boolean,
            "global": v.boolean,
        },
    )


def _validate_array_path(v: _Validator, raw: Any, where: str) -> None:
    if not isinstance(raw, list):
        kind = _type_of(raw)
        v.fail(where, f"should be an array but it is {_article(kind)} {kind}")
        return
    v.directive_or_string(raw[0] if raw else ABSENT, where)
    v.validate(raw[1] if len(raw) > 1 else ABSENT, where)


def _validate_json(v: _Validator, raw: Any, where: str) -> None:
    v.fields(
        raw,
        where,
        {"value": v.directive_or_raw, "mode": lambda x, w: v.one_of(x, w, ("encode", "decode"))},
        {},
    )


def _validate_flatten(v: _Validator, raw: Any, where: str) -> None:
    v.fields(raw, where, {"value": v.directive_or_raw}, {"separator": v.string})


def _validate_merge(v: _Validator, raw: Any, where: str) -> None:
    def array(value: Any, at: str) -> None:
        if not isinstance(value, list):
            kind = _type_of(value)
            v.fail(at, f"should be an array but it is {_article(kind)} {kind}")

    ok = v.fields(
        raw,
        where,
        {"objects": array},
        {"direction": lambda x, w: v.one_of(x, w, ("left", "right"))},
    )
    if ok and isinstance(raw.get("objects"), list):
        for index, member in enumerate(raw["objects"]):
            v.directive_or_object(member, f"{where}.objects[{index}]")


def _validate_transform(v: _Validator, raw: Any, where: str) -> None:
    check = v.directive_or_object
    v.fields(raw, where, {"apply": check, "mapping": check}, {})


_VALIDATORS: dict[str, Callable[[_Validator, Any, str], None]] = {
    "@if": _validate_if,
    "@case": _validate_case,
    "@replace": _validate_replace,
    "@arrayPath": _validate_array_path,
    "@path": lambda v, raw, where: v.directive_or_string(raw, where),
    "@json": _validate_json,
    "@flatten": _validate_flatten,
    "@merge": _validate_merge,
    "@template": lambda v, raw, where: v.directive_or_string(raw, where),
    "@literal": lambda v, raw, where: v.directive_or_raw(raw, where),
    "@transform": _validate_transform,
    "@excludeWhenNull": lambda v, raw, where: v.directive_or_raw(raw, where),
    "@liquid": lambda v, raw, where: v.string(raw, where),
}


def _did_you_mean(name: str) -> str:
    close = difflib.get_close_matches(name, DIRECTIVES, n=1)
    return f" (did you mean {close[0]}?)" if close else f"; known: {', '.join(DIRECTIVES)}"


def validate_mapping(mapping: Mapping[str, Any], where: str = "") -> list[str]:
    """Every problem Segment's validation finds in a whole mapping (field key -> value)."""
    validator = _Validator()
    if ROOT_DIRECTIVE_KEY in mapping:
        validator.fail(_join(where, ROOT_DIRECTIVE_KEY), "is internal to Segment's destinations")
    validator.validate(mapping, where)
    return validator.problems


# -- compiling: Segment's resolve() ---------------------------------------------------------------


class _Node:
    """A compiled value: its getter, and whether the value may hold ABSENT inside it."""

    __slots__ = ("get", "nested")

    def __init__(self, get: Getter, nested: bool) -> None:
        self.get = get
        self.nested = nested


def compile_value(raw: object, where: str = "") -> Getter:
    """A getter for one mapping value: payload -> value (ABSENT inside objects possible)."""
    return _compile(raw, where).get


def compile_field(raw: object, where: str = "") -> Getter:
    """A getter for a field: the value as Segment's transform() leaves it (undefined removed)."""
    return compile_field_node(raw, where)[0]


def compile_field_node(raw: object, where: str = "") -> tuple[Getter, bool]:
    """compile_field's getter, and whether its values can hold undefined array members."""
    node = _compile(raw, where)
    if not node.nested:
        return node.get, False
    get = node.get

    def get_clean(payload: Any) -> Any:
        value = get(payload)
        return ABSENT if value is ABSENT else remove_undefined(value)

    return get_clean, _makes_arrays(raw)


def _makes_arrays(raw: Any) -> bool:
    """Whether a mapping value can build an array (whose members may be undefined)."""
    if isinstance(raw, list):
        return True
    if isinstance(raw, Mapping):
        return "@arrayPath" in raw or any(_makes_arrays(value) for value in raw.values())
    return False


def _constant(value: Any) -> _Node:
    return _Node(lambda _payload: value, False)


_ABSENT_NODE: Final = _Node(lambda _payload: ABSENT, False)


def _compile(raw: Any, where: str) -> _Node:
    if raw is None or isinstance(raw, str | bool | int | float):
        return _constant(raw)
    if isinstance(raw, list):
        return _compile_array(raw, where)
    if isinstance(raw, Mapping):
        for key in raw:
            if not isinstance(key, str):
                raise DirectiveError(where, f"object keys must be strings, got {key!r}")
        if _is_directive(raw):
            return _compile_directive(raw, where)
        return _compile_object(raw, where)
    if raw is ABSENT:
        return _ABSENT_NODE
    raise DirectiveError(where, f"{type(raw).__name__} is not a JSON value")


def _compile_array(raw: list[Any], where: str) -> _Node:
    nodes = [_compile(item, f"{where}[{index}]") for index, item in enumerate(raw)]
    getters = [node.get for node in nodes]
    # Members stay even when undefined: Segment keeps them (they are sent as null).
    return _Node(lambda payload: [get(payload) for get in getters], True)


def _compile_object(raw: Mapping[str, Any], where: str) -> _Node:
    members = [(key, _compile(value, _join(where, key)).get) for key, value in raw.items()]
    # Members that come out undefined are kept here and removed at the end, as Segment does:
    # @merge and @flatten see them.
    return _Node(lambda payload: {key: get(payload) for key, get in members}, True)


DirectiveCompiler = Callable[[Any, str], _Node]
_COMPILERS: dict[str, DirectiveCompiler] = {}


def _directive(name: str) -> Callable[[DirectiveCompiler], DirectiveCompiler]:
    def register(fn: DirectiveCompiler) -> DirectiveCompiler:
        _COMPILERS[name] = fn
        return fn

    return register


def _compile_directive(raw: Mapping[str, Any], where: str) -> _Node:
    name = next(key for key in raw if key.startswith("@"))  # the first, as Segment picks it
    compiler = _COMPILERS.get(name)
    if compiler is None:
        # Segment throws "... is not a valid directive" whenever it reaches this value.
        raise DirectiveError(_join(where, name), f"unknown directive {name}{_did_you_mean(name)}")
    return compiler(raw[name], _join(where, name))


def _needs_object(raw: Any, where: str, message: str) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise DirectiveError(where, message)
    return raw


@_directive("@if")
def _compile_if(raw: Any, where: str) -> _Node:
    opts = _needs_object(raw, where, '@if requires an object with an "exists" key')
    exists, blank = opts.get("exists", ABSENT), opts.get("blank", ABSENT)
    if not truthy(exists) and not truthy(blank):
        raise DirectiveError(where, '@if requires an "exists" key or a "blank" key')
    test_key = "exists" if exists is not ABSENT else "blank"
    test = _compile(opts[test_key], _join(where, test_key)).get
    then = _compile(opts["then"], _join(where, "then")) if "then" in opts else _ABSENT_NODE
    # Segment takes `else` only when it is truthy: "else": null, 0, false or "" give nothing.
    other = (
        _compile(opts["else"], _join(where, "else"))
        if truthy(opts.get("else", ABSENT))
        else _ABSENT_NODE
    )
    get_then, get_other = then.get, other.get
    nested = then.nested or other.nested
    if test_key == "exists":

        def get_if_exists(payload: Any) -> Any:
            value = test(payload)
            return (
                get_then(payload)
                if value is not ABSENT and value is not None
                else get_other(payload)
            )

        return _Node(get_if_exists, nested)

    def get_if_not_blank(payload: Any) -> Any:
        value = test(payload)
        # "blank" is a condition on NOT being blank: then when the value is there and != "".
        if value is not ABSENT and value is not None and not loosely_empty(value):
            return get_then(payload)
        return get_other(payload)

    return _Node(get_if_not_blank, nested)


@_directive("@case")
def _compile_case(raw: Any, where: str) -> _Node:
    opts = _needs_object(raw, where, '@case requires an object with a "operator" key')
    operator = opts.get("operator", ABSENT)
    if not truthy(operator):
        raise DirectiveError(where, '@case requires a "operator" key')
    if not truthy(opts.get("value", ABSENT)):
        return _ABSENT_NODE
    value = _compile(opts["value"], _join(where, "value"))
    get_value = value.get

    def get_case(payload: Any) -> Any:
        result = get_value(payload)
        if isinstance(result, str):
            if operator == "lower":
                return result.lower()
            if operator == "upper":
                return result.upper()
            raise MappingError('@case: operator key should have a value of "lower" or "upper"')
        return result

    return _Node(get_case, value.nested)


def _canonical(text: str) -> str:
    """Characters as a case-insensitive JavaScript RegExp (no u flag) compares them."""
    out = []
    for char in text:
        upper = char.upper() if ord(char) <= 0xFFFF else char
        if len(upper) != 1 or (ord(char) >= 128 > ord(upper)):
            out.append(char)
        else:
            out.append(upper)
    return "".join(out)


def _substitute(replacement: str, text: str, start: int, end: int) -> str:
    """String.prototype.replace's $-patterns for a pattern without groups."""
    if "$" not in replacement:
        return replacement
    out = []
    index = 0
    while index < len(replacement):
        char = replacement[index]
        code = replacement[index + 1 : index + 2]
        if char == "$" and code in ("$", "&", "`", "'"):
            out.append({"$": "$", "&": text[start:end], "`": text[:start], "'": text[end:]}[code])
            index += 2
        else:
            out.append(char)
            index += 1
    return "".join(out)


def _replace(text: str, pattern: str, replacement: str, every: bool, ignore_case: bool) -> str:
    if utf16_length(pattern) > MAX_PATTERN_LENGTH:
        raise MappingError(
            f'@replace requires a "pattern" less than {MAX_PATTERN_LENGTH} characters'
        )
    if utf16_length(replacement) > MAX_REPLACEMENT_LENGTH:
        raise MappingError(
            f'@replace requires a "replacement" less than {MAX_REPLACEMENT_LENGTH} characters'
        )
    haystack, needle = (_canonical(text), _canonical(pattern)) if ignore_case else (text, pattern)
    out = []
    position = 0
    found = haystack.find(needle)
    while found != -1:
        end = found + len(needle)
        out.append(text[position:found])
        out.append(_substitute(replacement, text, found, end))
        position = end
        if not every:
            break
        found = haystack.find(needle, end)
    out.append(text[position:])
    return "".join(out)


@_directive("@replace")
def _compile_replace(raw: Any, where: str) -> _Node:
    opts = _needs_object(raw, where, '@replace requires an object with a "pattern" key')
    pattern = opts.get("pattern", ABSENT)
    if not truthy(pattern):
        raise DirectiveError(where, '@replace requires a "pattern" key')
    replacement = opts.get("replacement", ABSENT)
    replacement = "" if replacement is None or replacement is ABSENT else replacement
    pattern2 = opts.get("pattern2", ABSENT)
    replacement2 = opts.get("replacement2", ABSENT)
    if truthy(pattern2) and (replacement2 is None or replacement2 is ABSENT):
        replacement2 = ""
    ignore_case = opts.get("ignorecase", ABSENT)
    ignore_case = False if ignore_case is None or ignore_case is ABSENT else ignore_case
    every = opts.get("global", ABSENT)
    every = True if every is None or every is ABSENT else every
    if not truthy(opts.get("value", ABSENT)):
        return _ABSENT_NODE
    get_value = _compile(opts["value"], _join(where, "value")).get
    usable = (
        isinstance(pattern, str)
        and isinstance(replacement, str)
        and isinstance(ignore_case, bool)
        and isinstance(every, bool)
    )
    second = truthy(pattern2) and isinstance(pattern2, str) and isinstance(replacement2, str)

    def get_replaced(payload: Any) -> Any:
        value = get_value(payload)
        if isinstance(value, bool | int | float):
            value = js_string(value)
        # Anything else (missing, null, an object) becomes "", as in Segment.
        if not usable or not isinstance(value, str):
            return ""
        result = _replace(value, pattern, replacement, every, ignore_case)
        if second:
            result = _replace(result, pattern2, replacement2, every, ignore_case)
        return result

    return _Node(get_replaced, False)


@_directive("@arrayPath")
def _compile_array_path(raw: Any, where: str) -> _Node:
    if not isinstance(raw, list):
        raise DirectiveError(where, f"@arrayPath expected array, got {_type_of(raw)}")
    path = raw[0] if raw else ABSENT
    shape = raw[1] if len(raw) > 1 else ABSENT
    if isinstance(path, str):
        keys = parse_path(path)

        def get_root(payload: Any) -> Any:
            return lookup(payload, keys)

        root_nested = False
    else:
        root = _compile(path, _join(where, "0"))
        get_root, root_nested = root.get, root.nested  # type: ignore[assignment]
    if not (isinstance(shape, Mapping) and len(shape) > 0):
        return _Node(get_root, root_nested)
    get_item = _compile(shape, _join(where, "1")).get

    def get_array_path(payload: Any) -> Any:
        root = get_root(payload)
        if isinstance(root, list):
            return [get_item(item) for item in root]
        if isinstance(root, Mapping):
            return [get_item(root)]
        return root

    return _Node(get_array_path, True)


@lru_cache(maxsize=1024)
def _cached_path(text: str) -> tuple[str, ...]:
    return parse_path(text)


def _string_argument(name: str, raw: Any, where: str) -> tuple[str | None, Getter | None]:
    """@path and @template take a string, or a directive that gives one for each event."""
    if isinstance(raw, str):
        return raw, None
    if _is_directive(raw):
        get_text = _compile(raw, where).get

        def get_checked(payload: Any) -> Any:
            text = get_text(payload)
            if not isinstance(text, str):
                raise MappingError(f"{name}: expected string, got {_type_of(text)}")
            return text

        return None, get_checked
    raise DirectiveError(where, f"{name}: expected string, got {_type_of(raw)}")


@_directive("@path")
def _compile_path(raw: Any, where: str) -> _Node:
    text, get_text = _string_argument("@path", raw, where)
    if text is not None:
        keys = parse_path(text)
        if not keys:
            return _Node(lambda payload: payload, False)
        if len(keys) == 1:
            (key,) = keys
            # The common `$.userId`: one dictionary look-up.
            return _Node(
                lambda payload: (
                    payload.get(key, ABSENT) if isinstance(payload, dict) else lookup(payload, keys)
                ),
                False,
            )
        return _Node(lambda payload: lookup(payload, keys), False)
    assert get_text is not None
    return _Node(lambda payload: lookup(payload, _cached_path(get_text(payload))), False)


_TRIPLE_TAG = re.compile(r"\{\{\{([^}]+)\}\}\}")
_DOUBLE_TAG = re.compile(r"\{\{([^}]+)\}\}")


def _tag_text(payload: Any, inner: str) -> str:
    value = lookup(payload, split_path(js_trim(inner)))
    return "" if value is None or value is ABSENT else js_string(value)


def render_template(template: str, payload: Any) -> str:
    """Segment's render(): {{{x}}} first, then {{x}}; nothing is escaped."""
    text = _TRIPLE_TAG.sub(lambda m: _tag_text(payload, m.group(1)), template)
    return _DOUBLE_TAG.sub(lambda m: _tag_text(payload, m.group(1)), text)


def _compiled_template(template: str) -> Getter:
    if _TRIPLE_TAG.search(template):
        # A value put in by {{{x}}} can itself read as {{y}} in the second pass, as in Segment.
        return lambda payload: render_template(template, payload)
    pieces: list[str | tuple[str, ...]] = []
    position = 0
    for match in _DOUBLE_TAG.finditer(template):
        pieces.append(template[position : match.start()])
        pieces.append(split_path(js_trim(match.group(1))))
        position = match.end()
    pieces.append(template[position:])

    def render(payload: Any) -> str:
        out = []
        for piece in pieces:
            if isinstance(piece, str):
                out.append(piece)
            else:
                value = lookup(payload, piece)
                out.append("" if value is None or value is ABSENT else js_string(value))
        return "".join(out)

    return render


@_directive("@template")
def _compile_template(raw: Any, where: str) -> _Node:
    text, get_text = _string_argument("@template", raw, where)
    if text is not None:
        return _Node(_compiled_template(text), False)
    assert get_text is not None
    return _Node(lambda payload: render_template(get_text(payload), payload), False)


@_directive("@literal")
def _compile_literal(raw: Any, where: str) -> _Node:
    # Segment resolves what is inside a @literal: directives there work like anywhere else.
    return _compile(raw, where)


def _flatten(
    value: Any, prefix: str, separator: str, skip_arrays: bool, out: dict[str, Any]
) -> None:
    if isinstance(value, Mapping):
        entries: Any = ((key, value[key]) for key in js_keys(value))
    elif isinstance(value, list) and not skip_arrays:
        entries = ((str(index), item) for index, item in enumerate(value))
    else:
        out[prefix] = value
        return
    for key, member in entries:
        _flatten(
            member, f"{prefix}{separator}{key}" if prefix else key, separator, skip_arrays, out
        )


@_directive("@flatten")
def _compile_flatten(raw: Any, where: str) -> _Node:
    opts = _needs_object(raw, where, '@flatten requires an object with a "separator" key')
    if not truthy(opts.get("separator", ABSENT)):
        raise DirectiveError(where, '@flatten requires a "separator" key')
    get_separator = _compile(opts["separator"], _join(where, "separator")).get
    get_value = _compile(opts.get("value", ABSENT), _join(where, "value")).get
    skip_arrays = truthy(opts.get("omitArrays", ABSENT))

    def get_flat(payload: Any) -> Any:
        separator = get_separator(payload)
        if not isinstance(separator, str):
            raise MappingError("@flatten requires a string separator")
        out: dict[str, Any] = {}
        _flatten(get_value(payload), "", separator, skip_arrays, out)
        return out

    return _Node(get_flat, True)


@_directive("@json")
def _compile_json(raw: Any, where: str) -> _Node:
    opts = _needs_object(raw, where, '@json requires an object with a "value" key')
    if not truthy(opts.get("mode", ABSENT)):
        raise DirectiveError(where, '@json requires a "mode" key')
    if not truthy(opts.get("value", ABSENT)):
        raise DirectiveError(where, '@json requires a "value" key')
    value = _compile(opts["value"], _join(where, "value"))
    get_value = value.get
    mode = opts["mode"]
    if mode == "encode":
        return _Node(lambda payload: js_json(get_value(payload)), False)
    if mode != "decode":
        return _ABSENT_NODE  # Segment compares the mode exactly: "Encode" gives nothing

    def get_decoded(payload: Any) -> Any:
        result = get_value(payload)
        if isinstance(result, str):
            try:
                return js_json_parse(result)
            except ValueError:
                return result
        return result

    return _Node(get_decoded, value.nested)


def _assign(target: dict[str, Any], source: Any) -> None:
    """Object.assign(target, source) for one source."""
    if isinstance(source, Mapping):
        for key in js_keys(source):
            target[key] = source[key]
    elif isinstance(source, list):
        for index, item in enumerate(source):
            target[str(index)] = item
    elif isinstance(source, str):
        units = source.encode("utf-16-le")
        for index in range(len(units) // 2):
            unit = int.from_bytes(units[index * 2 : index * 2 + 2], "little")
            target[str(index)] = "\ufffd" if 0xD800 <= unit <= 0xDFFF else chr(unit)


@_directive("@merge")
def _compile_merge(raw: Any, where: str) -> _Node:
    opts = _needs_object(
        raw, where, '@merge requires an object with an "objects" key and a "direction" key'
    )
    if not truthy(opts.get("direction", ABSENT)):
        raise DirectiveError(where, '@merge requires a "direction" key')
    get_direction = _compile(opts["direction"], _join(where, "direction")).get
    objects = opts.get("objects", ABSENT)
    if not truthy(objects):
        raise DirectiveError(where, '@merge requires a "objects" key')
    if not isinstance(objects, list):
        raise DirectiveError(where, f"@merge: expected opts.array, got {_type_of(objects)}")
    getters = [
        _compile(item, f"{where}.objects[{index}]").get for index, item in enumerate(objects)
    ]

    def get_merged(payload: Any) -> Any:
        direction = get_direction(payload)
        values = [get(payload) for get in getters]
        if direction == "left":
            values.reverse()
        merged: dict[str, Any] = {}
        for value in values:
            _assign(merged, value)
        return merged

    return _Node(get_merged, True)


@_directive("@transform")
def _compile_transform(raw: Any, where: str) -> _Node:
    opts = _needs_object(
        raw, where, '@transform requires an object with an "apply" key and a "mapping" key'
    )
    if not truthy(opts.get("mapping", ABSENT)):
        raise DirectiveError(where, '@transform requires a "mapping" key')
    apply = opts.get("apply", ABSENT)
    if not truthy(apply):
        raise DirectiveError(where, '@transform requires a "apply" key')
    if not isinstance(apply, Mapping):
        raise DirectiveError(where, '@transform "apply" key should be an object')
    # Segment validates "apply" as a whole mapping each time it runs it.
    problems = validate_mapping(apply, _join(where, "apply"))
    if problems:
        raise DirectiveError(where, "; ".join(problems))
    get_apply = compile_field(apply, _join(where, "apply"))
    mapping = _compile(opts["mapping"], _join(where, "mapping"))
    get_mapping = mapping.get

    def get_transformed(payload: Any) -> Any:
        if payload is ABSENT:
            payload = {}
        if not isinstance(payload, Mapping):
            raise MappingError(f"@transform: data must be an object, got {_type_of(payload)}")
        return get_mapping(get_apply(payload))

    return _Node(get_transformed, mapping.nested)


def _clean_nulls(value: Any) -> Any:
    if not isinstance(value, Mapping):
        return value
    cleaned = dict(value)
    for key, member in value.items():
        if member is None:
            cleaned[key] = ABSENT
        elif isinstance(member, Mapping):
            cleaned[key] = _clean_nulls(member)
    return cleaned


@_directive("@excludeWhenNull")
def _compile_exclude_when_null(raw: Any, where: str) -> _Node:
    get_value = _compile(raw, where).get

    def get_without_nulls(payload: Any) -> Any:
        value = get_value(payload)
        return ABSENT if value is None else _clean_nulls(value)

    return _Node(get_without_nulls, True)


@_directive("@liquid")
def _compile_liquid(raw: Any, where: str) -> _Node:
    try:
        return _Node(compile_liquid(raw), False)
    except LiquidError as ex:
        raise DirectiveError(where, str(ex)) from ex
