"""Unit tests run with no Redis, no network and no processes: this keeps them honest (and fast).

Any attempt to open a network connection or start a process fails the test that made it.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest


class _NoIO(AssertionError):
    """Raised when a unit test reaches for the network or a process."""


def _refuse(*_: Any, **__: Any) -> Any:
    raise _NoIO("unit tests use no network and no processes; move this test to tests/integration")


@pytest.fixture(autouse=True)
def _no_network_or_processes(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(socket.socket, "connect", _refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", _refuse)
    monkeypatch.setattr(subprocess.Popen, "__init__", _refuse)
    yield
