"""Triggers: the subset of Segment's filter query language (FQL) that destination mappings use.

`compile_trigger(source)` parses a trigger once into a tree of closures, so deciding whether an
event matches costs a few dictionary look-ups, never a parse.

    trigger    := or
    or         := and ("or" and)*
    and        := unary ("and" unary)*
    unary      := ("!" | "not") unary | "(" or ")" | comparison
    comparison := operand [("=" | "!=" | "<" | "<=" | ">" | ">=") operand]
    operand    := path | string | number | "true" | "false" | "null"
                | "contains(" operand "," operand ")" | "match(" operand "," string ")"

Keywords are lowercase only, as in Segment (`AND` is a path, and a helpful error). `!`/`not`
negate the comparison, call or parenthesised group that follows: `!type = "track"` means
`!(type = "track")`. A comparison without an operator must be `true`, `false` or a call.

A missing path is *undefined*: it equals `null`, differs from everything else, and makes
ordering comparisons false. Values are never converted: `1 = "1"` and `1 = true` are false.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from typing import Any, Final

Event = Mapping[str, Any]
Predicate = Callable[[Event], bool]
Getter = Callable[[Event], Any]

# Deep enough for any hand-written trigger, shallow enough that Python's stack is never at risk.
MAX_NESTING: Final = 32
MAX_SOURCE_CHARS: Final = 10_000
KEYWORDS: Final = frozenset({"and", "or", "not", "true", "false", "null"})
FUNCTIONS: Final = frozenset({"contains", "match"})
_CONTEXT_CHARS = 40

_UNDEFINED: Final = object()  # what a missing path yields; equals null and nothing else

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
    | (?P<number>-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?(?![\w$]))
    | (?P<path>[^\W\d][\w$-]*(?:\.[\w$-]+)*)
    | (?P<op>!=|<=|>=|=|<|>)
    | (?P<punct>[!(),])
    | (?P<string>")
    """,
    re.VERBOSE,
)
_ESCAPES: Final = {'"': '"', "\\": "\\", "/": "/", "n": "\n", "t": "\t", "r": "\r", "b": "\b",
                   "f": "\f"}  # fmt: skip
_COMPARISONS: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}  # fmt: skip


class TriggerSyntaxError(ValueError):
    """Raised when a trigger does not parse."""

    def __init__(self, reason: str, source: str, position: int) -> None:
        self.reason = reason
        self.source = source
        self.position = max(0, min(position, len(source)))
        super().__init__(f"{reason} at position {self.position}: {_excerpt(source, self.position)}")


def _excerpt(source: str, position: int) -> str:
    """The source with a `|` where the problem is, shortened around it when long."""
    before = source[max(0, position - _CONTEXT_CHARS) : position]
    after = source[position : position + _CONTEXT_CHARS]
    head = "…" if position > _CONTEXT_CHARS else ""
    tail = "…" if len(source) - position > _CONTEXT_CHARS else ""
    return f"{head}{before}|{after}{tail}"


class _Token:
    __slots__ = ("kind", "pos", "text", "value")

    def __init__(self, kind: str, text: str, pos: int, value: Any = None) -> None:
        self.kind = kind  # path, keyword, number, string, op, punct, end
        self.text = text
        self.pos = pos
        self.value = value


def _tokenize(source: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(source):
        found = _TOKEN.match(source, pos)
        if found is None:
            raise TriggerSyntaxError(f"unexpected character {source[pos]!r}", source, pos)
        kind = found.lastgroup or ""
        text = found.group()
        if kind == "string":
            value, end = _read_string(source, pos)
            tokens.append(_Token("string", source[pos:end], pos, value))
            pos = end
            continue
        if kind == "number":
            tokens.append(_Token("number", text, pos, _read_number(text, source, pos)))
        elif kind == "path" and text in KEYWORDS:
            tokens.append(_Token("keyword", text, pos))
        elif kind != "space":
            tokens.append(_Token(kind, text, pos))
        pos = found.end()
    tokens.append(_Token("end", "", len(source)))
    return tokens


def _read_number(text: str, source: str, pos: int) -> int | float:
    try:
        return float(text) if any(c in text for c in ".eE") else int(text)
    except ValueError as ex:  # more digits than Python converts safely
        raise TriggerSyntaxError("number too long", source, pos) from ex


def _read_string(source: str, start: int) -> tuple[str, int]:
    """Read a double-quoted string starting at `start`; return its value and the end index."""
    chars: list[str] = []
    pos = start + 1
    while pos < len(source):
        char = source[pos]
        if char == '"':
            return "".join(chars), pos + 1
        if char == "\\":
            code = source[pos + 1 : pos + 2]
            if code == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", source[pos + 2 : pos + 6]):
                chars.append(chr(int(source[pos + 2 : pos + 6], 16)))
                pos += 6
                continue
            if code not in _ESCAPES:
                raise TriggerSyntaxError("unknown escape in string", source, pos)
            chars.append(_ESCAPES[code])
            pos += 2
            continue
        chars.append(char)
        pos += 1
    raise TriggerSyntaxError("unterminated string", source, start)


def _path_getter(path: str) -> Getter:
    keys = tuple(path.split("."))
    if len(keys) == 1:
        key = keys[0]
        return lambda event: event.get(key, _UNDEFINED)

    def get(event: Event) -> Any:
        value: Any = event
        for key in keys:
            if not isinstance(value, Mapping):
                return _UNDEFINED
            value = value.get(key, _UNDEFINED)
        return value

    return get


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _same(left: Any, right: Any) -> bool:
    """JSON equality: undefined equals null, booleans are not numbers, no conversions."""
    if left is _UNDEFINED:
        left = None
    if right is _UNDEFINED:
        right = None
    if left is None or right is None or isinstance(left, bool) or isinstance(right, bool):
        return left is right
    if _is_number(left) and _is_number(right):
        return bool(left == right)
    if isinstance(left, str) or isinstance(right, str):
        return isinstance(left, str) and isinstance(right, str) and left == right
    if isinstance(left, Mapping) and isinstance(right, Mapping):
        return left.keys() == right.keys() and all(_same(left[k], right[k]) for k in left)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(map(_same, left, right))
    return False


def _glob_regex(pattern: str) -> re.Pattern[str]:
    parts = (".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile("".join(parts), re.DOTALL)


class _Operand:
    """A compiled operand: how to get its value, and the literal itself when it is one."""

    __slots__ = ("get", "is_call", "is_literal", "literal", "pos")

    def __init__(
        self, get: Getter, pos: int, literal: Any = _UNDEFINED, call: bool = False
    ) -> None:
        self.get = get
        self.is_call = call
        self.pos = pos
        self.literal = literal
        self.is_literal = literal is not _UNDEFINED


def _literal(value: Any, pos: int) -> _Operand:
    return _Operand(lambda _event: value, pos, value)


def _equals(left: _Operand, right: _Operand) -> Predicate:
    if left.is_literal and not right.is_literal:
        left, right = right, left
    get = left.get
    if right.is_literal:  # the common case, `type = "track"`: specialise for speed
        want = right.literal
        if isinstance(want, str):
            return lambda event: get(event) == want
        if want is None:
            return lambda event: get(event) in (None, _UNDEFINED)
        if isinstance(want, bool):
            return lambda event: get(event) is want
    other = right.get
    return lambda event: _same(get(event), other(event))


def _ordered(symbol: str, left: _Operand, right: _Operand) -> Predicate:
    compare = _COMPARISONS[symbol]
    get_left, get_right = left.get, right.get

    def check(event: Event) -> bool:
        a, b = get_left(event), get_right(event)
        if isinstance(a, str) and isinstance(b, str):
            return compare(a, b)
        return _is_number(a) and _is_number(b) and compare(a, b)

    return check


# Plain loops, not all()/any() over a generator: this is the per-event hot path.
def _any_of(parts: list[Predicate]) -> Predicate:
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2:
        first, second = parts
        return lambda event: first(event) or second(event)
    alternatives = tuple(parts)

    def any_of(event: Event) -> bool:
        for predicate in alternatives:  # noqa: SIM110 (hot path: no generator)
            if predicate(event):
                return True
        return False

    return any_of


def _all_of(parts: list[Predicate]) -> Predicate:
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2:
        first, second = parts
        return lambda event: first(event) and second(event)
    requirements = tuple(parts)

    def all_of(event: Event) -> bool:
        for predicate in requirements:  # noqa: SIM110 (hot path: no generator)
            if not predicate(event):
                return False
        return True

    return all_of


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source
        self.tokens = _tokenize(source)
        self.index = 0
        self.depth = 0

    @property
    def token(self) -> _Token:
        return self.tokens[self.index]

    def fail(self, reason: str, token: _Token | None = None) -> TriggerSyntaxError:
        return TriggerSyntaxError(reason, self.source, (token or self.token).pos)

    def take(self, kind: str, text: str | None = None) -> _Token | None:
        token = self.token
        if token.kind == kind and (text is None or token.text == text):
            self.index += 1
            return token
        return None

    def expect(self, kind: str, text: str, what: str) -> None:
        if self.take(kind, text) is None:
            raise self.fail(f"expected {what}")

    def nest(self, opening: _Token) -> None:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise self.fail(f"nested more than {MAX_NESTING} levels deep", opening)

    def parse(self) -> Predicate:
        if self.token.kind == "end":
            raise self.fail("expected a condition, the trigger is empty")
        predicate = self.parse_or()
        if self.token.kind != "end":
            raise self.fail(self._unexpected_after_condition())
        return predicate

    def _unexpected_after_condition(self) -> str:
        token = self.token
        if token.kind == "path" and token.text.lower() in {"and", "or"}:
            return f'expected "and", "or" or the end; keywords are lowercase, not "{token.text}"'
        if token.kind == "op":
            return 'expected "and", "or" or the end; comparisons cannot be chained'
        return 'expected "and", "or" or the end of the trigger'

    def parse_or(self) -> Predicate:
        parts = [self.parse_and()]
        while self.take("keyword", "or"):
            parts.append(self.parse_and())
        return _any_of(parts)

    def parse_and(self) -> Predicate:
        parts = [self.parse_unary()]
        while self.take("keyword", "and"):
            parts.append(self.parse_unary())
        return _all_of(parts)

    def parse_unary(self) -> Predicate:
        opening = self.token
        if self.take("punct", "!") or self.take("keyword", "not"):
            self.nest(opening)
            inner = self.parse_unary()
            self.depth -= 1
            return lambda event: not inner(event)
        if self.take("punct", "("):
            self.nest(opening)
            inner = self.parse_or()
            self.expect("punct", ")", 'a closing ")"')
            self.depth -= 1
            return inner
        return self.parse_comparison()

    def parse_comparison(self) -> Predicate:
        start = self.token
        left = self.parse_operand()
        op = self.take("op")
        if op is None:
            if left.is_literal and not isinstance(left.literal, bool):
                raise self.fail("expected a comparison operator after a value")
            if not left.is_literal and start.kind == "path" and not left.is_call:
                hint = "; keywords are lowercase" if start.text.lower() in KEYWORDS else ""
                raise self.fail(f"expected a comparison operator after {start.text}{hint}")
            get = left.get  # a call or true/false: a condition on its own
            return lambda event: get(event) is True
        right = self.parse_operand()
        if op.text == "=":
            return _equals(left, right)
        if op.text == "!=":
            equal = _equals(left, right)
            return lambda event: not equal(event)
        return _ordered(op.text, left, right)

    def parse_operand(self) -> _Operand:
        token = self.token
        if token.kind in ("string", "number"):
            self.index += 1
            return _literal(token.value, token.pos)
        if token.kind == "keyword" and token.text in ("true", "false", "null"):
            self.index += 1
            return _literal({"true": True, "false": False, "null": None}[token.text], token.pos)
        if token.kind == "path":
            self.index += 1
            if token.text in FUNCTIONS and self.take("punct", "("):
                return self.parse_call(token)
            return _Operand(_path_getter(token.text), token.pos)
        raise self.fail("expected a value")

    def parse_call(self, name: _Token) -> _Operand:
        self.nest(name)
        subject = self.parse_operand()
        self.expect("punct", ",", f'"," between the arguments of {name.text}()')
        if name.text == "match":
            pattern = self.take("string")
            if pattern is None:
                raise self.fail("expected a quoted pattern as match()'s second argument")
            argument = _literal(pattern.value, pattern.pos)
        else:
            argument = self.parse_operand()
        self.expect("punct", ")", f'a closing ")" for {name.text}()')
        self.depth -= 1
        get_subject, get_argument = subject.get, argument.get
        if name.text == "match":
            full_match = _glob_regex(str(argument.literal)).fullmatch

            def matches(event: Event) -> bool:
                value = get_subject(event)
                return isinstance(value, str) and full_match(value) is not None

            return _Operand(matches, name.pos, call=True)

        def contains(event: Event) -> bool:
            value, part = get_subject(event), get_argument(event)
            return isinstance(value, str) and isinstance(part, str) and part in value

        return _Operand(contains, name.pos, call=True)


def compile_trigger(source: str) -> Predicate:
    """Parse `source` once into a predicate over a raw Segment event; raise TriggerSyntaxError."""
    if len(source) > MAX_SOURCE_CHARS:
        raise TriggerSyntaxError(f"longer than {MAX_SOURCE_CHARS} characters", source, 0)
    return _Parser(source).parse()
