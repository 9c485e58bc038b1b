"""A destinations file of two Pushwoosh apps (ios, web) and the environment it names."""

from __future__ import annotations

from pathlib import Path

import yaml

IOS_KEY = "PW_IOS_TOKEN_0123456789"
WEB_KEY = "PW_WEB_TOKEN_9876543210"


def destinations_file(tmp_path: Path, ios_url: str, web_url: str) -> Path:
    path = tmp_path / "destinations.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "destinations": [
                    {"name": "ios", "api_key_env": "IOS_API_KEY", "application_code": "IOSAP-00001",
                     "base_url": ios_url, "write_keys": ["ios-write-key"], "enable_batching": True},
                    {"name": "web", "api_key_env": "WEB_API_KEY", "application_code": "WEBAP-00002",
                     "base_url": web_url, "write_keys_env": "WEB_WRITE_KEYS"},
                ]
            }
        )
    )  # fmt: skip
    return path


def env_for(path: Path) -> dict[str, str]:
    return {
        "DESTINATIONS_FILE": str(path),
        "IOS_API_KEY": IOS_KEY,
        "WEB_API_KEY": WEB_KEY,
        "WEB_WRITE_KEYS": "web-write-key,web-old-key",
    }
