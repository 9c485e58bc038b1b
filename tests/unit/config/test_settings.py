"""Settings: declared once, read from the environment once, every problem named."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from config.errors import ConfigError
from config.settings import (
    SPECS,
    Secret,
    Settings,
    load_settings,
    readme_with_table,
    settings_table,
    spec_of,
)

README = Path(__file__).resolve().parents[3] / "README.md"


def test_the_readme_table_is_the_one_the_declarations_make() -> None:
    text = README.read_text(encoding="utf-8")
    assert readme_with_table(text) == text, (
        "README.md's settings table is stale: run `python -m config.settings --write-readme "
        "README.md`"
    )


def test_every_setting_is_declared_once_with_its_variable_and_documentation() -> None:
    names = [spec_of(f).env for f in dataclasses.fields(Settings)]
    assert len(names) == len(set(names))
    assert set(SPECS) == set(names)
    for field in dataclasses.fields(Settings):
        assert spec_of(field).doc.strip(), field.name
        assert f"`{spec_of(field).env}`" in settings_table()


def test_defaults_are_the_dataclass_defaults() -> None:
    assert load_settings({}) == Settings()


def test_every_problem_is_reported_at_once_naming_the_variable() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(
            {"PUSHWOOSH_SHARDS": "0", "PORT": "http", "LOG_FORMAT": "xml", "REDIS_URL": "h:1"}
        )
    text = str(caught.value)
    for name in ("PUSHWOOSH_SHARDS", "PORT", "LOG_FORMAT", "REDIS_URL"):
        assert name in text


@pytest.mark.parametrize(
    ("given", "level"),
    [("info", "INFO"), ("Info", "INFO"), ("DEBUG", "DEBUG"), ("warn", "WARNING"),
     ("fatal", "CRITICAL"), (" error ", "ERROR")],
)  # fmt: skip
def test_log_levels_are_case_insensitive_as_gunicorn_and_celery_take_them(
    given: str, level: str
) -> None:
    assert load_settings({"LOG_LEVEL": given}).log_level == level


def test_an_unknown_log_level_is_refused_by_name() -> None:
    with pytest.raises(ConfigError, match="LOG_LEVEL"):
        load_settings({"LOG_LEVEL": "loud"})


def test_secrets_can_come_from_files(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text("PW_KEY_FROM_FILE\n")
    keys = tmp_path / "write-keys"
    keys.write_text("a,b")
    url = tmp_path / "url"
    url.write_text("redis://:hunter2@redis:6379/0")
    settings = load_settings(
        {
            "PUSHWOOSH_API_KEY_FILE": str(key),
            "PUSHWOOSH_APPLICATION_CODE": "ABCDE-12345",
            "INGEST_WRITE_KEYS_FILE": str(keys),
            "REDIS_URL_FILE": str(url),
        }
    )
    assert settings.pushwoosh_api_key == Secret("PW_KEY_FROM_FILE")
    assert settings.ingest_write_keys == (Secret("a"), Secret("b"))
    assert settings.redis_url == "redis://:hunter2@redis:6379/0"
    assert "hunter2" in settings.secrets() and "PW_KEY_FROM_FILE" in settings.secrets()


def test_a_secret_file_that_cannot_be_read_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"INGEST_SHARED_SECRET_FILE": str(tmp_path / "missing")})
    assert "INGEST_SHARED_SECRET_FILE" in str(caught.value)


def test_a_secret_and_its_file_together_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "s"
    path.write_text("x")
    with pytest.raises(ConfigError, match="not both"):
        load_settings({"INGEST_SHARED_SECRET": "y", "INGEST_SHARED_SECRET_FILE": str(path)})


def test_a_non_secret_setting_has_no_file_variant(tmp_path: Path) -> None:
    path = tmp_path / "port"
    path.write_text("9999")
    assert load_settings({"PORT_FILE": str(path)}).port == 8000


def test_secret_values_never_appear_in_the_problems() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"INGEST_WRITE_KEYS": "same-key", "INGEST_ADMIN_KEYS": "same-key"})
    assert "same-key" not in str(caught.value)
    assert "INGEST_ADMIN_KEYS" in str(caught.value)


def test_gunicorn_and_destinations_settings_are_part_of_the_table() -> None:
    settings = load_settings(
        {"WEB_CONCURRENCY": "3", "GUNICORN_WORKER_CONNECTIONS": "80", "DESTINATIONS_FILE": "d.yaml"}
    )
    assert (settings.web_concurrency, settings.gunicorn_worker_connections) == (3, 80)
    assert settings.destinations_file == "d.yaml"
    assert settings.gunicorn_access_log is None
