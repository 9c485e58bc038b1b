"""JavaScript's value rules, as Segment's mapping code applies them to JSON values.

Segment's mapping-kit and triggers are JavaScript: `String(v)`, `JSON.stringify`, loose `==`,
truthiness and a property lookup that stops at the first falsy value. A pasted mapping means what
those rules make of it, so the fleet applies the same rules here, on Python's JSON values
(dict, list, str, int, float, bool, None) plus `ABSENT` for JavaScript's `undefined`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Final, Literal


class MappingError(ValueError):
    """Raised by a getter when a directive cannot produce a value for this event."""


class _Absent:
    """JavaScript's `undefined`: a value that is not there. Keys holding it are not sent."""

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

# What String.prototype.trim() and Number("...") skip: WhiteSpace and LineTerminator.
JS_WHITESPACE: Final = (
    "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009"
    "\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
)
_MAX_SAFE_INTEGER: Final = 2**53


def js_trim(text: str) -> str:
    return text.strip(JS_WHITESPACE)


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def truthy(value: Any) -> bool:
    """JavaScript truthiness: undefined, null, false, 0, NaN and "" are false; [] and {} true."""
    if value is ABSENT or value is None or value is False:
        return False
    if isinstance(value, str):
        return value != ""
    if is_number(value):
        return bool(value == value and value != 0)  # NaN != NaN
    return True


def js_number(value: float) -> str:
    """A number as JavaScript's String(n) writes it: 52.0 -> "52", 1e21 -> "1e+21"."""
    if isinstance(value, int):
        if abs(value) < _MAX_SAFE_INTEGER:
            return str(value)
        value = float(value)  # JavaScript holds every number as a double
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    # repr() gives the shortest round-tripping digits, as JavaScript does; only the layout differs.
    _, digit_tuple, exponent = Decimal(repr(abs(value))).as_tuple()
    all_digits = "".join(map(str, digit_tuple))
    digits = all_digits.rstrip("0") or "0"
    assert isinstance(exponent, int)
    k = len(digits)
    n = exponent + len(all_digits)  # value = 0.<digits> * 10**n
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
    """String(value): arrays joined with ",", objects "[object Object]", null "null"."""
    if isinstance(value, str):
        return value
    if value is True:
        return "true"
    if value is False:
        return "false"
    if is_number(value):
        return js_number(value)
    if value is None:
        return "null"
    if value is ABSENT:
        return "undefined"
    if isinstance(value, list):
        return ",".join("" if item is None or item is ABSENT else js_string(item) for item in value)
    return "[object Object]"


def loosely_empty(value: Any) -> bool:
    """`value == ''` in JavaScript, for a JSON value (undefined and null are not == '')."""
    if isinstance(value, str):
        return value == ""
    if isinstance(value, bool):
        return value is False
    if is_number(value):
        return bool(value == 0)
    if isinstance(value, list):
        return js_string(value) == ""
    return False


_NUMERIC_LITERAL = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_RADIX_LITERAL = re.compile(r"0(?:[xX](?P<x>[0-9a-fA-F]+)|[oO](?P<o>[0-7]+)|[bB](?P<b>[01]+))")


def js_to_number(text: str) -> float:
    """Number(text) for a string: NaN when it is not a number; "" and blanks are 0."""
    body = js_trim(text)
    if body == "":
        return 0.0
    if _NUMERIC_LITERAL.fullmatch(body):
        return float(body)
    if body in ("Infinity", "+Infinity"):
        return math.inf
    if body == "-Infinity":
        return -math.inf
    radix = _RADIX_LITERAL.fullmatch(body)
    if radix:
        for group, base in (("x", 16), ("o", 8), ("b", 2)):
            if radix.group(group):
                return float(int(radix.group(group), base))
    return math.nan


def js_keys(obj: Mapping[str, Any]) -> list[str]:
    """Object.keys order: integer-like keys ascending first, then the rest as inserted."""
    indices = [key for key in obj if _is_index(key)]
    if not indices:
        return list(obj)
    indices.sort(key=int)
    return indices + [key for key in obj if not _is_index(key)]


def _is_index(key: str) -> bool:
    return (
        key.isascii() and key.isdigit() and (key == "0" or key[0] != "0") and int(key) < 2**32 - 1
    )


def utf16_length(text: str) -> int:
    return len(text) + sum(1 for char in text if ord(char) > 0xFFFF)


def js_json(value: Any) -> Any:
    """JSON.stringify(value): compact, keys in JavaScript's order; ABSENT for undefined."""
    if value is ABSENT:
        return ABSENT
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if is_number(value):
        return js_number(value) if math.isfinite(value) else "null"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        members = (js_json(item) for item in value)
        return "[" + ",".join("null" if m is ABSENT else m for m in members) + "]"
    if isinstance(value, Mapping):
        parts = []
        for key in js_keys(value):
            member = js_json(value[key])
            if member is not ABSENT:
                parts.append(json.dumps(key, ensure_ascii=False) + ":" + member)
        return "{" + ",".join(parts) + "}"
    return ABSENT


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def js_json_parse(text: str) -> Any:
    """JSON.parse(text); ValueError when it is not JSON (NaN and Infinity are not)."""
    return json.loads(text, parse_constant=_reject_constant)


# -- property paths --------------------------------------------------------------------------------

# Segment's `get` splits "a.b[0]['c d']" at dots, at "[" before a quote or digit, and at "]"
# after one; quotes are then dropped from every piece ("a[b]" stays one key, as in Segment).
_PATH_SPLIT = re.compile(r"""\[(?=["'0-9])|\.|(?<=["'0-9])\]+""")


def split_path(path: str) -> tuple[str, ...]:
    """The keys of a mapping-kit path ("$." already removed), as Segment's `get` splits it."""
    return tuple(
        piece.replace("'", "").replace('"', "") for piece in _PATH_SPLIT.split(path) if piece
    )


def lookup(data: Any, keys: tuple[str, ...]) -> Any:
    """`keys.reduce((o, k) => o && o[k], data)`: a falsy value along the way is the result.

    So `a.b` of {"a": null} is null, of {"a": 0} is 0, and of {} is ABSENT (undefined). Arrays
    and strings answer `length` and indices as in JavaScript. Inherited JavaScript properties
    (`constructor`, `toString`, ...) are not emulated: they find nothing.
    """
    current = data
    for key in keys:
        if type(current) is dict:  # the common case: an object (always truthy in JavaScript)
            current = current.get(key, ABSENT)
            continue
        if not truthy(current):
            return current
        if isinstance(current, Mapping):
            current = current.get(key, ABSENT)
        elif isinstance(current, list):
            if key == "length":
                current = len(current)
            elif _is_index(key) and int(key) < len(current):
                current = current[int(key)]
            else:
                return ABSENT
        elif isinstance(current, str):
            current = _string_property(current, key)
        else:
            return ABSENT
    return current


def _string_property(text: str, key: str) -> Any:
    if key == "length":
        return utf16_length(text)
    if not _is_index(key):
        return ABSENT
    units = text.encode("utf-16-le")
    index = int(key)
    if index * 2 >= len(units):
        return ABSENT
    unit = int.from_bytes(units[index * 2 : index * 2 + 2], "little")
    # Half of a surrogate pair cannot be sent as JSON; the replacement character stands in.
    return "\ufffd" if 0xD800 <= unit <= 0xDFFF else chr(unit)


def remove_undefined(value: Any) -> Any:
    """Segment's removeUndefined: drop ABSENT object members, deeply; array members stay."""
    if isinstance(value, list):
        return [remove_undefined(item) for item in value]
    if isinstance(value, Mapping):
        return {key: remove_undefined(v) for key, v in value.items() if v is not ABSENT}
    return value


def json_ready(value: Any) -> Any:
    """The value as JSON.stringify sends it: ABSENT members of arrays become null."""
    if isinstance(value, list):
        return [None if item is ABSENT else json_ready(item) for item in value]
    if isinstance(value, Mapping):
        return {key: json_ready(v) for key, v in value.items() if v is not ABSENT}
    return value
