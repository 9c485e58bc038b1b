"""@liquid: Liquid templates, rendered as Segment's liquidjs set-up renders them.

Segment runs liquidjs with tags `case`, `for`, `include`, `layout`, `render`, `tablerow` and a
list of filters disabled, and templates limited to 1,000 characters. The fleet renders with
python-liquid, limited to the tags and filters that come out the same in both engines (the
parity corpus checks each); a template using anything else is refused at start-up with its name,
rather than rendered differently. Values are shown as JavaScript shows them ("52" for 52.0,
"[object Object]" for an object).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Final

from liquid import Environment
from liquid.exceptions import LiquidError as _EngineError

from config.jsvalues import MappingError, js_number, utf16_length

MAX_TEMPLATE_CHARS: Final = 1000  # Segment's limit (liquid-directive.ts)
# Disabled in Segment's engine: a template using them fails there on every event.
SEGMENT_DISABLED_TAGS: Final = frozenset({"case", "for", "include", "layout", "render", "tablerow"})
SEGMENT_DISABLED_FILTERS: Final = frozenset(
    {"array_to_sentence_string", "concat", "find", "find_exp", "find_index", "find_index_exp",
     "group_by", "group_by_exp", "has", "has_exp", "map", "newline_to_br", "reject", "reject_exp",
     "reverse", "sort", "sort_natural", "uniq", "where_exp", "type"}
)  # fmt: skip
# What renders the same in both engines.
TAGS: Final = frozenset(
    {"if", "elsif", "else", "endif", "unless", "endunless", "assign", "capture", "endcapture",
     "comment", "endcomment", "raw", "endraw"}
)  # fmt: skip
FILTERS: Final = frozenset(
    {"append", "prepend", "downcase", "upcase", "capitalize", "strip", "lstrip", "rstrip",
     "replace", "replace_first", "remove", "remove_first", "default", "size", "strip_newlines",
     "url_encode", "escape", "first", "last", "join", "split", "truncate"}
)  # fmt: skip
_TAG = re.compile(r"\{%-?\s*(\w+)")
# Ordering compares across types in JavaScript ("59.9" > 50), not in Python: not offered.
_ORDERING = re.compile(r"\{%-?[^%]*(<|>)[^%]*-?%\}")
_FILTER = re.compile(r"\|\s*(\w+)")
_RAW_BLOCK = re.compile(r"\{%-?\s*raw\s*-?%\}.*?\{%-?\s*endraw\s*-?%\}", re.DOTALL)


class LiquidError(ValueError):
    """Raised when a @liquid template cannot be used."""


class _JSObject(dict):  # type: ignore[type-arg]
    def __str__(self) -> str:
        return "[object Object]"


class _JSNumber(float):
    def __str__(self) -> str:
        return js_number(float(self))


class _JSNull:
    """null inside an array: liquidjs writes nothing for it."""

    def __str__(self) -> str:
        return ""

    def __bool__(self) -> bool:
        return False


_NULL: Final = _JSNull()


class _JSArray(list):  # type: ignore[type-arg]
    """An array inside an array: liquidjs writes its members one after the other."""

    def __str__(self) -> str:
        return "".join(str(member) for member in self)


class _JSBool:
    """true or false inside an array, written as JavaScript writes it."""

    def __init__(self, value: bool) -> None:
        self.value = value

    def __str__(self) -> str:
        return "true" if self.value else "false"

    def __bool__(self) -> bool:
        return self.value

    def __eq__(self, other: object) -> bool:
        return other is self.value or (isinstance(other, _JSBool) and other.value is self.value)

    def __hash__(self) -> int:
        return hash(self.value)


def _text(value: Any) -> str:
    """String(value) for a value of the JavaScript view."""
    if value is None or isinstance(value, _JSNull):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(_text(member) for member in value)
    return str(value)


def _member(value: Any) -> Any:
    if value is None:
        return _NULL
    if isinstance(value, bool):
        return _JSBool(value)
    if isinstance(value, list):
        return _JSArray(_member(member) for member in value)
    return _js_view(value)


def _js_view(value: Any) -> Any:
    """The event as liquidjs shows its values."""
    if isinstance(value, Mapping):
        return _JSObject({key: _js_view(member) for key, member in value.items()})
    if isinstance(value, list):
        return [_member(member) for member in value]
    if isinstance(value, float) and not isinstance(value, bool):
        return _JSNumber(value)
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**53:
        return _JSNumber(float(value))
    return value


_ESCAPES: Final = str.maketrans(
    {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&#34;", "'": "&#39;"}
)


def _escape(value: Any) -> str:
    """liquidjs's escape."""
    return _text(value).translate(_ESCAPES)


def _join(value: Any, separator: Any = " ") -> str:
    """liquidjs's join: each member as String() writes it."""
    if not isinstance(value, list):
        return _text(value)
    return _text(separator).join(_text(member) for member in value)


def _size(value: Any) -> int:
    """liquidjs's size: JavaScript's length (UTF-16 units for text), 0 for anything else."""
    if isinstance(value, str):
        return utf16_length(value)
    if isinstance(value, list):
        return len(value)
    return 0


_ENVIRONMENT: Final = Environment()
_ENVIRONMENT.filters["escape"] = _escape
_ENVIRONMENT.filters["size"] = _size
_ENVIRONMENT.filters["join"] = _join


def _refusal(template: str) -> str | None:
    outside_raw = _RAW_BLOCK.sub("", template)
    if _ORDERING.search(outside_raw):
        return "<, >, <= and >= are not supported here (JavaScript orders across types)"
    for name in _TAG.findall(outside_raw):
        if name in SEGMENT_DISABLED_TAGS:
            return f'tag "{name}" is disabled in Segment\'s Liquid, so it fails on every event'
        if name not in TAGS:
            return f'the tag "{name}" is not supported here (supported: {", ".join(sorted(TAGS))})'
    for name in _FILTER.findall(outside_raw):
        if name in SEGMENT_DISABLED_FILTERS:
            return f'filter "{name}" is disabled in Segment\'s Liquid, so it fails on every event'
        if name not in FILTERS:
            return (
                f'the filter "{name}" is not supported here (it renders differently in Segment\'s '
                f"engine); supported: {', '.join(sorted(FILTERS))}"
            )
    return None


def compile_liquid(raw: Any) -> Callable[[Any], Any]:
    """A getter rendering the template for each event; LiquidError when it cannot be used."""
    if not isinstance(raw, str):
        raise LiquidError("liquid template value must be a string")
    if raw == "":
        return lambda _payload: ""
    if len(raw) > MAX_TEMPLATE_CHARS:
        raise LiquidError(f"liquid template values are limited to {MAX_TEMPLATE_CHARS} characters")
    problem = _refusal(raw)
    if problem:
        raise LiquidError(problem)
    try:
        template = _ENVIRONMENT.from_string(raw)
    except _EngineError as ex:
        raise LiquidError(f"not a valid Liquid template: {ex}") from ex

    def render(payload: Any) -> Any:
        data = _js_view(payload) if isinstance(payload, Mapping) else {}
        try:
            return template.render(data)
        except _EngineError as ex:
            raise MappingError(f"@liquid: {ex}") from ex

    return render
