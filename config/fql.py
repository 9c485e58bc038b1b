"""Triggers: Segment's destination-subscription language (FQL), read exactly as Segment reads it.

A trigger is read in two passes:

1. Segment's own reading, reproduced step by step (the lexer of @segment/fql-ts, then
   destination-subscriptions' parse-fql and validate): conditions on `type`, `event`, `name`,
   `userId`, `properties.…`, `traits.…` and `context.…`; `contains()`, `match()` and their `!`
   forms; `and`/`or`; one level of parentheses. The compiled predicate evaluates that reading,
   so a trigger means in the fleet exactly what it means in Segment.
2. A check that the reading is the one the text suggests. Segment silently reads some triggers
   otherwise: the last of mixed `and`/`or` decides a whole level, a `!` before a parenthesis or a
   comparison is dropped, `!= true` compares with the text "true", conditions on other fields
   are skipped, nested parentheses and unreadable text match nothing. Those are refused at
   start-up with a message that says how Segment reads the trigger and what to write instead.

`compile_trigger(source)` does both once; the predicate costs a few dictionary look-ups per event.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Final

from config.jsvalues import ABSENT, is_number, js_string, js_to_number, lookup

Event = Mapping[str, Any]
Predicate = Callable[[Event], bool]

MAX_SOURCE_CHARS: Final = 10_000
_CONTEXT_CHARS = 40
ROOTS: Final = ("type", "event", "name", "userId", "properties", "traits", "context")
_FIELD_ROOTS: Final = ("properties", "traits", "context")
_EVENT_FIELDS: Final = {"type": "type", "event": "event", "name": "name", "userId": "userId"}
# Names every JavaScript object inherits: Segment's lookup table of roots "finds" them too.
_INHERITED: Final = frozenset(
    {"constructor", "hasOwnProperty", "isPrototypeOf", "propertyIsEnumerable", "toLocaleString",
     "toString", "valueOf", "__proto__", "__defineGetter__", "__defineSetter__",
     "__lookupGetter__", "__lookupSetter__"}
)  # fmt: skip


class TriggerSyntaxError(ValueError):
    """Raised when a trigger is unreadable, or Segment reads it otherwise than it is written."""

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


# -- Segment's lexer (@segment/fql-ts) -------------------------------------------------------------


class _LexError(Exception):
    def __init__(self, message: str, position: int) -> None:
        super().__init__(message)
        self.position = position


class Token:
    __slots__ = ("end", "kind", "pos", "value")

    def __init__(self, kind: str, value: str, pos: int, end: int) -> None:
        self.kind = (
            kind  # ident dot operator conditional string number null bracket paren comma eos
        )
        self.value = value
        self.pos = pos
        self.end = end

    def __repr__(self) -> str:
        return f"Token({self.kind!r}, {self.value!r})"


_EOS: Final = "\x00eos"


def _is_alpha(char: str) -> bool:
    return len(char) == 1 and ("a" <= char <= "z" or "A" <= char <= "Z")


def _is_digit(char: str) -> bool:
    return len(char) == 1 and "0" <= char <= "9"


def _is_ident_char(char: str) -> bool:
    return _is_alpha(char) or _is_digit(char) or char in ("_", "-", "\\")


def _is_terminator(char: str) -> bool:
    return char in (_EOS, " ", "\t", "\n", ",", "]", ")")


class _Lexer:
    """The fql-ts lexer, character for character (its quirks included)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.position = 0

    def next(self) -> str:
        if self.position >= len(self.source):
            return _EOS
        char = self.source[self.position]
        self.position += 1
        return char

    def peek(self) -> str:
        return self.source[self.position] if self.position < len(self.source) else _EOS

    def accept(self, word: str) -> bool:
        consumed = ""
        for _ in word:
            char = self.next()
            if char == _EOS:
                return False  # as in fql-ts: what was read is not given back
            consumed += char
            if _is_terminator(char):
                break
        if consumed == word and _is_terminator(self.peek()):
            return True
        self.position -= len(consumed)
        return False

    def tokens(self) -> list[Token]:
        tokens: list[Token] = []
        while True:
            start = self.position
            char = self.next()
            if char == _EOS:
                tokens.append(Token("eos", "eos", start, start))
                return tokens
            if char in (" ", "\t", "\n"):
                continue
            if char == "!" and (_is_alpha(self.peek()) or self.peek() == "("):
                tokens.append(Token("operator", "!", start, self.position))
                continue
            if _is_alpha(char) or char in ("!", "=", ">", "<", "\\", "_"):
                kind, value = self.operator_or_word(char, start)
            elif _is_digit(char) or char in ("-", "+"):
                kind, value = "number", self.number(char)
            elif char in ('"', "'"):
                kind, value = "string", self.string(char, start)
            elif char in ".[],()":
                kind = {".": "dot", "[": "bracket", "]": "bracket", ",": "comma"}.get(char, "paren")
                value = char
            else:
                raise _LexError(f'invalid character "{char}"', start)
            tokens.append(Token(kind, value, start, self.position))

    def string(self, quote: str, start: int) -> str:
        text = ""
        while self.peek() != quote:
            char = self.next()
            if char == _EOS:
                raise _LexError("unterminated string", start)
            text += char
        self.next()
        return f"{quote}{text}{quote}"

    def number(self, first: str) -> str:
        text = ""
        decimal = False
        while _is_digit(self.peek()) or self.peek() == ".":
            char = self.next()
            text += char
            if char == ".":
                if _is_terminator(self.peek()):
                    raise _LexError("unexpected terminator after decimal point", self.position)
                if decimal:
                    raise _LexError("multiple decimal points in one number", self.position)
                decimal = True
        return first + text

    def operator_or_word(self, first: str, start: int) -> tuple[str, str]:
        if first == "=":
            return "operator", "="
        if first == "!":
            if self.accept("="):
                return "operator", "!="
            raise _LexError("expected '=' after '!'", start)
        if first == "a" and self.accept("nd"):
            return "conditional", "and"
        if first == "o" and self.accept("r"):
            return "conditional", "or"
        if first == "n" and self.accept("ull"):
            return "null", "null"
        if first in ("<", ">"):
            return "operator", first + "=" if self.accept("=") else first
        return "ident", self.word(first)

    def word(self, first: str) -> str:
        text = ""
        char = first
        while True:
            if char == "\\":
                if self.peek() == _EOS:
                    raise _LexError(
                        "expected character after escape character, got EOS", self.position
                    )
                char = self.next()
            text += char
            if not _is_ident_char(self.peek()):
                break
            char = self.next()
        coming = self.peek()
        if not (_is_terminator(coming) or coming in (".", "(", "=", "!")):
            raise _LexError(
                f"expected termination character after identifier, got {coming}", self.position
            )
        return text


def _normalize(tokens: list[Token]) -> list[Token]:
    """Segment's normalize: `ident . ident` becomes one ident (a path)."""
    out: list[Token] = []
    index = 0
    while index < len(tokens):
        current = tokens[index]
        following = tokens[index + 1] if index + 1 < len(tokens) else None
        last = out[-1] if out else None
        if (
            last is not None
            and last.kind == "ident"
            and current.kind == "dot"
            and following is not None
            and following.kind == "ident"
        ):
            out[-1] = Token("ident", f"{last.value}.{following.value}", last.pos, following.end)
            index += 2
        else:
            out.append(current)
            index += 1
    return out


def tokenize(source: str) -> list[Token]:
    """Segment's tokens for `source` (normalized); TriggerSyntaxError if its lexer fails."""
    try:
        return _normalize(_Lexer(source).tokens())
    except _LexError as ex:
        raise TriggerSyntaxError(
            f"Segment cannot read this trigger ({ex}), so it matches no event there",
            source,
            ex.position,
        ) from ex


# -- Segment's reading (destination-subscriptions parse-fql) ---------------------------------------

# A condition: (kind, name, operator, value). kind is "type", "event", "name", "userId" or a
# field root; name is the path below the root. A group: ("group", operator, children).
Condition = tuple[Any, ...]


class _ParseError(Exception):
    pass


def _token_value(token: Token) -> str | float | bool:
    if token.kind == "string":
        text = token.value
        text = text[1:] if text.startswith('"') else text
        return text[:-1] if text.endswith('"') else text
    if token.kind == "number":
        return _js_number_of(token.value)
    if token.kind == "ident" and token.value in ("true", "false"):
        return token.value == "true"
    return token.value


def _js_number_of(text: str) -> float:
    try:
        return float(text) if re.fullmatch(r"[+-]?\d*\.?\d+|[+-]?\d+\.", text) else float("nan")
    except ValueError:
        return float("nan")


def _js_text(value: str | float | bool) -> str:

    return js_string(value)


def _segment_parse(tokens: list[Token]) -> Condition | None:
    return _SegmentParser(tokens).parse()


class _SegmentParser:
    """parse-fql's loop: each token read in turn, most kinds of token skipped without a word."""

    def __init__(self, tokens: list[Token]) -> None:
        self.queue = list(tokens)
        self.nodes: list[Condition | None] = []
        self.operator = "and"  # the last "and"/"or" read decides the whole level

    def shift(self) -> Token | None:
        return self.queue.pop(0) if self.queue else None

    def parse(self) -> Condition | None:
        token = self.shift()
        while token is not None and token.kind != "eos":
            if token.kind == "ident":
                self.ident(token)
            elif token.kind == "operator" and token.value == "!":
                self.negated_call()
            elif token.kind == "paren" and token.value == "(":
                self.group()
            elif token.kind == "conditional":
                self.operator = token.value
            token = self.shift()
        if len(self.nodes) > 1:
            return ("group", self.operator, tuple(self.nodes))
        return self.nodes[0] if self.nodes else None

    def ident(self, token: Token) -> None:
        """A condition on a known root, or a call; any other word is skipped. A name every
        JavaScript object inherits (constructor, ...) takes its operator and value along but
        makes no condition."""
        root = token.value.split(".")[0]
        if root in _EVENT_FIELDS or root in _FIELD_ROOTS or root in _INHERITED:
            operator_token = self.shift()
            if operator_token is None:
                raise _ParseError("Operator token is missing")
            value_token = self.shift()
            if value_token is None:
                raise _ParseError("Value token is missing")
            if root not in _INHERITED:
                self.nodes.append(_condition(root, token.value, operator_token, value_token))
        elif token.value in ("contains", "match"):
            _parse_call(token.value, self.nodes, self.shift, negate=False)

    def negated_call(self) -> None:
        """A "!" counts only right before contains or match; elsewhere it is skipped."""
        following = self.queue[0] if self.queue else None
        if following and following.kind == "ident" and following.value in ("contains", "match"):
            self.queue.pop(0)
            _parse_call(following.value, self.nodes, self.shift, negate=True)

    def group(self) -> None:
        """Everything up to the first ")", read as a trigger of its own."""
        group: list[Token] = []
        inner = self.shift()
        while inner is None or not (inner.kind == "paren" and inner.value == ")"):
            if inner is None:
                raise _ParseError("Cannot read properties of undefined (reading 'type')")
            group.append(inner)
            inner = self.shift()
        group.append(Token("eos", "eos", inner.pos, inner.pos))
        self.nodes.append(_segment_parse(group))


def _condition(root: str, path: str, op_token: Token, value_token: Token) -> Condition:
    op, raw = op_token.value, value_token.value
    if root in _EVENT_FIELDS:
        if root in ("name", "userId") and op == "!=" and raw == "null":
            return (root, "", "exists", None)
        if root in ("name", "userId") and op == "=" and raw == "null":
            return (root, "", "not_exists", None)
        if root == "userId" and op == "=" and raw in ("true", "false"):
            return (root, "", "is_true" if raw == "true" else "is_false", None)
        return (root, "", op, _js_text(_token_value(value_token)))
    name = path[len(root) + 1 :] if path.startswith(root + ".") else path
    if op == "!=" and raw == "null":
        return (root, name, "exists", None)
    if op == "=" and raw == "null":
        return (root, name, "not_exists", None)
    if op == "=" and raw in ("true", "false"):
        return (root, name, "is_true" if raw == "true" else "is_false", None)
    if op in ("=", "!=") and value_token.kind == "number":
        kind = "number_equals" if op == "=" else "number_not_equals"
        return (root, name, kind, _token_value(value_token))
    return (root, name, op, _token_value(value_token))


def _parse_call(
    name: str, nodes: list[Condition | None], shift: Callable[[], Token | None], negate: bool
) -> None:
    shift()  # "("
    subject = shift()
    if subject is None:
        raise _ParseError(f"{name}() is missing a 1st argument")
    shift()  # ","
    argument = shift()
    if argument is None:
        raise _ParseError(f"{name}() is missing a 2nd argument")
    shift()  # ")"
    if name == "contains":
        operator = "not_contains" if negate else "contains"
        value = _js_text(_token_value(argument))
    elif argument.value.endswith('*"'):
        operator = "not_starts_with" if negate else "starts_with"
        value = _js_text(_token_value(argument))[:-1]
    else:
        operator = "not_ends_with" if negate else "ends_with"
        value = _js_text(_token_value(argument))[1:]
    target = subject.value
    if target in ("event", "name", "userId"):
        nodes.append((target, "", operator, value))
    for root in _FIELD_ROOTS:
        if target.startswith(root):
            path = target[len(root) + 1 :] if target.startswith(root + ".") else target
            nodes.append((root, path, operator, value))


def segment_reading(source: str) -> Condition | None:
    """Segment's parse of a trigger: a condition tree, or None where Segment matches no event."""
    try:
        tokens = _normalize(_Lexer(source).tokens())
    except _LexError:
        return None
    try:
        tree = _segment_parse(tokens)
    except _ParseError:
        return None
    if tree is None:
        return None
    return tree if tree[0] == "group" else ("group", "and", (tree,))


# -- evaluating Segment's reading (destination-subscriptions validate) -----------------------------

_SPLIT_FIELD = re.compile(r"[^[.\]]+")


def _getter(root: str, name: str) -> Callable[[Event], Any]:
    if root in _EVENT_FIELDS:
        return lambda event: event.get(root, ABSENT)
    keys = tuple(_SPLIT_FIELD.findall(name))
    if not name or not keys:
        return lambda _event: ABSENT

    return lambda event: lookup(event.get(root, ABSENT), keys)


def _test(operator: str, expected: Any) -> Callable[[Any], bool]:
    """validateValue(actual, operator, expected) as a function of `actual`."""
    if operator == "=":
        text = _js_text(expected)
        return lambda actual: isinstance(actual, str) and actual == text
    if operator == "!=":
        text = _js_text(expected)
        return lambda actual: not (isinstance(actual, str) and actual == text)
    if operator in ("number_equals", "number_not_equals", "<", "<=", ">", ">="):
        number = _as_number(expected)
        compare: Callable[[Any], bool] = {
            "number_equals": lambda a: a == number,
            "number_not_equals": lambda a: a != number,
            "<": lambda a: a < number,
            "<=": lambda a: a <= number,
            ">": lambda a: a > number,
            ">=": lambda a: a >= number,
        }[operator]
        return lambda actual: is_number(actual) and compare(actual)
    if operator in ("contains", "not_contains", "starts_with", "not_starts_with", "ends_with",
                    "not_ends_with"):  # fmt: skip
        text = _js_text(expected)
        check: Callable[[str], bool] = {
            "contains": lambda a: text in a,
            "not_contains": lambda a: text not in a,
            "starts_with": lambda a: a.startswith(text),
            "not_starts_with": lambda a: not a.startswith(text),
            "ends_with": lambda a: a.endswith(text),
            "not_ends_with": lambda a: not a.endswith(text),
        }[operator]
        return lambda actual: isinstance(actual, str) and check(actual)
    if operator == "exists":
        return lambda actual: actual is not ABSENT and actual is not None
    if operator == "not_exists":
        return lambda actual: actual is ABSENT or actual is None
    if operator == "is_true":
        return lambda actual: actual is True
    if operator == "is_false":
        return lambda actual: actual is False
    return lambda _actual: False


def _as_number(value: Any) -> float:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if is_number(value):
        return float(value)

    return js_to_number(str(value))


def _compile_condition(node: Condition) -> Predicate:
    if node[0] == "group":
        _, operator, children = node
        parts = tuple(_compile_condition(child) for child in children)
        if operator == "and":
            return _all_of(parts)
        if operator == "or":
            return _any_of(parts)
        return lambda _event: False
    root, name, operator, expected = node
    get = _getter(root, name)
    if operator == "=" and root in _EVENT_FIELDS:
        text = _js_text(expected)  # the common `type = "track"`: one look-up, one comparison
        return lambda event: event.get(root) == text
    test = _test(operator, expected)
    return lambda event: test(get(event))


# Plain loops, not all()/any() over a generator: this is the per-event hot path.
def _any_of(parts: tuple[Predicate, ...]) -> Predicate:
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2:
        first, second = parts
        return lambda event: first(event) or second(event)

    def any_of(event: Event) -> bool:
        for predicate in parts:  # noqa: SIM110 (hot path: no generator)
            if predicate(event):
                return True
        return False

    return any_of


def _all_of(parts: tuple[Predicate, ...]) -> Predicate:
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2:
        first, second = parts
        return lambda event: first(event) and second(event)

    def all_of(event: Event) -> bool:
        for predicate in parts:  # noqa: SIM110 (hot path: no generator)
            if not predicate(event):
                return False
        return True

    return all_of


# -- the check that Segment's reading is the written one -------------------------------------------

_ALL_TYPES_HINT = (
    'name the types instead, e.g. type = "track" or type = "identify" or type = "page" '
    'or type = "screen" or type = "group" or type = "alias"'
)


class _Checker:
    """Accepts only triggers whose Segment reading is the one the text suggests."""

    def __init__(self, source: str, tokens: list[Token]) -> None:
        self.source = source
        self.tokens = tokens
        self.index = 0
        self.calls_so_far: list[Token] = []  # calls read so far in the open group
        self.early_call: Token | None = None  # a call followed by more of its group

    @property
    def token(self) -> Token:
        return self.tokens[self.index]

    def fail(self, reason: str, token: Token | None = None) -> TriggerSyntaxError:
        return TriggerSyntaxError(reason, self.source, (token or self.token).pos)

    def check(self) -> None:
        if self.token.kind == "eos":
            raise self.fail("expected a condition, the trigger is empty")
        self.level(in_group=False)
        if self.token.kind != "eos":
            raise self.fail(self.unexpected())

    def unexpected(self) -> str:
        token = self.token
        if token.kind == "paren" and token.value == ")":
            return 'a ")" without its "("; Segment skips it: remove it'
        if token.kind == "ident" and token.value.lower() in ("and", "or", "not"):
            return f'expected "and", "or" or the end; keywords are lowercase, not "{token.value}"'
        if token.kind == "operator":
            return 'expected "and", "or" or the end; comparisons cannot be chained'
        return 'expected "and", "or" or the end of the trigger'

    def level(self, in_group: bool) -> None:
        joiners: list[Token] = []
        self.item(in_group)
        while self.token.kind == "conditional":
            joiners.append(self.token)
            self.index += 1
            if in_group and self.calls_so_far and self.early_call is None:
                self.early_call = self.calls_so_far[-1]
            self.item(in_group)
        words = {token.value for token in joiners}
        if len(words) > 1:
            last = joiners[-1].value
            raise self.fail(
                f'mixes "and" and "or" at one level: Segment applies the last one ("{last}") to '
                "the whole level, so it reads every condition here joined by "
                f'"{last}"; group with parentheses, e.g. (a and b) or c',
                joiners[0],
            )

    def item(self, in_group: bool) -> None:
        token = self.token
        if token.kind == "paren" and token.value == "(":
            self.group(in_group)
        elif token.kind == "operator" and token.value == "!":
            self.negated_call(in_group)
        elif token.kind == "ident" and token.value in ("contains", "match"):
            self.call(in_group)
        elif token.kind == "ident":
            self.comparison()
        elif token.kind in ("conditional", "eos"):
            raise self.fail("expected a condition")
        else:
            raise self.fail("expected a condition, a contains()/match() or a (")

    def group(self, in_group: bool) -> None:
        if in_group:
            raise self.fail(
                "Segment cannot read parentheses inside parentheses (it matches no event "
                "then); write the conditions with one level of grouping",
            )
        whole = self.index == 0
        self.index += 1
        if self.token.kind == "paren" and self.token.value == ")":
            raise self.fail("empty parentheses")
        self.calls_so_far = []
        self.early_call = None
        self.level(in_group=True)
        if not (self.token.kind == "paren" and self.token.value == ")"):
            raise self.fail('expected a closing ")"')
        self.index += 1
        # Segment ends a group at the first ")", a call's own included; what follows the
        # call then joins the outer level. Harmless only when the group is the whole trigger.
        if self.early_call is not None and not (whole and self.token.kind == "eos"):
            raise self.fail(
                "a contains()/match() inside parentheses must be the group's last condition:"
                ' Segment ends the group at the call\'s ")" and reads the rest as part of '
                "the outer level",
                self.early_call,
            )
        self.calls_so_far = []

    def negated_call(self, in_group: bool) -> None:
        following = self.tokens[self.index + 1]
        if following.kind == "ident" and following.value in ("contains", "match"):
            self.index += 1
            self.call(in_group)
            return
        raise self.fail(
            'Segment drops a "!" that is not right before contains( or match(: it reads '
            'what follows as if there were no "!"; write the opposite comparison instead '
            "(!= for =, = false, ...)"
        )

    def subject(self, token: Token) -> str:
        """The condition's root, after checking Segment reads the path as written."""
        if token.kind != "ident":
            raise self.fail("expected a field such as event or properties.total", token)
        root = token.value.split(".")[0]
        if token.value in _EVENT_FIELDS:
            return token.value
        if root in _EVENT_FIELDS:
            raise self.fail(f"Segment reads {token.value} as {root} (the rest is skipped)", token)
        if root in _FIELD_ROOTS and not _SPLIT_FIELD.findall(token.value[len(root) + 1 :]):
            raise self.fail(f"name a field below {root}: {root}.NAME", token)
        if (
            root in _FIELD_ROOTS
            and token.value.startswith(root + ".")
            and len(token.value) > len(root) + 1
        ):
            return root
        if root in _FIELD_ROOTS or token.value in _FIELD_ROOTS:
            raise self.fail(f"name a field below {root}: {root}.NAME", token)
        if token.value in ("true", "false", "not"):
            raise self.fail(
                f"Segment skips a bare {token.value} (a trigger of nothing else matches no "
                f"event); {_ALL_TYPES_HINT if token.value == 'true' else 'write a comparison'}",
                token,
            )
        if token.value.lower() in ("and", "or", "not", "null", "true", "false"):
            raise self.fail(f'keywords are lowercase, not "{token.value}"', token)
        raise self.fail(
            f"Segment's triggers can only test type, event, name, userId, properties.…, "
            f"traits.… and context.…; it skips a condition on {token.value!r}",
            token,
        )

    def comparison(self) -> None:
        subject_token = self.token
        root = self.subject(subject_token)
        self.index += 1
        op = self.token
        if op.kind != "operator" or op.value == "!":
            raise self.fail("expected a comparison operator (=, !=, <, <=, >, >=)")
        self.index += 1
        value = self.token
        self.index += 1
        field = subject_token.value
        if value.kind == "string":
            self.compared_with_text(op.value, value)
        elif value.kind == "number":
            self.compared_with_number(field, root, op.value, value)
        elif value.kind == "null":
            self.compared_with_null(field, root, op.value, value)
        elif value.kind == "ident" and value.value in ("true", "false"):
            self.compared_with_boolean(field, root, op.value, value)
        elif value.kind == "ident":
            raise self.fail(
                f'Segment reads {value.value} as the text "{value.value}", not a field: '
                "comparing two fields is not possible; quote a text",
                value,
            )
        else:
            raise self.fail("expected a value: a quoted text, a number, true, false or null", value)

    def compared_with_text(self, op: str, value: Token) -> None:
        if value.value.startswith("'"):
            raise self.fail(
                "Segment keeps single quotes as part of the text; use double quotes", value
            )
        if op not in ("=", "!="):
            raise self.fail(
                f"Segment compares {op} with numbers only; write a number without quotes",
                value,
            )

    def compared_with_number(self, field: str, root: str, op: str, value: Token) -> None:
        if _js_number_of(value.value) != _js_number_of(value.value):
            raise self.fail("not a number", value)
        if op in ("=", "!=") and root in _EVENT_FIELDS:
            raise self.fail(
                f'Segment compares {field} with the text "{value.value}"; write it in quotes',
                value,
            )

    def compared_with_null(self, field: str, root: str, op: str, value: Token) -> None:
        if op not in ("=", "!="):
            raise self.fail(f"Segment never matches {op} null", value)
        if root in ("type", "event"):
            raise self.fail(
                f'Segment compares {field} with the text "null" here, so this does not test '
                "whether it is there",
                value,
            )

    def compared_with_boolean(self, field: str, root: str, op: str, value: Token) -> None:
        if op == "=" and root not in ("type", "event", "name"):
            return
        if op == "!=":
            other = "false" if value.value == "true" else "true"
            raise self.fail(
                f'Segment compares != {value.value} with the text "{value.value}", so it holds '
                f"even when {field} is {value.value}; write {field} = {other} (and, if a "
                f"missing value should count, or {field} = null)",
                value,
            )
        raise self.fail(
            f"Segment compares {field} {op} {value.value} as a text or number, not as true/false",
            value,
        )

    def call(self, in_group: bool) -> None:
        name = self.token
        self.index += 1
        if not (self.token.kind == "paren" and self.token.value == "("):
            raise self.fail(f'expected "(" after {name.value}')
        self.index += 1
        subject_token = self.token
        root = self.subject(subject_token)
        if root == "type":
            raise self.fail(f"Segment skips {name.value}() on type; compare with =", subject_token)
        self.index += 1
        if self.token.kind != "comma":
            raise self.fail(f'expected "," between the arguments of {name.value}()')
        self.index += 1
        argument = self.token
        if argument.kind != "string" or argument.value.startswith("'"):
            raise self.fail(f"{name.value}() takes a text in double quotes", argument)
        self.index += 1
        if not (self.token.kind == "paren" and self.token.value == ")"):
            raise self.fail(f'expected a closing ")" for {name.value}()')
        self.index += 1
        if name.value == "match":
            pattern = argument.value[1:-1]
            prefix = pattern.endswith("*") and "*" not in pattern[:-1]
            suffix = pattern.startswith("*") and "*" not in pattern[1:]
            if not (prefix or suffix):
                raise self.fail(
                    'Segment\'s match() tests a prefix ("text*") or a suffix ("*text") only; '
                    f'it reads "{pattern}" as "ends with {pattern[1:]}"'
                    if "*" not in pattern
                    else 'Segment\'s match() tests a prefix ("text*") or a suffix ("*text") only;'
                    " any other * is a literal star there",
                    argument,
                )
        if in_group:
            self.calls_so_far.append(name)


def compile_trigger(source: str) -> Predicate:
    """Parse `source` once into a predicate over a raw Segment event; raise TriggerSyntaxError."""
    if not isinstance(source, str):
        raise TriggerSyntaxError("must be a string", "", 0)
    if len(source) > MAX_SOURCE_CHARS:
        raise TriggerSyntaxError(f"longer than {MAX_SOURCE_CHARS} characters", source, 0)
    tokens = tokenize(source)
    checker = _Checker(source, tokens)
    checker.check()
    tree = segment_reading(source)
    if tree is None:  # the checker accepts nothing Segment cannot read; kept as a guard
        raise TriggerSyntaxError("Segment cannot read this trigger", source, 0)
    return _compile_condition(tree)
