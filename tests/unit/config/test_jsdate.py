"""Segment's date-like check on its usual shape: the ranges read on the texts of the parts
decide as their numbers do."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from config.jsdate import _ISO_FAST, MAX_TIME_MS, dayjs_ms, is_date_like
from config.jsvalues import js_number, js_to_number


def by_numbers(text: str) -> bool:
    """is_date_like as it read the parts before: each converted to a number first."""
    fast = _ISO_FAST.fullmatch(text)
    if fast:
        _, month, day, hour, minute, second, zone_hour, zone_minute = fast.groups("0")
        if (
            1 <= int(month) <= 12 and 1 <= int(day) <= 31 and int(hour) <= 23
            and int(minute) <= 59 and int(second) <= 59 and int(zone_hour) <= 23
            and int(zone_minute) <= 59
        ):  # fmt: skip
            return True
    number = js_to_number(text)
    if js_number(number) == text:
        return math.isfinite(number) and abs(number * 1000) <= MAX_TIME_MS
    return not math.isnan(dayjs_ms(text))


@given(st.from_regex(_ISO_FAST, fullmatch=True))
def test_the_usual_shape_is_judged_as_by_its_numbers(text: str) -> None:
    assert is_date_like(text) is by_numbers(text)


@given(
    st.tuples(*[st.integers(0, 99)] * 6, st.sampled_from(["Z", "+", "-"])),
)
def test_every_part_at_its_bounds(parts: tuple[int, int, int, int, int, int, str]) -> None:
    month, day, hour, minute, second, zone, sign = parts
    tail = "Z" if sign == "Z" else f"{sign}{zone:02d}:{minute:02d}"
    for text in (
        f"2024-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}.123{tail}",
        f"2024-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}{tail}",
    ):
        assert is_date_like(text) is by_numbers(text)
