"""Logs: one line per record, JSON objects with LOG_FORMAT=json, and never a secret."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from config.destinations import all_secrets, load_destinations
from config.settings import load_settings
from telemetry.logs import configure_logging, gunicorn_logconfig, make_handler

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
        configure_logging(settings, settings.secrets(), stream)
        configure_logging(settings, settings.secrets(), stream)  # twice: still one handler
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
    config = gunicorn_logconfig(load_settings(env), ["k-123456"])
    assert formatter in config["formatters"]["line"]
    assert config["root"]["handlers"] == ["stderr"]
    assert config["loggers"]["gunicorn.error"]["handlers"] == ["stderr"]
    assert config["filters"]["redact"]["secrets"] == ["k-123456"]


def test_every_secret_of_a_destinations_file_is_masked(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # Secrets that come from DESTINATIONS_FILE (and the variables it names) are masked too.
    path = tmp_path / "destinations.yaml"
    path.write_text(
        "destinations:\n"
        "  - {name: ios, api_key_env: IOS_KEY, application_code: ABCDE-12345,\n"
        "     write_keys: [ios-write-key-1], shared_secret_env: IOS_SECRET}\n"
    )
    env = {"DESTINATIONS_FILE": str(path), "IOS_KEY": "ios-api-key-9", "IOS_SECRET": "hmac-s3cr3t"}
    settings = load_settings(env)
    secrets = all_secrets(settings, load_destinations(settings, env))
    stream = io.StringIO()
    logger = logging.getLogger("masking-test")
    handler = make_handler("text", secrets, stream)
    logger.addHandler(handler)
    try:
        logger.warning(
            "key=%s write=%s secret=%s", "ios-api-key-9", "ios-write-key-1", "hmac-s3cr3t"
        )
    finally:
        logger.removeHandler(handler)
    assert stream.getvalue().count("****") == 3
    assert "ios-api-key-9" not in stream.getvalue() and "hmac-s3cr3t" not in stream.getvalue()


@pytest.mark.parametrize(
    ("env", "handler_class"),
    [
        ({}, "logging.NullHandler"),
        ({"GUNICORN_ACCESS_LOG": "-"}, "logging.StreamHandler"),
        ({"GUNICORN_ACCESS_LOG": "/var/log/ingest-access.log"}, "logging.FileHandler"),
    ],
)
def test_gunicorn_access_lines_go_only_where_gunicorn_access_log_says(
    env: dict[str, str], handler_class: str
) -> None:
    # gunicorn logs access whenever it has a logging config: the config decides
    config = gunicorn_logconfig(load_settings(env), ["k-123456"])
    access = config["loggers"]["gunicorn.access"]
    [name] = access["handlers"]
    assert config["handlers"][name]["class"] == handler_class
    assert access["propagate"] is False
    assert access["level"] == ("CRITICAL" if not env else "INFO")
    if handler_class != "logging.NullHandler":
        assert config["handlers"][name]["filters"] == ["redact"]
