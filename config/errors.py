"""Errors raised while loading configuration."""

from __future__ import annotations


class ConfigError(Exception):
    """Raised when settings or mappings are invalid; carries every problem found, not the first."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {p}" for p in self.problems))
