"""@liquid: placeholder until the Liquid engine is configured like Segment's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class LiquidError(ValueError):
    """Raised when a @liquid template cannot be used."""


def compile_liquid(raw: Any) -> Callable[[Any], Any]:
    raise LiquidError("@liquid is not supported yet")
