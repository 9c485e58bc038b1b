"""Logs: one line per record, JSON objects with LOG_FORMAT=json, and never a secret."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from config.settings import load_settings
from fleet.logging_setup import configure_logging, gunicorn_logconfig, make_handler
from tests.fleet_harness import API_KEY, WRITE_KEY, FleetProcesses, fleet_env
from tests.pushwoosh_stub import PushwooshStub

SECRETS = ["PW_API_TOKEN_abc123", "write-key-1", "hmac-secret"]


@pytest.fixture
def capture() -> Iterator[tuple[logging.Logger, io.StringIO, list[logging.Handler]]]:
    logger = logging.getLogger("tests.logging.capture")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    stream = io.StringIO()
    handlers: list[logging.Handler] = []
    yield logger, stream, handlers
    for handler in handlers:
        logger.removeHandler(handler)


def use(capture, log_format: str) -> tuple[logging.Logger, io.StringIO]:
    logger, stream, handlers = capture
    handler = make_handler(log_format, SECRETS, stream)
    logger.addHandler(handler)
    handlers.append(handler)
    return logger, stream


def test_json_lines_carry_time_level_logger_message_and_extras(capture) -> None:
    logger, stream = use(capture, "json")
    logger.info("drained shard %d", 3, extra={"shard": 3, "delivered": 100})
    line = stream.getvalue()
    assert line.count("\n") == 1
    record = json.loads(line)
    assert record["level"] == "INFO"
    assert record["logger"] == "tests.logging.capture"
    assert record["message"] == "drained shard 3"
    assert (record["shard"], record["delivered"]) == (3, 100)
    assert record["time"].endswith("Z") and len(record["time"]) == len("2024-05-01T12:05:00.000Z")


def test_a_traceback_stays_inside_one_json_line(capture) -> None:
    logger, stream = use(capture, "json")
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("failed")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert "ValueError: boom" in record["exc"]


@pytest.mark.parametrize("log_format", ["json", "text"])
@pytest.mark.parametrize(
    ("message", "args", "extra"),
    [
        ("key is %s", ("PW_API_TOKEN_abc123",), {}),
        ("header Authorization: Token PW_API_TOKEN_abc123", (), {}),
        ("keys %s", (["write-key-1", "other"],), {}),
        ("plain", (), {"detail": "secret=hmac-secret"}),
    ],
)
def test_secrets_never_reach_the_log(capture, log_format, message, args, extra) -> None:
    logger, stream = use(capture, log_format)
    logger.warning(message, *args, extra=extra)
    text = stream.getvalue()
    assert all(secret not in text for secret in SECRETS), text
    if log_format == "json" or not extra:  # text lines do not show extras at all
        assert "****" in text


def test_a_secret_in_a_traceback_is_masked(capture) -> None:
    logger, stream = use(capture, "json")
    try:
        raise RuntimeError("refused key PW_API_TOKEN_abc123")
    except RuntimeError:
        logger.exception("call failed")
    assert "PW_API_TOKEN_abc123" not in stream.getvalue()
    assert "refused key ****" in json.loads(stream.getvalue())["exc"]


def test_configure_logging_installs_one_handler_at_the_level() -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    stream = io.StringIO()
    try:
        settings = load_settings(
            {"LOG_FORMAT": "json", "LOG_LEVEL": "WARNING", "PUSHWOOSH_API_KEY": "k-123456",
             "PUSHWOOSH_APPLICATION_CODE": "ABCDE-12345"}
        )  # fmt: skip
        configure_logging(settings, stream)
        configure_logging(settings, stream)  # twice: still one handler
        logging.getLogger("x").info("hidden")
        logging.getLogger("x").warning("shown k-123456")
        assert len(root.handlers) == 1
        lines = stream.getvalue().splitlines()
        assert [json.loads(line)["message"] for line in lines] == ["shown ****"]
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


@pytest.mark.parametrize(
    ("env", "formatter"),
    [
        ({"LOG_FORMAT": "json"}, "()"),
        ({"LOG_FORMAT": "text"}, "format"),
        ({}, "format"),
    ],
)
def test_gunicorn_logconfig_routes_gunicorn_and_the_app_through_one_handler(env, formatter):
    config = gunicorn_logconfig({**env, "PUSHWOOSH_API_KEY": "k-123456"})
    assert formatter in config["formatters"]["line"]
    assert config["root"]["handlers"] == ["stderr"]
    assert config["loggers"]["gunicorn.error"]["handlers"] == ["stderr"]
    assert config["filters"]["redact"]["secrets"] == ["k-123456"]


@pytest.mark.integration
def test_ingest_and_worker_write_json_lines_without_secrets(
    redis_url: str, key_prefix: str, stub: PushwooshStub, tmp_path: Path
) -> None:
    # Given the ingest server and a worker started with LOG_FORMAT=json
    env = fleet_env(redis_url, key_prefix, stub.url, LOG_FORMAT="json")
    fleet = FleetProcesses(env, tmp_path)
    try:
        url = fleet.start_ingest()
        fleet.start_worker(concurrency=1)
        # When events flow, and a request with a wrong key is refused
        event = {"type": "track", "event": "Logged", "userId": "u1", "messageId": "log-1"}
        assert requests.post(f"{url}/v1/track", json=event, auth=(WRITE_KEY, "")).status_code == 200
        assert requests.post(f"{url}/v1/track", json=event, auth=("nope", "")).status_code == 401
        stub.wait_for(lambda got: len(got) >= 1, timeout_s=20)
        deadline = time.monotonic() + 10
        while "drained shard" not in fleet.logs("worker") and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        fleet.stop_all()
    # Then every ingest line is a JSON object, the worker's log lines too, and no secret shows
    ingest_lines = [line for line in _lines(tmp_path, "ingest") if line.strip()]
    assert ingest_lines
    records = [json.loads(line) for line in ingest_lines]
    assert any(r["logger"].startswith("gunicorn") for r in records)
    assert any("401 unauthorized" in r["message"] for r in records)
    worker_records = [json.loads(line) for line in _lines(tmp_path, "worker") if line[:1] == "{"]
    messages = [r["message"] for r in worker_records]
    assert any(m.startswith("worker ready") for m in messages), messages
    assert any(m.startswith("drained shard 0") for m in messages), messages
    for text in (_text(tmp_path, "ingest"), _text(tmp_path, "worker")):
        assert API_KEY not in text
        assert WRITE_KEY not in text


def _text(log_dir: Path, name: str) -> str:
    return "".join(p.read_text(errors="replace") for p in sorted(log_dir.glob(f"{name}-*.log")))


def _lines(log_dir: Path, name: str) -> list[str]:
    return _text(log_dir, name).splitlines()
