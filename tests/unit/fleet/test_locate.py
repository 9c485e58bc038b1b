"""How a command finds the fleet: REDIS_URL, else what `run` recorded here, else the default."""

from __future__ import annotations

import os
from pathlib import Path

from fleet import locate

FLEET = locate.RunningFleet(
    redis_url="redis://127.0.0.1:40123/0", ingest_url="http://127.0.0.1:8000", pid=os.getpid()
)


def test_redis_url_wins_over_the_recorded_fleet(tmp_path: Path) -> None:
    locate.record(tmp_path, FLEET)
    choice = locate.choose_redis({"REDIS_URL": "redis://elsewhere:6379/0"}, tmp_path)
    assert choice.url is None and choice.source == "REDIS_URL"
    assert locate.choose_redis({"REDIS_URL_FILE": "/run/x"}, tmp_path).source == "REDIS_URL_FILE"


def test_without_redis_url_the_recorded_fleet_is_used_and_named(tmp_path: Path) -> None:
    locate.record(tmp_path, FLEET)
    choice = locate.choose_redis({}, tmp_path)
    assert choice.url == "redis://127.0.0.1:40123/0"
    assert choice.source == f"from `pushwoosh-fleet run`, recorded in {tmp_path / 'fleet.json'}"
    assert choice.describe(FLEET.redis_url).startswith("Redis redis://127.0.0.1:40123/0 (from")


def test_a_fleet_whose_process_is_gone_is_still_used_but_flagged(tmp_path: Path) -> None:
    locate.record(tmp_path, locate.RunningFleet("redis://127.0.0.1:1/0", "http://x", pid=2**22 + 7))
    assert "is it running?" in locate.choose_redis({}, tmp_path).source


def test_nothing_recorded_means_the_default(tmp_path: Path) -> None:
    choice = locate.choose_redis({}, tmp_path)
    assert choice.url is None and "default redis://127.0.0.1:6379/0" in choice.source


def test_forget_removes_only_its_own_record(tmp_path: Path) -> None:
    locate.record(tmp_path, FLEET)
    locate.forget(tmp_path, pid=FLEET.pid + 1)
    assert locate.recorded(tmp_path) == FLEET
    locate.forget(tmp_path, pid=FLEET.pid)
    assert locate.recorded(tmp_path) is None


def test_passwords_are_masked_in_every_part_of_a_url() -> None:
    assert locate.masked("redis://:s3cret@db:6379/0") == "redis://:****@db:6379/0"
    assert (
        locate.masked("sentinel://u:p@h1:26379;sentinel://u:p@h2:26379/0")
        == "sentinel://u:****@h1:26379;sentinel://u:****@h2:26379/0"
    )
    assert locate.masked("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
