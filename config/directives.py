"""Segment mapping-kit directives, compiled once into fast getters.

A field value in a mapping is either a literal, a plain object or array (each member a value), or
a directive object with a single "@" key: `@path`, `@if`, `@template`, `@literal`, `@case`,
`@replace`. `compile_value` checks the whole value up front (so a bad mappings file fails at
start-up, naming the spot) and returns a getter: event -> value, or `ABSENT` when there is none.
Paths are split at compile time, so running a getter per event costs microseconds.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, Final, Literal

Getter = Callable[[Mapping[str, Any]], Any]
PathKey = str | int


class _Absent:
    """The one value meaning "this field has no value": its key is left out of the body."""

    _instance: _Absent | None = None

    def __new__(cls) -> _Absent:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "ABSENT"

    def __bool__(self) -> Literal[False]:
        return False

    def __reduce__(self) -> str:
        return "ABSENT"


ABSENT: Final = _Absent()


class DirectiveError(ValueError):
    """Raised when a field value is not a valid directive."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}" if where else message)
        self.where = where
        self.message = message


# -- JavaScript-like rendering ---------------------------------------------------------------------


def js_number(value: float) -> str:
    """A number as JavaScript's String(n) writes it: 52.0 -> "52", 1e-7 -> "1e-7"."""
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    # repr() gives the shortest round-tripping digits, as JavaScript does; only the layout differs.
    _, digit_tuple, exponent = Decimal(repr(abs(value))).as_tuple()
    digits = "".join(map(str, digit_tuple)).rstrip("0") or "0"
    assert isinstance(exponent, int)
    k = len(digits)
    n = exponent + len("".join(map(str, digit_tuple)))  # value = 0.<digits> * 10**n
    if k <= n <= 21:
        text = digits + "0" * (n - k)
    elif 0 < n <= 21:
        text = f"{digits[:n]}.{digits[n:]}"
    elif -6 < n <= 0:
        text = "0." + "0" * -n + digits
    else:
        e = n - 1
        mantissa = digits if k == 1 else f"{digits[0]}.{digits[1:]}"
        text = f"{mantissa}e{'+' if e > 0 else '-'}{abs(e)}"
    return sign + text


def js_string(value: Any) -> str:
    """A scalar as JavaScript's String(v) writes it; objects and arrays as compact JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return js_number(value)
    if value is None:
        return "null"
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


# -- paths -----------------------------------------------------------------------------------------

_PATH_TOKEN = re.compile(
    r"""\.(?P<name>[^.\[\]]+)|\[(?P<index>\d+)\]|\[(?P<quote>['"])(?P<key>(?:(?!(?P=quote)).)*)(?P=quote)\]"""
)


def parse_path(text: str) -> tuple[PathKey, ...]:
    """`$.a[0]['b c']` -> ("a", 0, "b c"); the `$` is optional, as in Segment. ValueError if bad."""
    source = text.strip()
    if source.startswith("$"):
        source = source[1:]
    elif source and not source.startswith(("[", ".")):
        source = "." + source
    keys: list[PathKey] = []
    position = 0
    while position < len(source):
        match = _PATH_TOKEN.match(source, position)
        if match is None:
            raise ValueError(f"cannot read the path {text!r} at {source[position:]!r}")
        if match.group("name") is not None:
            keys.append(match.group("name"))
        elif match.group("index") is not None:
            keys.append(int(match.group("index")))
        else:
            keys.append(match.group("key"))
        position = match.end()
    return tuple(keys)


def lookup(data: Any, keys: tuple[PathKey, ...]) -> Any:
    """Follow `keys` into `data`: the value (None for a present null), or ABSENT if missing."""
    current = data
    for key in keys:
        if isinstance(current, Mapping):
            if isinstance(key, int):
                key = str(key)
            if key not in current:
                return ABSENT
            current = current[key]
        elif isinstance(current, list):
            if isinstance(key, str):
                if not key.isdigit():
                    return ABSENT
                key = int(key)
            if key >= len(current):
                return ABSENT
            current = current[key]
        else:
            return ABSENT
    return current


# -- compiling -------------------------------------------------------------------------------------

DirectiveCompiler = Callable[[Any, str], Getter]
_DIRECTIVES: dict[str, DirectiveCompiler] = {}


def _directive(name: str) -> Callable[[DirectiveCompiler], DirectiveCompiler]:
    def register(fn: DirectiveCompiler) -> DirectiveCompiler:
        _DIRECTIVES[name] = fn
        return fn

    return register


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def compile_value(raw: object, where: str = "") -> Getter:
    """Compile a mapping value into a getter: event -> value or ABSENT. DirectiveError if bad."""
    if raw is None or isinstance(raw, str | bool | int | float):
        constant = raw
        return lambda _event: constant
    if isinstance(raw, list):
        return _compile_array(raw, where)
    if isinstance(raw, Mapping):
        directive_keys = [key for key in raw if isinstance(key, str) and key.startswith("@")]
        if directive_keys:
            return _compile_directive(raw, directive_keys, where)
        return _compile_object(raw, where)
    raise DirectiveError(where, f"{type(raw).__name__} is not a JSON value")


def _compile_array(raw: list[Any], where: str) -> Getter:
    getters = [compile_value(item, f"{where}[{index}]") for index, item in enumerate(raw)]

    def get_array(event: Mapping[str, Any]) -> Any:
        values = (getter(event) for getter in getters)
        return [value for value in values if value is not ABSENT]

    return get_array


def _compile_object(raw: Mapping[Any, Any], where: str) -> Getter:
    for key in raw:
        if not isinstance(key, str):
            raise DirectiveError(where, f"object keys must be strings, got {key!r}")
    getters = [(key, compile_value(value, _join(where, key))) for key, value in raw.items()]

    def get_object(event: Mapping[str, Any]) -> Any:
        result = {}
        for key, getter in getters:
            value = getter(event)
            if value is not ABSENT:
                result[key] = value
        return result

    return get_object


def _compile_directive(raw: Mapping[Any, Any], directive_keys: list[str], where: str) -> Getter:
    if len(raw) != 1:
        raise DirectiveError(
            where,
            f"a directive object has exactly one key, got {sorted(map(str, raw))}",
        )
    name = directive_keys[0]
    compiler = _DIRECTIVES.get(name)
    if compiler is None:
        close = difflib.get_close_matches(name, list(_DIRECTIVES), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        known = ", ".join(sorted(_DIRECTIVES))
        raise DirectiveError(_join(where, name), f"unknown directive {name}{hint}; known: {known}")
    return compiler(raw[name], _join(where, name))


def _options(
    raw: Any, where: str, name: str, allowed: tuple[str, ...], required: tuple[str, ...]
) -> Mapping[str, Any]:
    expected = f"{name} expects an object with keys {', '.join(allowed)}"
    if not isinstance(raw, Mapping):
        raise DirectiveError(where, f"{expected}, got {type(raw).__name__}")
    unknown = [str(key) for key in raw if key not in allowed]
    if unknown:
        close = difflib.get_close_matches(unknown[0], allowed, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise DirectiveError(where, f"{expected}; unknown key {unknown[0]!r}{hint}")
    missing = [key for key in required if key not in raw]
    if missing:
        raise DirectiveError(where, f"{expected}; missing {missing[0]!r}")
    return raw


@_directive("@path")
def _compile_path(raw: Any, where: str) -> Getter:
    if not isinstance(raw, str):
        raise DirectiveError(where, f'@path expects a string like "$.traits.email", got {raw!r}')
    try:
        keys = parse_path(raw)
    except ValueError as ex:
        raise DirectiveError(where, str(ex)) from ex
    return lambda event: lookup(event, keys)


@_directive("@literal")
def _compile_literal(raw: Any, where: str) -> Getter:
    return lambda _event: raw


@_directive("@if")
def _compile_if(raw: Any, where: str) -> Getter:
    options = _options(raw, where, "@if", ("exists", "blank", "then", "else"), ())
    if ("exists" in options) == ("blank" in options):
        raise DirectiveError(where, '@if expects exactly one of "exists" or "blank"')
    test_key = "exists" if "exists" in options else "blank"
    test = compile_value(options[test_key], _join(where, test_key))
    absent: Getter = lambda _event: ABSENT  # noqa: E731
    then = compile_value(options["then"], _join(where, "then")) if "then" in options else absent
    other = compile_value(options["else"], _join(where, "else")) if "else" in options else absent

    if test_key == "exists":

        def holds(event: Mapping[str, Any]) -> bool:
            value = test(event)
            return value is not ABSENT and value is not None

    else:

        def holds(event: Mapping[str, Any]) -> bool:
            value = test(event)
            return value is ABSENT or value is None or value == ""

    return lambda event: then(event) if holds(event) else other(event)


_TEMPLATE_TAG = re.compile(r"\{\{\{([^}]+)\}\}\}|\{\{([^}]+)\}\}")
# Mustache, and Segment's renderer, HTML-escape {{x}} and leave {{{x}}} as it is.
_HTML_ESCAPES = str.maketrans(
    {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;", "/": "&#x2F;",
     "`": "&#x60;", "=": "&#x3D;"}
)  # fmt: skip


@_directive("@template")
def _compile_template(raw: Any, where: str) -> Getter:
    if not isinstance(raw, str):
        raise DirectiveError(
            where, f'@template expects a string like "Hi {{{{traits.name}}}}", got {raw!r}'
        )
    pieces: list[str | tuple[tuple[PathKey, ...], bool]] = []
    position = 0
    for match in _TEMPLATE_TAG.finditer(raw):
        pieces.append(raw[position : match.start()])
        raw_path, escaped_path = match.group(1), match.group(2)
        try:
            keys = parse_path(raw_path if raw_path is not None else escaped_path)
        except ValueError as ex:
            raise DirectiveError(where, str(ex)) from ex
        pieces.append((keys, raw_path is None))
        position = match.end()
    pieces.append(raw[position:])

    def render(event: Mapping[str, Any]) -> str:
        out = []
        for piece in pieces:
            if isinstance(piece, str):
                out.append(piece)
                continue
            keys, escape = piece
            value = lookup(event, keys)
            text = "" if value is ABSENT or value is None else js_string(value)
            out.append(text.translate(_HTML_ESCAPES) if escape else text)
        return "".join(out)

    return render


@_directive("@case")
def _compile_case(raw: Any, where: str) -> Getter:
    options = _options(raw, where, "@case", ("mode", "value"), ("mode", "value"))
    mode = options["mode"]
    if mode not in ("lower", "upper"):
        raise DirectiveError(where, f'@case expects "mode" to be "lower" or "upper", got {mode!r}')
    value = compile_value(options["value"], _join(where, "value"))
    change: Callable[[str], str] = str.lower if mode == "lower" else str.upper

    def get_case(event: Mapping[str, Any]) -> Any:
        result = value(event)
        return change(result) if isinstance(result, str) else result

    return get_case


@_directive("@replace")
def _compile_replace(raw: Any, where: str) -> Getter:
    allowed: tuple[str, ...] = ("pattern", "replacement", "pattern2", "replacement2", "value")
    allowed += ("ignorecase", "global")
    options = _options(raw, where, "@replace", allowed, ("pattern", "value"))
    rules: list[tuple[re.Pattern[str], str]] = []
    flags = re.IGNORECASE if _flag(options, "ignorecase", False, where) else 0
    count = 0 if _flag(options, "global", True, where) else 1
    for pattern_key, replacement_key in (("pattern", "replacement"), ("pattern2", "replacement2")):
        if pattern_key not in options:
            continue
        pattern, replacement = options[pattern_key], options.get(replacement_key, "")
        if not isinstance(pattern, str) or not pattern:
            raise DirectiveError(
                where, f'@replace expects "{pattern_key}" to be a non-empty string'
            )
        if replacement is None:
            replacement = ""
        if not isinstance(replacement, str):
            raise DirectiveError(where, f'@replace expects "{replacement_key}" to be a string')
        # A plain-text pattern, as Segment's: escaped so "." or "+" match themselves.
        rules.append((re.compile(re.escape(pattern), flags), replacement))
    value = compile_value(options["value"], _join(where, "value"))

    def get_replaced(event: Mapping[str, Any]) -> Any:
        result = value(event)
        if isinstance(result, bool | int | float):
            result = js_string(result)
        if not isinstance(result, str):
            return result
        for pattern, replacement in rules:
            result = pattern.sub(lambda _match: replacement, result, count=count)  # noqa: B023
        return result

    return get_replaced


def _flag(options: Mapping[str, Any], key: str, default: bool, where: str) -> bool:
    value = options.get(key, default)
    if not isinstance(value, bool):
        raise DirectiveError(where, f'@replace expects "{key}" to be true or false, got {value!r}')
    return value
