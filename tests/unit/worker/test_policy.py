"""The delivery policy, from tables: what each reply means and what is done next."""

from __future__ import annotations

import random

import pytest

from worker.errors import (
    AuthenticationFailed,
    DeliveryError,
    PermanentDeliveryError,
    RetryableDeliveryError,
)
from worker.policy import (
    Attempt,
    DeadLetter,
    Deliver,
    Park,
    Pause,
    RetryPolicy,
    Split,
    backoff_delay_s,
    classify,
    decide,
    parse_retry_after,
)

NOW = 1_700_000_000.0
NOW_MS = int(NOW * 1000)
POLICY = RetryPolicy(
    base_delay_s=1.0, max_delay_s=300.0, max_age_s=4 * 3600.0, max_attempts=50, auth_pause_s=60.0
)


@pytest.mark.parametrize(
    ("status", "transport_error", "expected"),
    [
        (200, None, None),
        (201, None, None),
        (204, None, None),
        (207, None, None),
        (408, None, RetryableDeliveryError),
        (423, None, RetryableDeliveryError),
        (429, None, RetryableDeliveryError),
        (500, None, RetryableDeliveryError),
        (502, None, RetryableDeliveryError),
        (503, None, RetryableDeliveryError),
        (504, None, RetryableDeliveryError),
        (599, None, RetryableDeliveryError),
        (501, None, PermanentDeliveryError),
        (400, None, PermanentDeliveryError),
        (404, None, PermanentDeliveryError),
        (409, None, PermanentDeliveryError),
        (413, None, PermanentDeliveryError),
        (422, None, PermanentDeliveryError),
        (401, None, AuthenticationFailed),
        (403, None, AuthenticationFailed),
        (None, "timed out", RetryableDeliveryError),
        (None, "connection error (ConnectionError)", RetryableDeliveryError),
    ],
)
def test_classify_follows_the_wire_contract(
    status: int | None, transport_error: str | None, expected: type | None
) -> None:
    error = classify(status, '{"message":"x"}', {}, transport_error, NOW)
    if expected is None:
        assert error is None
    else:
        assert type(error) is expected
        if status is not None:
            assert error is not None and error.status == status


def test_permanent_error_keeps_pushwoosh_message() -> None:
    body = '{"action":"post event","status":"failure","error":{"message":"bad timestamp"}}'
    error = classify(400, body, {}, None, NOW)
    assert isinstance(error, PermanentDeliveryError)
    assert "bad timestamp" in error.reason and "400" in error.reason


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("2", 2.0),
        ("0", 0.0),
        (" 7 ", 7.0),
        ("1.5", 1.5),
        ("99999999999", 99999999999.0),  # parsed; the policy clamps it
        ("Tue, 14 Nov 2023 22:13:30 GMT", 10.0),  # NOW + 10 s
        ("Tue, 14 Nov 2023 22:13:00 GMT", 0.0),  # a date in the past: no wait
        ("soon", None),
        ("", None),
        (None, None),
        ("inf", None),
        ("Infinity", None),
        ("nan", None),
        ("-5", None),
        ("1e13", None),
        ("0x10", None),
        ("Tue, 14 Nov 2023 22:13:30", None),  # no zone
        ("Mon, 99 Foo 9999999 99:99:99 GMT", None),
        ("9" * 400, None),
    ],
)
def test_retry_after_is_parsed_strictly(header: str | None, expected: float | None) -> None:
    got = parse_retry_after(header, NOW)
    assert got == (pytest.approx(expected, abs=1.0) if expected is not None else None)


def test_retry_after_header_is_carried_by_429() -> None:
    error = classify(429, "", {"Retry-After": "2"}, None, NOW)
    assert isinstance(error, RetryableDeliveryError)
    assert error.retry_after_s == 2.0


def test_backoff_is_full_jitter_within_a_growing_capped_ceiling() -> None:
    rng = random.Random(7)
    for attempt in range(12):
        ceiling = min(60.0, 1.0 * 2**attempt)
        samples = [backoff_delay_s(attempt, 1.0, 60.0, rng) for _ in range(300)]
        assert all(0.0 <= s <= ceiling for s in samples)
        assert max(samples) > ceiling * 0.8  # full jitter spreads over the whole range


# -- decide: one row per line of the README's guarantees table --------------------------------


def _retryable(status: int | None = 503, retry_after_s: float | None = None) -> DeliveryError:
    return RetryableDeliveryError(f"HTTP {status}", status, retry_after_s)


def _decide(
    outcome: DeliveryError | None, attempts: int = 1, size: int = 1, age_s: float = 0.0
) -> object:
    attempt = Attempt(attempts, NOW_MS - int(age_s * 1000), size)
    return decide(outcome, attempt, NOW_MS, POLICY, random.Random(3))


@pytest.mark.parametrize(
    ("outcome", "attempts", "size", "age_s", "expected"),
    [
        # delivered: any 2xx
        (None, 1, 100, 0.0, Deliver),
        (None, 7, 1, 3600.0, Deliver),
        # retryable replies and transport failures, with attempts and age left: parked
        (_retryable(408), 1, 1, 0.0, Park),
        (_retryable(423), 1, 1, 0.0, Park),
        (_retryable(429), 1, 100, 0.0, Park),
        (_retryable(500), 3, 100, 60.0, Park),
        (_retryable(503), 49, 1, 0.0, Park),
        (_retryable(None), 1, 1, 0.0, Park),  # timeout / connection error
        # ... with attempts or age spent: dead-lettered
        (_retryable(503), 50, 1, 0.0, DeadLetter),
        (_retryable(503), 1, 1, 4 * 3600.0, DeadLetter),
        (_retryable(None), 50, 100, 0.0, DeadLetter),
        # a 400 on a batch: split to find the bad events
        (PermanentDeliveryError("HTTP 400", 400), 1, 2, 0.0, Split),
        (PermanentDeliveryError("HTTP 400", 400), 1, 100, 0.0, Split),
        # ... on one event: dead-lettered with Pushwoosh's reason
        (PermanentDeliveryError("HTTP 400", 400), 1, 1, 0.0, DeadLetter),
        # other 4xx and 501: dead-lettered at once, whatever the size
        (PermanentDeliveryError("HTTP 404", 404), 1, 100, 0.0, DeadLetter),
        (PermanentDeliveryError("HTTP 413", 413), 1, 100, 0.0, DeadLetter),
        (PermanentDeliveryError("HTTP 422", 422), 1, 1, 0.0, DeadLetter),
        (PermanentDeliveryError("HTTP 501", 501), 1, 1, 0.0, DeadLetter),
        # credentials refused: pause the destination (and dead-letter the request)
        (AuthenticationFailed("HTTP 401", 401), 1, 100, 0.0, Pause),
        (AuthenticationFailed("HTTP 403", 403), 1, 1, 0.0, Pause),
    ],
)
def test_decide_follows_the_guarantees_table(
    outcome: DeliveryError | None, attempts: int, size: int, age_s: float, expected: type
) -> None:
    assert type(_decide(outcome, attempts, size, age_s)) is expected


@pytest.mark.parametrize(
    ("outcome", "code"),
    [
        (_retryable(503), "retries_exhausted"),
        (PermanentDeliveryError("HTTP 400", 400), "http_400"),
        (PermanentDeliveryError("HTTP 501", 501), "http_501"),
    ],
)
def test_dead_letters_carry_a_short_code_and_the_reason(outcome: DeliveryError, code: str) -> None:
    action = _decide(outcome, attempts=50)
    assert isinstance(action, DeadLetter)
    assert action.code == code
    assert outcome.reason in action.reason


def test_exhausted_retries_say_how_many_attempts() -> None:
    action = _decide(_retryable(503), attempts=50)
    assert isinstance(action, DeadLetter)
    assert action.reason.startswith("gave up after 50 attempts: HTTP 503")


def test_a_park_waits_the_jittered_back_off_of_its_attempt() -> None:
    for attempts in range(1, 12):
        action = _decide(_retryable(503), attempts=attempts)
        assert isinstance(action, Park)
        ceiling_ms = min(300.0, 2 ** (attempts - 1)) * 1000
        assert NOW_MS <= action.due_ms <= NOW_MS + ceiling_ms


@pytest.mark.parametrize(
    ("retry_after_s", "low_s", "high_s"),
    [
        (2.0, 2.0, 2.0 + 1.0),  # never sooner than Retry-After (jitter may add up to 1 s)
        (120.0, 120.0, 121.0),
        (1e9, 300.0, 300.0),  # clamped to RETRY_MAX_DELAY_S
    ],
)
def test_a_park_honours_retry_after_clamped_to_the_max_delay(
    retry_after_s: float, low_s: float, high_s: float
) -> None:
    action = _decide(_retryable(429, retry_after_s))
    assert isinstance(action, Park)
    assert NOW_MS + low_s * 1000 <= action.due_ms <= NOW_MS + high_s * 1000


@pytest.mark.parametrize(
    ("failures", "pause_s"), [(1, 60.0), (2, 120.0), (3, 240.0), (7, 3600.0), (500, 3600.0)]
)
def test_the_auth_pause_doubles_up_to_an_hour(failures: int, pause_s: float) -> None:
    assert POLICY.auth_pause_delay_s(failures) == pause_s


def test_the_shared_back_off_never_exceeds_the_max_delay_whatever_the_reply() -> None:
    rng = random.Random(5)
    for failures in (1, 10, 10_000):
        for retry_after_s in (None, 0.0, 5.0, 1e13):
            assert 0 <= POLICY.retry_delay_s(failures, retry_after_s, rng) <= 300.0
