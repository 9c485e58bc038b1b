"""Logging for every fleet process: one line per record, JSON when LOG_FORMAT=json.

A JSON line is one object: time (RFC 3339 UTC, ms), level, logger, message, then any `extra`
fields the call passed, and `exc` with the traceback when there is one. Whatever the format, a
filter replaces the configured secrets (API key, write keys, shared secret) with `****` in
every record, so even a careless log call cannot print one.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from config.settings import MASK, Settings

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created, UTC)
        data: dict[str, Any] = {
            "time": moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                data[key] = value
        if record.exc_text:  # set (and masked) by the redaction filter
            data["exc"] = record.exc_text
        elif record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            data["stack"] = self.formatStack(record.stack_info)
        return json.dumps(data, default=str, ensure_ascii=False)


def maskable(secrets: Iterable[str]) -> list[str]:
    """The secrets worth masking, longest first, so a secret containing another is masked whole;
    short ones are skipped because masking "a" everywhere would make text unreadable without
    protecting anything."""
    return sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret replaced by ****; `secrets` as `maskable` returns them."""
    for secret in secrets:
        text = text.replace(secret, MASK)
    return text


class RedactSecrets(logging.Filter):
    """Replaces each secret in a record's message, arguments and extras with ****."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = maskable(secrets)

    def _clean(self, text: str) -> str:
        return redact(text, self._secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # bad %-arguments: let the handler report it as usual
            return True
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        cleaned = self._clean(message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        if record.exc_text:
            record.exc_text = self._clean(record.exc_text)
        for key, value in list(vars(record).items()):
            if key not in _STANDARD and isinstance(value, str):
                setattr(record, key, self._clean(value))
        return True


def make_handler(log_format: str, secrets: Iterable[str], stream: Any = None) -> logging.Handler:
    handler = logging.StreamHandler(stream or sys.stderr)
    formatter = JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    handler.setFormatter(formatter)
    handler.addFilter(RedactSecrets(secrets))
    return handler


def configure_logging(settings: Settings, secrets: Iterable[str], stream: Any = None) -> None:
    """Send every log record of this process to one handler in the configured format.

    `secrets` are every secret the process knows (settings and destinations file alike:
    `config.destinations.all_secrets`), masked in every record.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(make_handler(settings.log_format, secrets, stream))
    root.setLevel(settings.log_level)


def gunicorn_logconfig(settings: Settings, secrets: Iterable[str]) -> dict[str, Any]:
    """gunicorn's `logconfig_dict`: gunicorn's loggers and the app's (root) through one handler
    on stderr, in LOG_FORMAT, with the secrets masked.

    gunicorn writes an access line for every request whenever it is given a logging config,
    whatever its `accesslog` says; so the access logger is switched off here unless
    GUNICORN_ACCESS_LOG names where its lines go (`-`: stderr with the rest, else a file), in
    the same format and masked the same way (a request path can hold a write key).
    """
    level = settings.log_level
    formatter = {"()": JsonFormatter} if settings.log_format == "json" else {"format": TEXT_FORMAT}
    stderr = {
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stderr",
        "formatter": "line",
        "filters": ["redact"],
    }
    handlers: dict[str, Any] = {"stderr": stderr}
    destination = settings.gunicorn_access_log
    if destination is None:
        access: dict[str, Any] = {"level": "CRITICAL", "handlers": ["off"], "propagate": False}
        handlers["off"] = {"class": "logging.NullHandler"}
    elif destination == "-":
        access = {"level": "INFO", "handlers": ["stderr"], "propagate": False}
    else:
        handlers["access"] = {
            "class": "logging.FileHandler",
            "filename": destination,
            "formatter": "line",
            "filters": ["redact"],
        }
        access = {"level": "INFO", "handlers": ["access"], "propagate": False}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"redact": {"()": RedactSecrets, "secrets": list(secrets)}},
        "formatters": {"line": formatter},
        "handlers": handlers,
        "root": {"level": level, "handlers": ["stderr"]},
        "loggers": {
            "gunicorn.error": {"level": level, "handlers": ["stderr"], "propagate": False},
            "gunicorn.access": access,
        },
    }
