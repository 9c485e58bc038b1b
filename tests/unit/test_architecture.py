"""The code's shape, checked: every import sits at module top.

The layer contract is checked by tests/integration/test_layers.py.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("config", "store", "telemetry", "ingest", "worker", "fleet")


def _modules() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def _nested_imports(path: Path) -> list[str]:
    """Imports inside functions, classes or conditionals (but `if TYPE_CHECKING:`)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top_level = set()
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            top_level.add(node)
        elif isinstance(node, ast.Try):  # an optional dependency's fallback, at module level
            top_level.update(
                n for n in ast.walk(node) if isinstance(n, ast.Import | ast.ImportFrom)
            )
    return [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom) and node not in top_level
    ]


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_sit_at_the_top_of_the_module(path: Path) -> None:
    # An import inside a function usually hides a cycle or an upward import.
    assert _nested_imports(path) == []
