"""The retry policy, from a table: which replies are retried, which are permanent, and back-off."""

from __future__ import annotations

import random

import pytest

from worker.errors import AuthenticationFailed, PermanentDeliveryError, RetryableDeliveryError
from worker.retry import backoff_delay_s, classify, parse_retry_after, retry_delay_s

NOW = 1_700_000_000.0


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


def test_auth_failure_is_a_permanent_error() -> None:
    assert isinstance(classify(401, "", {}, None, NOW), PermanentDeliveryError)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("2", 2.0),
        ("0", 0.0),
        (" 7 ", 7.0),
        ("Tue, 14 Nov 2023 22:13:30 GMT", 10.0),  # NOW + 10 s
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_retry_after(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header, NOW + 0) == (
        pytest.approx(expected, abs=1.0) if expected is not None else None
    )


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


def test_retry_delay_never_precedes_retry_after() -> None:
    rng = random.Random(1)
    assert all(retry_delay_s(0, 2.0, 1.0, 300.0, rng) >= 2.0 for _ in range(200))
