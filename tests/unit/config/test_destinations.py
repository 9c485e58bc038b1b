"""Several Pushwoosh apps in one fleet: each write key reaches only its own destination, with its
own credentials; a failing destination does not hold up the others.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from config.destinations import load_destinations
from config.errors import ConfigError
from config.settings import load_settings
from tests.support.destinations import IOS_KEY, destinations_file, env_for


def track(i: int) -> dict[str, object]:
    return {"type": "track", "event": "E", "userId": f"u{i}", "messageId": f"m{i}",
            "timestamp": "2024-05-01T12:05:00.000Z", "properties": {"i": i}}  # fmt: skip


def test_a_destinations_file_builds_one_settings_per_app(tmp_path: Path) -> None:
    env = env_for(destinations_file(tmp_path, "http://ios.test", "http://web.test"))
    destinations = load_destinations(load_settings(env), env)
    assert list(destinations) == ["ios", "web"]
    ios, web = destinations["ios"], destinations["web"]
    assert ios.settings.pushwoosh_api_key and ios.settings.pushwoosh_api_key.reveal() == IOS_KEY
    assert ios.settings.pushwoosh_enable_batching and not web.settings.pushwoosh_enable_batching
    assert web.settings.pushwoosh_base_url == "http://web.test"
    assert [k.reveal() for k in web.write_keys] == ["web-write-key", "web-old-key"]
    assert IOS_KEY not in repr(ios)


def test_every_problem_in_a_destinations_file_is_reported_at_once(tmp_path: Path) -> None:
    path = tmp_path / "d.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "destinations": [
                    {"name": "a", "api_key_env": "MISSING_VAR", "application_code": "AAAAA-11111",
                     "write_keys": ["same"], "shrads": 2},
                    {"name": "b", "api_key": "k", "application_code": "nope", "write_keys": ["x"]},
                    {"name": "e", "write_keys": ["same"], "api_key": "k4",
                     "application_code": "EEEEE-55555"},
                    {"name": "c", "write_keys": ["same"], "api_key": "k2",
                     "application_code": "CCCCC-33333"},
                    {"name": "d", "api_key": "k3", "application_code": "DDDDD-44444"},
                ]
            }
        )
    )  # fmt: skip
    env = {"DESTINATIONS_FILE": str(path)}
    with pytest.raises(ConfigError) as raised:
        load_destinations(load_settings(env), env)
    text = "\n".join(raised.value.problems)
    assert "MISSING_VAR is not set" in text
    assert "'shrads'" in text and 'did you mean "shards"' in text
    assert "application_code: must look like ABCDE-12345" in text
    assert '"c": a key is also "e"\'s' in text
    assert "nothing can send to it" in text
