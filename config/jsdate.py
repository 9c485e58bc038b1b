"""Which strings Segment accepts as a date, and the instant it reads in them.

Segment checks a `datetime` field with dayjs (`dayjs(text).isValid()`, plus a shortcut for
numeric strings, read as epoch seconds). dayjs reads "YYYY[-/]MM[-/]DD[T ]hh:mm:ss.sss" itself and
hands everything else to JavaScript's `new Date(text)`, whose parser (V8's, in Node) accepts ISO
8601 and a lenient legacy syntax: "May 1, 2024", RFC 2822, "2024/05/01 12:00 GMT+2", ... This
module reads strings the same way, so the fleet accepts exactly what Segment accepts. Times
without a zone are read as UTC, the zone Segment's servers keep.
"""

from __future__ import annotations

import math
import re
from typing import Final

from config.jsvalues import JS_WHITESPACE, js_number, js_to_number

MAX_TIME_MS: Final = 8.64e15  # ECMAScript's TimeClip: +-100,000,000 days around 1970
_DAY_MS: Final = 86_400_000
_NONE: Final = None


def days_from_civil(year: int, month: int, day: int) -> int:
    """Days from 1970-01-01 to a proleptic Gregorian date (month 1-12), any year."""
    year -= month <= 2
    era = (year if year >= 0 else year - 399) // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def make_date(year: float, month: float, day: float, hour: float, minute: float, second: float,
              ms: float) -> float:  # fmt: skip
    """ECMAScript MakeDate(MakeDay(year, month, day), MakeTime(...)) (NaN for a huge year)."""
    values = (year, month, day, hour, minute, second, ms)
    if not all(math.isfinite(v) for v in values):
        return math.nan
    y, m = int(year) + int(month) // 12, int(month) % 12
    if abs(y) > 400_000:
        return math.nan
    days = days_from_civil(y, m + 1, 1) + int(day) - 1
    time = days * _DAY_MS + int(hour) * 3_600_000 + int(minute) * 60_000 + int(second) * 1000
    return float(time + int(ms))


def time_clip(moment: float) -> float:
    return moment if math.isfinite(moment) and abs(moment) <= MAX_TIME_MS else math.nan


# -- V8's Date parser ------------------------------------------------------------------------------

_MAX_SIGNIFICANT_DIGITS: Final = 9
_MONTHS: Final = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov",
                  "dec")  # fmt: skip
_ZONES: Final = {"ut": 0, "utc": 0, "z": 0, "gmt": 0, "cdt": -5, "cst": -6, "edt": -4, "est": -5,
                 "mdt": -6, "mst": -7, "pdt": -7, "pst": -8}  # fmt: skip


class _Token:
    __slots__ = ("kind", "length", "value")

    def __init__(self, kind: str, value: int | str = 0, length: int = 0) -> None:
        self.kind = kind  # number symbol word space unknown end invalid
        self.value = value
        self.length = length

    def is_symbol(self, char: str) -> bool:
        return self.kind == "symbol" and self.value == char

    def is_sign(self) -> bool:
        return self.kind == "symbol" and self.value in ("+", "-")

    def is_number(self, length: int | None = None) -> bool:
        return self.kind == "number" and (length is None or self.length == length)

    def word_kind(self) -> tuple[str, int]:
        """(type, value) of a word: month, ampm, zone, t, or garbage."""
        assert isinstance(self.value, str)
        prefix = self.value[:3]
        if prefix in _MONTHS:
            return "month", _MONTHS.index(prefix) + 1
        if self.length <= 3:
            if prefix in ("am", "pm"):
                return "ampm", 0 if prefix == "am" else 12
            if prefix in _ZONES:
                return "zone", _ZONES[prefix]
            if prefix == "t":
                return "t", 0
        return "garbage", 0

    def is_z(self) -> bool:
        return self.kind == "word" and self.value == "z" and self.length == 1


class _Scanner:
    def __init__(self, text: str) -> None:
        # V8 reads UTF-16 code units; one character per unit here is close enough for dates.
        self.text = text
        self.index = 0
        self.next_token = self.scan()

    def char(self) -> str:
        return self.text[self.index] if self.index < len(self.text) else ""

    def scan(self) -> _Token:
        char = self.char()
        if char == "":
            return _Token("end")
        if "0" <= char <= "9":
            return self.scan_number()
        if char in ":-+.)":
            self.index += 1
            return _Token("symbol", char, 1)
        if char >= "A":
            return self.scan_word()
        if char in JS_WHITESPACE:
            self.index += 1
            return _Token("space", 0, 1)
        if char == "(":
            self.skip_parenthesized()
        else:
            self.index += 1
        return _Token("unknown")

    def scan_number(self) -> _Token:
        """Digits, their value kept to the first _MAX_SIGNIFICANT_DIGITS, their count as length."""
        start, value, count = self.index, 0, 0
        while "0" <= self.char() <= "9" and self.char() != "":
            if count < _MAX_SIGNIFICANT_DIGITS:
                value = value * 10 + int(self.char())
            count += 1
            self.index += 1
        return _Token("number", value, self.index - start)

    def scan_word(self) -> _Token:
        """A run of characters from "A" on; ASCII ones lowercased as V8 does it (| 0x20)."""
        start = self.index
        word = []
        while self.char() != "" and self.char() >= "A":
            word.append(chr(ord(self.char()) | 0x20) if self.char() < "\x80" else self.char())
            self.index += 1
        return _Token("word", "".join(word)[:3], self.index - start)

    def skip_parenthesized(self) -> None:
        """A comment in parentheses, nested ones included, up to its ")" or the end."""
        balance = 0
        while True:
            current = self.char()
            if current == ")":
                balance -= 1
            elif current == "(":
                balance += 1
            self.index += 1
            if not (balance > 0 and self.index < len(self.text)):
                break

    def next(self) -> _Token:
        token = self.next_token
        self.next_token = self.scan()
        return token

    def peek(self) -> _Token:
        return self.next_token

    def skip_symbol(self, char: str) -> bool:
        if self.next_token.is_symbol(char):
            self.next_token = self.scan()
            return True
        return False

    def peek_number(self, length: int, low: int, high: int) -> bool:
        """Whether the next token is a number of `length` digits from low to high."""
        token = self.next_token
        return token.is_number(length) and low <= int(token.value) <= high


def _milliseconds(token: _Token) -> int:
    number, length = int(token.value), int(token.length)
    if length == 1:
        return number * 100
    if length == 2:
        return number * 10
    if length > 3:
        length = min(length, _MAX_SIGNIFICANT_DIGITS)
        return int(number // 10 ** (length - 3))
    return number


class _Day:
    def __init__(self) -> None:
        self.parts: list[int] = []
        self.named_month: int | None = None
        self.iso = False

    def add(self, n: int) -> bool:
        if len(self.parts) < 3:
            self.parts.append(n)
            return True
        return False

    def write(self) -> tuple[int, int, int] | None:
        if not self.parts:
            return None
        # Missing parts are 1, so V8 always sees three parts (a lone "5" is May 1, 2001).
        parts = self.parts + [1] * (3 - len(self.parts))
        if self.named_month is None:
            if self.iso or not 1 <= parts[0] <= 31:
                year, month, day = parts
            else:
                month, day, year = parts
        else:
            month = self.named_month
            if not 1 <= parts[0] <= 31:
                year, day = parts[0], parts[1]
            else:
                day, year = parts[0], parts[1]
        if not self.iso:
            if 0 <= year <= 49:
                year += 2000
            elif 50 <= year <= 99:
                year += 1900
        if not (1 <= month <= 12 and 1 <= day <= 31):
            return None
        return year, month - 1, day


class _Time:
    def __init__(self) -> None:
        self.parts: list[int] = []
        self.hour_offset: int | None = None

    def empty(self) -> bool:
        return not self.parts

    def expecting(self, n: int) -> bool:
        index = len(self.parts)
        return (
            (index == 1 and 0 <= n <= 59)
            or (index == 2 and 0 <= n <= 59)
            or (index == 3 and 0 <= n <= 999)
        )

    def add(self, n: int) -> bool:
        if len(self.parts) < 4:
            self.parts.append(n)
            return True
        return False

    def add_final(self, n: int) -> bool:
        if not self.add(n):
            return False
        self.parts += [0] * (4 - len(self.parts))
        return True

    def write(self) -> tuple[int, int, int, int] | None:
        hour, minute, second, ms = self.parts + [0] * (4 - len(self.parts))
        if self.hour_offset is not None:
            if not 0 <= hour <= 12:
                return None
            hour = hour % 12 + self.hour_offset
        in_range = 0 <= hour <= 23 and 0 <= minute <= 59 and 0 <= second <= 59 and 0 <= ms <= 999
        if not in_range and (hour, minute, second, ms) != (24, 0, 0, 0):
            return None
        return hour, minute, second, ms


class _Zone:
    def __init__(self) -> None:
        self.sign: int | None = None
        self.hour: int | None = None
        self.minute: int | None = None

    def set(self, hours: int) -> None:
        self.sign = -1 if hours < 0 else 1
        self.hour = abs(hours)
        self.minute = 0

    def expecting(self, n: int) -> bool:
        return self.hour is not None and self.minute is None and 0 <= n <= 59

    def is_utc(self) -> bool:
        return self.hour == 0 and self.minute == 0

    def write(self) -> int | bool | None:
        """Offset in seconds, None when no zone was given, False when invalid."""
        if self.sign is None:
            return None
        total = (self.hour or 0) * 3600 + (self.minute or 0) * 60
        if total > 2**30 - 1:
            return False
        return -total if self.sign < 0 else total


def _parse_es5(scanner: _Scanner, day: _Day, time: _Time, zone: _Zone) -> _Token:
    """V8's ES5 (ISO 8601) reading: "end" when the whole text is read, "invalid" when it can be no
    date, otherwise the token the legacy parser goes on from (with what was read kept)."""
    stop = _es5_date(scanner, day)
    if stop is not None:
        return stop
    peek = scanner.peek()
    if peek.kind == "word" and peek.word_kind()[0] == "t":
        scanner.next()
        if not (_es5_time(scanner, time) and _es5_zone(scanner, zone)):
            return _Token("invalid")
        if scanner.peek().kind != "end":
            return _Token("invalid")
    elif peek.kind != "end":
        return scanner.next()
    if zone.hour is None and time.empty():
        zone.set(0)
    day.iso = True
    return _Token("end")


def _es5_date(scanner: _Scanner, day: _Day) -> _Token | None:
    """YYYY or +-YYYYYY, then -MM and -DD if there; None when read, else the token to go on from."""
    stop = _es5_year(scanner, day)
    if stop is not None or not scanner.skip_symbol("-"):
        return stop
    if not scanner.peek_number(2, 1, 12):
        return scanner.next()
    day.add(int(scanner.next().value))
    if not scanner.skip_symbol("-"):
        return None
    if not scanner.peek_number(2, 1, 31):
        return scanner.next()
    day.add(int(scanner.next().value))
    return None


def _es5_year(scanner: _Scanner, day: _Day) -> _Token | None:
    if scanner.peek().is_number(4):
        day.add(int(scanner.next().value))
        return None
    if not scanner.peek().is_sign():
        return scanner.next()
    sign_token = scanner.next()
    if not scanner.peek().is_number(6):
        return sign_token
    year = int(scanner.next().value)
    if sign_token.value == "-" and year == 0:
        return sign_token  # -000000 is no year
    day.add(year if sign_token.value == "+" else -year)
    return None


def _es5_time(scanner: _Scanner, time: _Time) -> bool:
    """hh:mm[:ss[.sss]] after the "T"; False when it is not valid."""
    if not scanner.peek_number(2, 0, 24):
        return False
    hour_is_24 = scanner.peek().value == 24
    most = 0 if hour_is_24 else 59  # 24:00:00.000 is the only time in hour 24
    time.add(int(scanner.next().value))
    if not (scanner.skip_symbol(":") and scanner.peek_number(2, 0, most)):
        return False
    time.add(int(scanner.next().value))
    if not scanner.skip_symbol(":"):
        return True
    if not scanner.peek_number(2, 0, most):
        return False
    time.add(int(scanner.next().value))
    if not scanner.skip_symbol("."):
        return True
    if not scanner.peek().is_number() or (hour_is_24 and int(scanner.peek().value) > 0):
        return False
    time.add(_milliseconds(scanner.next()))
    return True


def _es5_zone(scanner: _Scanner, zone: _Zone) -> bool:
    """Z, +-hh:mm or +-hhmm after the time, if there; False when it is not valid."""
    if scanner.peek().is_z():
        scanner.next()
        zone.set(0)
        return True
    if not scanner.peek().is_sign():
        return True
    zone.sign = 1 if scanner.next().value == "+" else -1
    if scanner.peek().is_number(4):
        hour, minute = divmod(int(scanner.next().value), 100)
        if not (hour <= 23 and minute <= 59):
            return False
        zone.hour, zone.minute = hour, minute
        return True
    if not scanner.peek_number(2, 0, 23):
        return False
    zone.hour = int(scanner.next().value)
    if not (scanner.skip_symbol(":") and scanner.peek_number(2, 0, 59)):
        return False
    zone.minute = int(scanner.next().value)
    return True


def parse_js_date(text: str) -> float:
    """`Date.parse(text)` in Node with TZ=UTC: milliseconds since 1970, or NaN."""
    scanner = _Scanner(text)
    day, time, zone = _Day(), _Time(), _Zone()
    token = _parse_es5(scanner, day, time, zone)
    if token.kind == "invalid" or not _LegacyParser(scanner, day, time, zone).parse(token):
        return math.nan
    return _time_value(day, time, zone)


class _LegacyParser:
    """V8's legacy reading, from where the ES5 one stopped: each token adds to the date, the
    time or the zone; any that cannot makes the whole text no date."""

    def __init__(self, scanner: _Scanner, day: _Day, time: _Time, zone: _Zone) -> None:
        self.scanner = scanner
        self.day = day
        self.time = time
        self.zone = zone
        self.has_read_number = bool(day.parts)

    def parse(self, token: _Token) -> bool:
        """False when the text is no date."""
        while token.kind != "end":
            if not self.read(token):
                return False
            token = self.scanner.next()
        return True

    def read(self, token: _Token) -> bool:
        if token.kind == "number":
            self.has_read_number = True
            return self.number(int(token.value))
        if token.kind == "word":
            return self.word(token)
        if token.is_sign() and (self.zone.is_utc() or not self.time.empty()):
            self.has_read_number = True
            return self.offset(token)
        # A sign or a ")" after a number is no date; other tokens (spaces, ",", ...) are skipped.
        return not ((token.is_sign() or token.is_symbol(")")) and self.has_read_number)

    def number(self, n: int) -> bool:
        scanner, time = self.scanner, self.time
        if scanner.skip_symbol(":"):
            return self.hour_or_minute(n)
        if scanner.skip_symbol(".") and time.expecting(n):  # V8 eats the "." either way
            time.add(n)
            if not scanner.peek().is_number():
                return False
            time.add_final(_milliseconds(scanner.next()))
            return True
        if self.zone.expecting(n):
            self.zone.minute = n
            return True
        if time.expecting(n):
            time.add_final(n)
            peek = scanner.peek()
            return peek.kind in ("end", "space") or peek.is_z() or peek.is_sign()
        if not self.day.add(n):
            return False
        scanner.skip_symbol("-")
        return True

    def hour_or_minute(self, n: int) -> bool:
        """A number followed by ":"; "n::" is an hour alone."""
        if self.scanner.skip_symbol(":"):
            if not self.time.empty():
                return False
            self.time.add(n)
            self.time.add(0)
            return True
        if not self.time.add(n):
            return False
        if self.scanner.peek().is_symbol("."):
            self.scanner.next()
        return True

    def word(self, token: _Token) -> bool:
        kind, value = token.word_kind()
        if kind == "ampm" and not self.time.empty():
            self.time.hour_offset = value
        elif kind == "month":
            self.day.named_month = value
            self.scanner.skip_symbol("-")
        elif kind == "zone" and self.has_read_number:
            self.zone.set(value)
        elif self.has_read_number or self.scanner.peek().is_number():
            return False  # other words only before the numbers, and not right before one
        return True

    def offset(self, sign: _Token) -> bool:
        """A zone offset after "UTC"/"GMT" or a time: +h, +hh, +hmm, +hhmm or +hh:mm."""
        zone = self.zone
        zone.sign = 1 if sign.value == "+" else -1
        n, length = 0, 0
        if self.scanner.peek().is_number():
            number = self.scanner.next()
            n, length = int(number.value), number.length
        if self.scanner.peek().is_symbol(":"):
            zone.hour, zone.minute = n, None
        elif length in (1, 2):
            zone.hour, zone.minute = n, 0
        elif length in (3, 4):
            zone.hour, zone.minute = n // 100, n % 100
        else:
            return False
        return True


def _time_value(day: _Day, time: _Time, zone: _Zone) -> float:
    """The instant the parts read make, or NaN where one of them is out of range."""
    date = day.write()
    clock = time.write()
    offset = zone.write()
    if date is None or clock is None or offset is False:
        return math.nan
    year, month, day_of_month = date
    moment = make_date(year, month, day_of_month, *clock)
    if isinstance(offset, int) and not isinstance(offset, bool):
        moment -= offset * 1000
    return time_clip(moment)


# -- dayjs -----------------------------------------------------------------------------------------

_DAYJS_PARSE: Final = re.compile(
    r"(\d{4})[-/]?(\d{1,2})?[-/]?(\d{0,2})[Tt" + re.escape(JS_WHITESPACE) + r"]*(\d{1,2})?:?"
    r"(\d{1,2})?:?(\d{1,2})?[.:]?(\d+)?",
    re.ASCII,
)


def dayjs_ms(text: str) -> float:
    """The instant `dayjs(text)` holds (TZ=UTC), or NaN where it is an invalid date."""
    if text[-1:] not in ("z", "Z"):
        match = _DAYJS_PARSE.fullmatch(text)
        if match:
            year, month, day, hour, minute, second, fraction = match.groups()
            year_number = int(year)
            if 0 <= year_number <= 99:
                year_number += 1900  # new Date(y, ...) reads years 0-99 as 1900-1999
            return time_clip(
                make_date(
                    year_number,
                    (int(month) - 1) if month else 0,
                    int(day) if day else 1,
                    int(hour or 0),
                    int(minute or 0),
                    int(second or 0),
                    int((fraction or "0")[:3]),
                )
            )
    return parse_js_date(text)


# The usual shape, "2024-05-01T12:05:00.000Z": V8 reads it without its legacy parser.
_ISO_FAST: Final = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?(?:Z|[+-](\d{2}):(\d{2}))",
    re.ASCII,
)


def is_date_like(text: str) -> bool:
    """Segment's "date-like" format check for a string in a datetime field."""
    fast = _ISO_FAST.fullmatch(text)
    if fast:
        # Runs for every date-like field of every event: no generator, optional parts as "0",
        # and the ranges checked on the texts themselves: each part is two ASCII digits (or the
        # "0" put in for a missing one), which compare as their numbers do.
        _, month, day, hour, minute, second, zone_hour, zone_minute = fast.groups("0")
        if (
            "01" <= month <= "12" and "01" <= day <= "31" and hour <= "23" and minute <= "59"
            and second <= "59" and zone_hour <= "23" and zone_minute <= "59"
        ):  # fmt: skip
            return True
    number = js_to_number(text)
    if js_number(number) == text:  # a number written as JavaScript writes it: epoch seconds
        return math.isfinite(number) and abs(number * 1000) <= MAX_TIME_MS
    return not math.isnan(dayjs_ms(text))


def iso_string(moment_ms: float) -> str:
    """Date.prototype.toISOString() of a valid time value."""
    days, ms_of_day = divmod(int(moment_ms), _DAY_MS)
    year, month, day = _civil_from_days(days)
    hours, rest = divmod(ms_of_day, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, ms = divmod(rest, 1000)
    sign = "+" if year > 0 else "-"
    year_text = f"{year:04d}" if 0 <= year <= 9999 else f"{sign}{abs(year):06d}"
    return f"{year_text}-{month:02d}-{day:02d}T{hours:02d}:{minutes:02d}:{seconds:02d}.{ms:03d}Z"


def _civil_from_days(days: int) -> tuple[int, int, int]:
    days += 719468
    era = (days if days >= 0 else days - 146096) // 146097
    doe = days - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    year = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    return year + (month <= 2), month, day
